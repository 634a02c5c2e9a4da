//! The handbook's evaluation protocol (its `get_train_test_set`): train on the training days,
//! wait the label delay, test on the test days, and leave out of each test day t the cards
//! already known compromised then (a fraud between the first training day and day
//! t − delay − 1). Early stopping picks the number of trees on the last quarter of the
//! training days; the model is then fitted on all of them with that many trees.

use crate::MlError;
use crate::gbdt::{Round, TrainParams, TrainSet, train};
use crate::metrics::{average_precision, card_precision_at_k, roc_auc};
use crate::model::Model;
use crate::replay::FeatureTable;
use std::collections::HashSet;

/// Days since the Unix epoch, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    pub from: i64,
    pub to: i64,
}

fn parse_day(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = s.get(0..4)?.parse().ok()?;
    let m: i64 = s.get(5..7)?.parse().ok()?;
    let d: i64 = s.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(crate::dataset::days_from_civil(y, m, d))
}

/// `YYYY-MM-DD` of a day number.
pub fn day_string(day: i64) -> String {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

impl DayRange {
    /// `2018-07-25..2018-07-31`.
    pub fn parse(s: &str) -> Result<DayRange, MlError> {
        let bad = || MlError::Invalid(format!("{s:?} is not a day range FROM..TO (YYYY-MM-DD)"));
        let (a, b) = s.split_once("..").ok_or_else(bad)?;
        let (from, to) = (
            parse_day(a.trim()).ok_or_else(bad)?,
            parse_day(b.trim()).ok_or_else(bad)?,
        );
        if to < from {
            return Err(MlError::Invalid(format!(
                "{s}: the range ends before it starts"
            )));
        }
        Ok(DayRange { from, to })
    }

    pub fn days(&self) -> i64 {
        self.to - self.from + 1
    }

    pub fn contains(&self, d: i64) -> bool {
        (self.from..=self.to).contains(&d)
    }

    pub fn shifted(&self, days: i64) -> DayRange {
        DayRange {
            from: self.from + days,
            to: self.to + days,
        }
    }
}

impl std::fmt::Display for DayRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", day_string(self.from), day_string(self.to))
    }
}

/// One evaluation's protocol.
#[derive(Debug, Clone)]
pub struct Protocol {
    pub train: DayRange,
    pub test: DayRange,
    /// Days after a transaction its label is known.
    pub delay_days: u32,
    /// k of card precision@k.
    pub k: usize,
}

/// What an evaluation measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Evaluation {
    pub train: String,
    pub test: String,
    pub average_precision: Option<f64>,
    pub roc_auc: Option<f64>,
    pub card_precision_at_100: Option<f64>,
    pub n_train: usize,
    pub n_train_fraud: usize,
    pub n_test: usize,
    pub n_fraud: usize,
    /// Test transactions of cards already known compromised, left out.
    pub n_removed_known: usize,
    pub trees: usize,
    pub model_version: String,
    pub train_seconds: f64,
    #[serde(skip)]
    pub predictions: Vec<(u64, f32, bool)>,
    #[serde(skip)]
    pub model: Option<Model>,
}

fn subset(t: &FeatureTable, rows: &[usize]) -> (Vec<f32>, Vec<bool>) {
    let mut x = Vec::with_capacity(rows.len() * t.width());
    let mut y = Vec::with_capacity(rows.len());
    for &i in rows {
        x.extend_from_slice(t.row(i));
        y.push(t.y[i]);
    }
    (x, y)
}

/// Runs the protocol on a replayed table.
pub fn evaluate(
    t: &FeatureTable,
    p: &Protocol,
    params: &TrainParams,
    progress: &mut dyn FnMut(&str, Round),
) -> Result<Evaluation, MlError> {
    let train_rows: Vec<usize> = (0..t.rows())
        .filter(|&i| p.train.contains(t.day(i)))
        .collect();
    if train_rows.is_empty() {
        return Err(MlError::Invalid(format!(
            "no transactions on the training days {}",
            p.train
        )));
    }
    // Early stopping on the last quarter of the training days (at least one day).
    let valid_days = (p.train.days() / 4).max(1);
    let fit_to = p.train.to - valid_days;
    let (fit_rows, valid_rows): (Vec<usize>, Vec<usize>) =
        train_rows.iter().partition(|&&i| t.day(i) <= fit_to);
    let started = std::time::Instant::now();
    let mut chosen = params.clone();
    if !fit_rows.is_empty() && valid_rows.iter().any(|&i| t.y[i]) {
        let (fx, fy) = subset(t, &fit_rows);
        let (vx, vy) = subset(t, &valid_rows);
        let m = train(
            &TrainSet {
                x: &fx,
                y: &fy,
                width: t.width(),
            },
            Some(&TrainSet {
                x: &vx,
                y: &vy,
                width: t.width(),
            }),
            &t.names,
            params,
            &mut |r| progress("choosing trees", r),
        )?;
        chosen.max_trees = m.trees.len();
    }
    let (x, y) = subset(t, &train_rows);
    let model = train(
        &TrainSet {
            x: &x,
            y: &y,
            width: t.width(),
        },
        None,
        &t.names,
        &chosen,
        &mut |r| progress("training", r),
    )?;
    let train_seconds = started.elapsed().as_secs_f64();

    // The test set without the cards known compromised on each day.
    let delay = i64::from(p.delay_days);
    let mut known: HashSet<u64> = HashSet::new();
    let mut known_through = p.train.from - 1;
    let mut order: Vec<usize> = (0..t.rows())
        .filter(|&i| p.test.contains(t.day(i)))
        .collect();
    order.sort_by_key(|&i| (t.day(i), t.ts_ms[i]));
    // Frauds by day, for the known set.
    let mut frauds: Vec<(i64, u64)> = (0..t.rows())
        .filter(|&i| t.y[i] && t.day(i) >= p.train.from && t.day(i) < p.test.to - delay)
        .map(|i| (t.day(i), t.card[i]))
        .collect();
    frauds.sort_unstable();
    let mut fi = 0;
    let (mut days, mut cards, mut scores, mut labels) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut predictions = Vec::new();
    let mut removed = 0;
    for &i in &order {
        let day = t.day(i);
        let horizon = day - delay - 1;
        if horizon > known_through {
            while fi < frauds.len() && frauds[fi].0 <= horizon {
                known.insert(frauds[fi].1);
                fi += 1;
            }
            known_through = horizon;
        }
        if known.contains(&t.card[i]) {
            removed += 1;
            continue;
        }
        let s = model.predict(t.row(i));
        days.push(day);
        cards.push(t.card[i]);
        scores.push(s);
        labels.push(t.y[i]);
        predictions.push((t.id[i], s, t.y[i]));
    }
    Ok(Evaluation {
        train: p.train.to_string(),
        test: p.test.to_string(),
        average_precision: average_precision(&scores, &labels),
        roc_auc: roc_auc(&scores, &labels),
        card_precision_at_100: card_precision_at_k(&days, &cards, &scores, &labels, p.k),
        n_train: train_rows.len(),
        n_train_fraud: y.iter().filter(|&&l| l).count(),
        n_test: labels.len(),
        n_fraud: labels.iter().filter(|&&l| l).count(),
        n_removed_known: removed,
        trees: model.trees.len(),
        model_version: model.model_version.clone(),
        train_seconds,
        predictions,
        model: Some(model),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_ranges_parse_and_print() {
        let r = DayRange::parse("2018-07-25..2018-07-31").unwrap();
        assert_eq!(r.days(), 7);
        assert_eq!(r.to_string(), "2018-07-25..2018-07-31");
        assert_eq!(day_string(0), "1970-01-01");
        assert_eq!(day_string(parse_day("2024-02-29").unwrap()), "2024-02-29");
        assert!(DayRange::parse("2018-07-31..2018-07-25").is_err());
        assert!(DayRange::parse("yesterday").is_err());
        assert!(DayRange::parse("2018-13-01..2018-13-02").is_err());
    }

    /// Card 1 is compromised on day 0; card 2 on day 9. With a 2-day delay and test days
    /// 5..10, card 1 is known from test day 2 (+1) on, card 2 only after the test.
    #[test]
    fn known_compromised_cards_leave_the_test_days() {
        let day = 86_400_000i64;
        let mut t = FeatureTable {
            names: vec!["x".into()],
            ..FeatureTable::default()
        };
        let mut push = |id: u64, d: i64, card: u64, fraud: bool, x: f32| {
            t.x.push(x);
            t.y.push(fraud);
            t.ts_ms.push(d * day + 1000);
            t.card.push(card);
            t.id.push(id);
        };
        let mut id = 0;
        for d in 0..3 {
            for c in 10..40 {
                id += 1;
                push(id, d, c, c % 7 == 0, if c % 7 == 0 { 1.0 } else { 0.0 });
            }
        }
        push(1000, 0, 1, true, 1.0);
        push(1001, 6, 1, true, 1.0);
        push(1002, 9, 2, true, 1.0);
        push(1003, 9, 3, false, 0.0);
        let p = Protocol {
            train: DayRange { from: 0, to: 2 },
            test: DayRange { from: 5, to: 10 },
            delay_days: 2,
            k: 100,
        };
        let tp = TrainParams {
            max_trees: 5,
            min_child_weight: 0.01,
            ..TrainParams::default()
        };
        let e = evaluate(&t, &p, &tp, &mut |_, _| {}).unwrap();
        // Card 1's day-6 fraud is left out (known since its day-0 fraud); cards 2 and 3 stay.
        assert_eq!((e.n_test, e.n_fraud, e.n_removed_known), (2, 1, 1));
        assert_eq!(e.average_precision, Some(1.0));
        assert_eq!(e.predictions.len(), 2);
    }
}
