//! `cardguard mail scan PATH`: reads messages from a file (one message or an mbox), a
//! Maildir or a folder of any of these (recursively; each file told apart by its content),
//! and prints each verdict as a table row (with its top reasons) or a JSON line. It exits as
//! virus and spam scanners do: 0 when every message is clean, 1 when one is flagged
//! (phishing or suspicious), 2 when nothing is flagged but something could not be read or
//! the scan failed.

use anyhow::{Context, Result};
use cardguard_phish::{BrandRegistry, Report};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum MailCmd {
    /// Analyze messages for phishing.
    Scan {
        /// A message file, an mbox, a Maildir or a folder of these.
        path: PathBuf,
        /// One JSON object per message instead of a table.
        #[arg(long)]
        json: bool,
        /// A TOML file of more brands (same form as the built-in registry).
        #[arg(long)]
        brands: Option<PathBuf>,
        /// Believe Authentication-Results headers from this receiving server (repeatable).
        #[arg(long = "trust-authserv")]
        trust_authserv: Vec<String>,
        /// Verify SPF, DKIM and DMARC against DNS (the system's resolvers); SPF takes the
        /// client address from the first public hop in the Received headers.
        #[arg(long)]
        verify_sender: bool,
        /// Verify against this fixed zone file instead of DNS (offline; implies
        /// --verify-sender). Lines: `name TXT "..."`, `name A ip`, `name MX pref host`.
        #[arg(long)]
        dns_zone: Option<PathBuf>,
        /// Score at and above which a message is suspicious.
        #[arg(long, default_value_t = 25)]
        suspicious_at: u32,
        /// Score at and above which a message is phishing.
        #[arg(long, default_value_t = 50)]
        phishing_at: u32,
    },
    /// Recall and false-positive rate at every threshold over labelled mail, the ROC curve
    /// and its area, the lowest thresholds that keep false positives down, and a fit of
    /// scores to probabilities: to choose `mail.suspicious_at` and `mail.phishing_at`.
    Evaluate {
        /// Phishing messages: a file, an mbox, a Maildir or a folder (repeatable).
        #[arg(long, required = true)]
        phish: Vec<PathBuf>,
        /// Genuine messages (repeatable).
        #[arg(long, required = true)]
        ham: Vec<PathBuf>,
        /// A TOML file of more brands.
        #[arg(long)]
        brands: Option<PathBuf>,
        /// The thresholds to mark on the curve.
        #[arg(long, default_value_t = 25)]
        suspicious_at: u32,
        #[arg(long, default_value_t = 50)]
        phishing_at: u32,
        /// A folder for roc.svg, evaluate.html and evaluate.json.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Everything as JSON (every threshold's point included).
        #[arg(long)]
        json: bool,
    },
    /// Lookalike domains of DOMAIN to watch (dnstwist-style permutations).
    Lookalikes {
        domain: String,
        #[arg(long)]
        json: bool,
    },
    /// Whether a URL imitates a registered brand, and why.
    CheckUrl {
        url: String,
        #[arg(long)]
        brands: Option<PathBuf>,
    },
}

/// Exit codes of `mail scan`.
pub const EXIT_FLAGGED: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

pub fn run(cmd: MailCmd) -> Result<std::process::ExitCode> {
    let mut code = 0u8;
    let r = match cmd {
        MailCmd::Scan {
            path,
            json,
            brands,
            trust_authserv,
            verify_sender,
            dns_zone,
            suspicious_at,
            phishing_at,
        } => {
            let opts = cardguard_phish::Options {
                trusted_authserv_ids: trust_authserv,
                thresholds: cardguard_phish::Thresholds::new(suspicious_at, phishing_at)?,
                ..Default::default()
            };
            let verifier =
                cardguard_mailauth::load::sender_verifier(verify_sender, dns_zone.as_deref())?;
            scan(&path, json, brands.as_deref(), &opts, verifier.as_ref()).map(|c| {
                code = if c[0] + c[1] > 0 {
                    EXIT_FLAGGED
                } else if c[3] > 0 {
                    EXIT_ERROR
                } else {
                    0
                };
            })
        }
        MailCmd::Evaluate {
            phish,
            ham,
            brands,
            suspicious_at,
            phishing_at,
            report,
            json,
        } => evaluate(
            &phish,
            &ham,
            brands.as_deref(),
            cardguard_phish::Thresholds::new(suspicious_at, phishing_at)?,
            report.as_deref(),
            json,
        ),
        MailCmd::Lookalikes { domain, json } => lookalikes(&domain, json),
        MailCmd::CheckUrl { url, brands } => {
            let reg = registry(brands.as_deref())?;
            println!(
                "{}",
                serde_json::to_string_pretty(&cardguard_phish::check_url(&url, &reg))?
            );
            Ok(())
        }
    };
    // A reader that stops early (`| head`) is not an error.
    match r {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(std::process::ExitCode::from(code))
        }
        Err(e) => Err(e),
        Ok(()) => Ok(std::process::ExitCode::from(code)),
    }
}

/// One message read from a source, with where it came from.
pub struct Source {
    pub origin: String,
    pub raw: Vec<u8>,
}

/// Every message under `path`.
pub fn read_messages(path: &Path, out: &mut Vec<Source>) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') || name == "tmp" {
                continue;
            }
            read_messages(&p, out)?;
        }
        return Ok(());
    }
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if raw.starts_with(b"From ") {
        let it = mail_parser::mailbox::mbox::MessageIterator::new(std::io::Cursor::new(raw));
        for (i, m) in it.enumerate() {
            let m = m.with_context(|| format!("reading mbox {}", path.display()))?;
            out.push(Source {
                origin: format!("{}#{}", path.display(), i + 1),
                raw: m.unwrap_contents(),
            });
        }
    } else if !raw.is_empty() {
        out.push(Source {
            origin: path.display().to_string(),
            raw,
        });
    }
    Ok(())
}

fn registry(brands: Option<&Path>) -> Result<BrandRegistry> {
    Ok(cardguard_mailauth::load::brands(brands)?)
}

/// `mail evaluate`: the analyzer's operating points on labelled mail.
pub fn evaluate(
    phish: &[PathBuf],
    ham: &[PathBuf],
    brands: Option<&Path>,
    marks: cardguard_phish::Thresholds,
    report: Option<&Path>,
    json: bool,
) -> Result<()> {
    use cardguard_phish::calibrate::{Calibration, auc, roc, roc_svg};
    let reg = registry(brands)?;
    let scores = |paths: &[PathBuf]| -> Result<(Vec<u32>, usize)> {
        let mut sources = Vec::new();
        for p in paths {
            read_messages(p, &mut sources)?;
        }
        let mut out = Vec::with_capacity(sources.len());
        let mut unreadable = 0;
        for s in &sources {
            match cardguard_phish::analyze(&s.raw, &reg) {
                Ok(r) => out.push(r.score),
                Err(_) => unreadable += 1,
            }
        }
        Ok((out, unreadable))
    };
    let (p, pu) = scores(phish)?;
    let (h, hu) = scores(ham)?;
    anyhow::ensure!(
        !p.is_empty() && !h.is_empty(),
        "both --phish and --ham must hold readable messages ({} and {} found)",
        p.len(),
        h.len()
    );
    let points = roc(&p, &h);
    let area = auc(&points);
    let fit = Calibration::fit(&p, &h);
    // The lowest thresholds that keep false positives at most 0.2% and at none.
    let lowest = |max_fpr: f64| {
        points
            .iter()
            .filter(|x| x.false_positive_rate <= max_fpr)
            .map(|x| x.threshold)
            .min()
    };
    let summary = serde_json::json!({
        "phishing": p.len(), "genuine": h.len(), "unreadable": pu + hu,
        "roc_auc": area,
        "calibration": fit,
        "thresholds": marks,
        "lowest_threshold_fpr_0_2_percent": lowest(0.002),
        "lowest_threshold_no_false_positive": lowest(0.0),
        "points": points,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "{} phishing and {} genuine messages ({} unreadable); ROC AUC {area:.4}",
            p.len(),
            h.len(),
            pu + hu
        );
        println!(
            "{:>9}  {:>7}  {:>9}  {:>8}  {:>9}",
            "threshold", "recall", "phishing", "FPR", "genuine"
        );
        for x in points.iter().filter(|x| {
            (x.threshold % 5 == 0 && x.threshold <= 100)
                || x.threshold == marks.suspicious
                || x.threshold == marks.phishing
        }) {
            let mark = if x.threshold == marks.phishing {
                "  <- phishing"
            } else if x.threshold == marks.suspicious {
                "  <- suspicious"
            } else {
                ""
            };
            println!(
                "{:>9}  {:>7.4}  {:>9}  {:>8.5}  {:>9}{mark}",
                x.threshold, x.recall, x.flagged_phish, x.false_positive_rate, x.flagged_ham
            );
        }
        println!(
            "lowest threshold with at most 0.2% false positives: {}; with none: {}",
            lowest(0.002).map_or("-".into(), |t| t.to_string()),
            lowest(0.0).map_or("-".into(), |t| t.to_string())
        );
        println!(
            "calibration (probability = 1 / (1 + exp(-(a * score + b)))): a = {:.6}, b = {:.6}",
            fit.a, fit.b
        );
    }
    if let Some(dir) = report {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let svg = roc_svg(&points, &marks);
        std::fs::write(dir.join("roc.svg"), &svg)?;
        let rows: String = points
            .iter()
            .filter(|x| x.threshold % 5 == 0 && x.threshold <= 100)
            .map(|x| {
                format!(
                    "<tr><td>{}</td><td>{:.4}</td><td>{}</td><td>{:.5}</td><td>{}</td></tr>\n",
                    x.threshold, x.recall, x.flagged_phish, x.false_positive_rate, x.flagged_ham
                )
            })
            .collect();
        let html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>cardguard mail evaluate</title>\
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}table{{border-collapse:collapse}}</style></head>\
<body><h1>Phishing analyzer: operating points</h1><p>{} phishing and {} genuine messages; ROC AUC {area:.4}; \
thresholds in force: suspicious {} and phishing {}.</p>\n{svg}<table><tr><th>threshold</th><th>recall</th><th>phishing flagged</th>\
<th>false-positive rate</th><th>genuine flagged</th></tr>\n{rows}</table><p>Calibration: probability = 1 / (1 + exp(-({:.6} × score + {:.6}))).</p></body></html>\n",
            p.len(),
            h.len(),
            marks.suspicious,
            marks.phishing,
            fit.a,
            fit.b
        );
        std::fs::write(dir.join("evaluate.html"), html)?;
        std::fs::write(
            dir.join("evaluate.json"),
            serde_json::to_vec_pretty(&summary)?,
        )?;
        eprintln!("report: {}", dir.join("evaluate.html").display());
    }
    Ok(())
}

fn lookalikes(domain: &str, json: bool) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let perms = cardguard_phish::permutations(domain);
    for p in &perms {
        if json {
            writeln!(out, "{}", serde_json::to_string(p)?)?;
        } else {
            writeln!(out, "{:<14} {}", p.technique, p.domain)?;
        }
    }
    if !json {
        writeln!(out, "{} permutations of {domain}", perms.len())?;
    }
    Ok(())
}

fn scan(
    path: &Path,
    json: bool,
    brands: Option<&Path>,
    opts: &cardguard_phish::Options,
    verifier: Option<&cardguard_mailauth::SenderVerifier>,
) -> Result<[usize; 4]> {
    let reg = registry(brands)?;
    let rt = match verifier {
        Some(_) => Some(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        ),
        None => None,
    };
    let mut sources = Vec::new();
    read_messages(path, &mut sources)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut counts = [0usize; 4];
    for s in &sources {
        let checked;
        let opts = match (verifier, &rt) {
            (Some(v), Some(rt)) => {
                checked = cardguard_phish::Options {
                    verified: rt.block_on(v.verify(&s.raw, None)),
                    ..opts.clone()
                };
                &checked
            }
            _ => opts,
        };
        match cardguard_phish::analyze_with(&s.raw, &reg, opts) {
            Ok(r) => {
                counts[match r.verdict {
                    cardguard_phish::Verdict::Phishing => 0,
                    cardguard_phish::Verdict::Suspicious => 1,
                    cardguard_phish::Verdict::Clean => 2,
                }] += 1;
                if json {
                    let mut v = serde_json::to_value(&r)?;
                    v["source"] = serde_json::json!(s.origin);
                    if verifier.is_some() {
                        v["sender_auth"] = serde_json::to_value(&opts.verified)?;
                    }
                    writeln!(out, "{v}")?;
                } else {
                    writeln!(out, "{}", row(&s.origin, &r))?;
                }
            }
            Err(e) => {
                counts[3] += 1;
                if json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({"source": s.origin, "error": e.to_string()})
                    )?;
                } else {
                    writeln!(out, "{:<40} error: {e}", s.origin)?;
                }
            }
        }
    }
    if !json {
        writeln!(
            out,
            "{} messages: {} phishing, {} suspicious, {} clean, {} unreadable",
            sources.len(),
            counts[0],
            counts[1],
            counts[2],
            counts[3]
        )?;
    }
    out.flush()?;
    Ok(counts)
}

/// One table row: verdict, score, brand, subject, file, and the three weightiest reasons
/// with their weights.
fn row(origin: &str, r: &Report) -> String {
    let mut top: Vec<&cardguard_phish::Finding> = r.reasons.iter().collect();
    top.sort_by_key(|f| std::cmp::Reverse(f.weight));
    let mut codes: Vec<String> = top
        .iter()
        .take(3)
        .map(|f| format!("{} +{}", f.code, f.weight))
        .collect();
    if top.len() > 3 {
        codes.push(format!("and {} more", top.len() - 3));
    }
    let subject: String = r
        .subject
        .as_deref()
        .unwrap_or("")
        .chars()
        .take(40)
        .collect();
    format!(
        "{:<10} {:>3}  {:<18} {:<42} {}  [{}]",
        serde_json::to_value(r.verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        r.score,
        r.brand.as_deref().unwrap_or("-"),
        subject,
        origin.rsplit('/').next().unwrap_or(origin),
        codes.join(", ")
    )
}
