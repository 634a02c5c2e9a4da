//! `cardguard backtest`: a ruleset (and a model) replayed over labelled history through the
//! engine's own code, with what each rule would have done against the labels; a progress bar
//! on a terminal, the table (or `--json`) on stdout, and with `--report DIR` an HTML page
//! with an SVG chart.

use anyhow::{Context, Result};
use cardguard_ml::dataset::Dataset;
use cardguard_ml::replay::ReplayConfig;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args)]
pub struct BacktestArgs {
    /// Labelled transactions: the engine's CSV schema or the handbook's (gzip or not), in
    /// time order.
    #[arg(long)]
    transactions: PathBuf,
    /// The ruleset (TOML, as `PUT /v1/rules` takes it); the default ruleset when absent.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// A model file from `cardguard ml train`; the built-in scorecard when absent.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Days after a transaction its fraud label is known (the terminal risk features wait
    /// this long).
    #[arg(long, default_value_t = 7)]
    label_delay_days: u32,
    /// The report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// A folder for `backtest.html` (the chart and the table) and `backtest.json`.
    #[arg(long)]
    report: Option<PathBuf>,
}

pub fn run(a: BacktestArgs) -> Result<()> {
    let text = match &a.rules {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => cardguard_engine::DEFAULT_RULES.to_owned(),
    };
    let policy = cardguard_engine::Policy::compile(&text, 0).map_err(|errors| {
        anyhow::anyhow!(
            "the ruleset is refused: {}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let model: Option<Arc<dyn cardguard_engine::Scorer>> = match &a.model {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let m = cardguard_ml::Model::from_json(&text)
                .with_context(|| format!("model {}", p.display()))?;
            Some(Arc::new(m.compile()?))
        }
        None => None,
    };
    let t0 = Instant::now();
    let f = std::fs::File::open(&a.transactions)
        .with_context(|| format!("opening {}", a.transactions.display()))?;
    let data = Dataset::read(f).with_context(|| format!("reading {}", a.transactions.display()))?;
    eprintln!(
        "read {} transactions in {:.1} s",
        data.transactions.len(),
        t0.elapsed().as_secs_f64()
    );
    let cfg = ReplayConfig {
        label_delay_days: a.label_delay_days,
        ..ReplayConfig::default()
    };
    let mut bar = crate::progress::Progress::new("backtest", data.transactions.len() as u64);
    let report = cardguard_ml::backtest::run(&data, policy, model, &cfg, &mut |done, _| {
        bar.set(done as u64, "")
    })?;
    bar.finish(&format!(
        "{} transactions through {} rules",
        report.overall.transactions, report.ruleset_rules
    ));
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    if let Some(dir) = &a.report {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let html = dir.join("backtest.html");
        std::fs::write(&html, report.html())
            .with_context(|| format!("writing {}", html.display()))?;
        let json = dir.join("backtest.json");
        std::fs::write(&json, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", json.display()))?;
        eprintln!("report: {}", html.display());
    }
    Ok(())
}
