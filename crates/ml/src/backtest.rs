//! Backtests of a ruleset: history through the same engine code as live decisions (the
//! replay's point-in-time features and label delay, the card checks the data recorded, the
//! model's score, then the rules), and what each rule would have done against the labels:
//! hits, precision, recall, fraud amount stopped, genuine amount held or declined, and the
//! overlap between rules (the frauds a rule alone catches, and which rules share its hits).
//! The report renders as text, JSON, and an HTML page with an SVG chart.

use crate::MlError;
use crate::dataset::Dataset;
use crate::replay::{ReplayConfig, replay_with};
use cardguard_core::Decision;
use cardguard_engine::{Policy, Scorer};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

/// What one rule would have done.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleStats {
    pub id: String,
    pub action: String,
    pub description: String,
    /// Transactions the rule matched.
    pub hits: u64,
    pub fraud_hits: u64,
    /// Fraud among its hits.
    pub precision: f64,
    /// Its fraud hits among all frauds.
    pub recall: f64,
    /// Amounts (the dataset's currency, major units) of the frauds and of the genuine
    /// transactions it matched: stopped, or held and declined when it does not approve.
    pub fraud_amount: f64,
    pub genuine_amount: f64,
    /// Frauds no other rule matched: zero means the rule only catches what others catch.
    pub unique_fraud_hits: u64,
    /// The rules that matched the same transactions, with how many, most first.
    pub overlaps: Vec<Overlap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overlap {
    pub rule: String,
    pub shared_hits: u64,
}

/// The ruleset as a whole: what it would have decided.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Overall {
    pub transactions: u64,
    pub frauds: u64,
    pub fraud_amount: f64,
    /// By decision: approve, decline, hold, challenge.
    pub decisions: HashMap<String, u64>,
    /// Frauds not approved (declined, held or challenged), and their amount.
    pub frauds_stopped: u64,
    pub fraud_amount_stopped: f64,
    /// Genuine transactions not approved, and their amount.
    pub genuine_stopped: u64,
    pub genuine_amount_stopped: f64,
    pub precision: f64,
    pub recall: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub currency: String,
    pub ruleset_rules: usize,
    pub model: String,
    pub label_delay_days: u32,
    pub overall: Overall,
    pub rules: Vec<RuleStats>,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Replays `data` with `policy` deciding (and `model` scoring when given; the built-in
/// scorecard otherwise).
pub fn run(
    data: &Dataset,
    policy: Policy,
    model: Option<Arc<dyn Scorer>>,
    cfg: &ReplayConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Report, MlError> {
    let policy = Arc::new(policy);
    let sources = policy.ruleset().sources().to_vec();
    let actions: Vec<String> = policy
        .ruleset()
        .compiled()
        .iter()
        .map(|c| c.action.as_str().to_owned())
        .collect();
    let index: HashMap<String, usize> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.clone(), i))
        .collect();
    let n = sources.len();
    let mut rules: Vec<RuleStats> = sources
        .iter()
        .zip(&actions)
        .map(|(s, a)| RuleStats {
            id: s.id.clone(),
            action: a.clone(),
            description: s.description.clone(),
            ..RuleStats::default()
        })
        .collect();
    let mut shared = vec![0u64; n * n];
    let mut overall = Overall::default();
    let scale = 10f64.powi(i32::from(data.currency.exponent()));
    let mut model_name = String::new();
    let mut matched: Vec<usize> = Vec::new();
    replay_with(
        data,
        cfg,
        &mut |engine| {
            engine.set_policy(Arc::clone(&policy));
            if let Some(m) = &model {
                engine.set_scorer(Arc::clone(m));
            }
            model_name = engine.scorer_version().to_owned();
        },
        progress,
        &mut |engine, t, facts, checks| {
            let o = engine.decide_unexplained(facts, checks);
            let amount = facts.amount_base as f64 / scale;
            overall.transactions += 1;
            *overall
                .decisions
                .entry(o.decision.as_str().to_owned())
                .or_default() += 1;
            let stopped = o.decision != Decision::Approve;
            if t.fraud {
                overall.frauds += 1;
                overall.fraud_amount += amount;
                if stopped {
                    overall.frauds_stopped += 1;
                    overall.fraud_amount_stopped += amount;
                }
            } else if stopped {
                overall.genuine_stopped += 1;
                overall.genuine_amount_stopped += amount;
            }
            matched.clear();
            matched.extend(o.matched_rules.iter().filter_map(|id| index.get(id)));
            for &i in &matched {
                let r = &mut rules[i];
                r.hits += 1;
                if t.fraud {
                    r.fraud_hits += 1;
                    r.fraud_amount += amount;
                    if matched.len() == 1 {
                        r.unique_fraud_hits += 1;
                    }
                } else {
                    r.genuine_amount += amount;
                }
                for &j in &matched {
                    if j != i {
                        shared[i * n + j] += 1;
                    }
                }
            }
            Ok(())
        },
    )?;
    overall.precision = ratio(
        overall.frauds_stopped,
        overall.frauds_stopped + overall.genuine_stopped,
    );
    overall.recall = ratio(overall.frauds_stopped, overall.frauds);
    for (i, r) in rules.iter_mut().enumerate() {
        r.precision = ratio(r.fraud_hits, r.hits);
        r.recall = ratio(r.fraud_hits, overall.frauds);
        let mut o: Vec<Overlap> = (0..n)
            .filter(|&j| shared[i * n + j] > 0)
            .map(|j| Overlap {
                rule: sources[j].id.clone(),
                shared_hits: shared[i * n + j],
            })
            .collect();
        o.sort_by(|a, b| b.shared_hits.cmp(&a.shared_hits).then(a.rule.cmp(&b.rule)));
        r.overlaps = o;
    }
    Ok(Report {
        currency: data.currency.code().to_owned(),
        ruleset_rules: n,
        model: model_name,
        label_delay_days: cfg.label_delay_days,
        overall,
        rules,
    })
}

impl Report {
    /// The report as a table for a terminal.
    pub fn text(&self) -> String {
        let o = &self.overall;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} transactions, {} frauds ({:.0} {}); model {}; labels after {} days",
            o.transactions,
            o.frauds,
            o.fraud_amount,
            self.currency,
            self.model,
            self.label_delay_days
        );
        let mut d: Vec<(&String, &u64)> = o.decisions.iter().collect();
        d.sort();
        let _ = writeln!(
            s,
            "decisions: {}",
            d.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            s,
            "stopped (not approved): {} frauds ({:.0} {}), recall {:.3}; {} genuine ({:.0} {}); precision {:.3}",
            o.frauds_stopped,
            o.fraud_amount_stopped,
            self.currency,
            o.recall,
            o.genuine_stopped,
            o.genuine_amount_stopped,
            self.currency,
            o.precision
        );
        let _ = writeln!(
            s,
            "\n{:<24} {:<9} {:>9} {:>9} {:>9} {:>7} {:>14} {:>14} {:>7}  overlaps",
            "rule",
            "action",
            "hits",
            "fraud",
            "precision",
            "recall",
            "fraud amount",
            "genuine amt",
            "unique"
        );
        for r in &self.rules {
            let ov = r
                .overlaps
                .iter()
                .take(3)
                .map(|x| format!("{} {}", x.rule, x.shared_hits))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                s,
                "{:<24} {:<9} {:>9} {:>9} {:>9.3} {:>7.3} {:>14.0} {:>14.0} {:>7}  {}{}",
                r.id,
                r.action,
                r.hits,
                r.fraud_hits,
                r.precision,
                r.recall,
                r.fraud_amount,
                r.genuine_amount,
                r.unique_fraud_hits,
                ov,
                if r.fraud_hits > 0 && r.unique_fraud_hits == 0 {
                    " (catches nothing the others miss)"
                } else {
                    ""
                }
            );
        }
        s
    }

    /// The report as an HTML page: the overall figures, a chart of each rule's precision
    /// and recall (SVG), and the table.
    pub fn html(&self) -> String {
        let esc = |x: &str| {
            x.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let o = &self.overall;
        let row_h = 26;
        let label_w = 200;
        let bar_w = 300;
        let h = 40 + row_h * self.rules.len().max(1);
        let mut svg = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="precision and recall per rule" font-family="sans-serif" font-size="12">
<text x="{label_w}" y="14">precision</text><text x="{x2}" y="14">recall</text>
"##,
            w = label_w + 2 * bar_w + 40,
            x2 = label_w + bar_w + 20,
        );
        for (i, r) in self.rules.iter().enumerate() {
            let y = 24 + i * row_h;
            let _ = write!(
                svg,
                r##"<text x="0" y="{ty}">{id}</text>
<rect x="{label_w}" y="{y}" width="{bar_w}" height="16" fill="#eee"/><rect x="{label_w}" y="{y}" width="{p:.1}" height="16" fill="#2b6cb0"/><text x="{pt}" y="{ty}" fill="#000">{pv:.3}</text>
<rect x="{x2}" y="{y}" width="{bar_w}" height="16" fill="#eee"/><rect x="{x2}" y="{y}" width="{rc:.1}" height="16" fill="#c05621"/><text x="{rt}" y="{ty}" fill="#000">{rv:.3}</text>
"##,
                ty = y + 12,
                id = esc(&r.id),
                p = r.precision * bar_w as f64,
                pt = label_w + 4,
                pv = r.precision,
                x2 = label_w + bar_w + 20,
                rc = r.recall * bar_w as f64,
                rt = label_w + bar_w + 24,
                rv = r.recall,
            );
        }
        svg.push_str("</svg>");
        let mut rows = String::new();
        for r in &self.rules {
            let _ = writeln!(
                rows,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.0}</td><td>{:.0}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.id),
                esc(&r.description),
                r.action,
                r.hits,
                r.fraud_hits,
                r.precision,
                r.recall,
                r.fraud_amount,
                r.genuine_amount,
                r.unique_fraud_hits,
                esc(&r
                    .overlaps
                    .iter()
                    .map(|x| format!("{} ({})", x.rule, x.shared_hits))
                    .collect::<Vec<_>>()
                    .join(", "))
            );
        }
        format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cardguard backtest</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:nth-child(-n+3),th{{text-align:left}}</style></head>
<body><h1>Backtest</h1>
<p>{tx} transactions, {fr} frauds ({fa:.0} {cur}); model {model}; labels known {delay} days after the transaction.</p>
<p>Not approved: {fs} frauds ({fsa:.0} {cur}), recall {rec:.3}; {gs} genuine transactions ({gsa:.0} {cur}); precision {prec:.3}.</p>
{svg}
<table><tr><th>rule</th><th>description</th><th>action</th><th>hits</th><th>fraud hits</th><th>precision</th><th>recall</th><th>fraud amount</th><th>genuine amount</th><th>frauds only it catches</th><th>shares hits with</th></tr>
{rows}</table></body></html>
"#,
            tx = o.transactions,
            fr = o.frauds,
            fa = o.fraud_amount,
            cur = esc(&self.currency),
            model = esc(&self.model),
            delay = self.label_delay_days,
            fs = o.frauds_stopped,
            fsa = o.fraud_amount_stopped,
            rec = o.recall,
            gs = o.genuine_stopped,
            gsa = o.genuine_amount_stopped,
            prec = o.precision,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Dataset {
        // Card 1: a fraud of 900 then a genuine 20; card 2: genuine 950 and 10.
        let csv = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_TIME_SECONDS,TX_TIME_DAYS,TX_FRAUD,TX_FRAUD_SCENARIO\n\
            0,2018-04-01 10:00:00,1,9,900.00,0,0,1,1\n\
            1,2018-04-01 11:00:00,2,9,950.00,0,0,0,0\n\
            2,2018-04-02 10:00:00,1,8,20.00,0,0,0,0\n\
            3,2018-04-03 10:00:00,2,8,10.00,0,0,0,0\n";
        Dataset::read(csv.as_bytes()).unwrap()
    }

    #[test]
    fn each_rule_is_scored_against_the_labels_with_its_overlaps() {
        let rules = r#"
[[rules]]
id = "big"
rule = "hold if :amount: > 500"
[[rules]]
id = "bigger"
rule = "decline if :amount: > 920"
[[rules]]
id = "terminal_9"
rule = "hold if :terminal_id: = '9' and :amount: > 800"
"#;
        let p = Policy::compile(rules, 1).unwrap();
        let r = run(&data(), p, None, &ReplayConfig::default(), &mut |_, _| {}).unwrap();
        let o = &r.overall;
        assert_eq!((o.transactions, o.frauds), (4, 1));
        assert_eq!((o.frauds_stopped, o.genuine_stopped), (1, 1));
        assert_eq!(o.recall, 1.0);
        assert_eq!(o.precision, 0.5);
        assert_eq!(o.decisions["decline"], 1);
        assert_eq!(o.decisions["hold"], 1);
        let big = &r.rules[0];
        assert_eq!((big.hits, big.fraud_hits), (2, 1));
        assert_eq!((big.precision, big.recall), (0.5, 1.0));
        assert_eq!((big.fraud_amount, big.genuine_amount), (900.0, 950.0));
        assert_eq!(big.unique_fraud_hits, 0, "terminal_9 catches it too");
        assert_eq!(
            big.overlaps,
            vec![
                Overlap {
                    rule: "terminal_9".into(),
                    shared_hits: 2
                },
                Overlap {
                    rule: "bigger".into(),
                    shared_hits: 1
                }
            ]
        );
        let bigger = &r.rules[1];
        assert_eq!(
            (bigger.hits, bigger.fraud_hits, bigger.precision),
            (1, 0, 0.0)
        );
        assert!(r.text().contains("catches nothing the others miss"));
        let html = r.html();
        assert!(html.contains("<svg") && html.contains("terminal_9"));
    }
}
