//! `cardguard ml`: train a fraud model on a labelled transaction file, evaluate it under the
//! fraud detection handbook's protocol (features by replay, label delay, known compromised
//! cards removed) with a report of the curves, and import XGBoost and LightGBM models.

use anyhow::{Context, Result, bail};
use cardguard_ml::evaluate::{DayRange, Evaluation, Protocol, day_string, evaluate};
use cardguard_ml::gbdt::{Round, TrainParams, TrainSet};
use cardguard_ml::{Dataset, FeatureTable, ReplayConfig, replay};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Subcommand)]
pub enum MlCmd {
    /// Fit a model on the transactions and write the model file.
    Train(TrainArgs),
    /// Train on the training days and measure on the test days (the handbook's protocol).
    Evaluate(EvaluateArgs),
    /// Turn an XGBoost JSON or LightGBM text model into a cardguard model file.
    Import(ImportArgs),
    /// Search the trainer's settings over prequential folds within a time budget, then
    /// train the model with the best and write both (settings beside the model).
    Tune(TuneArgs),
    /// Write the features the replay computes for every transaction (CSV: TRANSACTION_ID,
    /// DAY, CARD_ID, TX_FRAUD, then one column per feature), for other tools.
    Features(FeaturesArgs),
}

#[derive(clap::Args)]
pub struct FeaturesArgs {
    /// Labelled transactions: the engine's CSV schema or the handbook's, plain or gzip.
    #[arg(long)]
    transactions: PathBuf,
    /// Days after a transaction its fraud label is known.
    #[arg(long, default_value_t = 7)]
    delay_days: u32,
    #[arg(long)]
    out: PathBuf,
}

fn features_cmd(a: FeaturesArgs) -> Result<()> {
    let t = load(&a.transactions, a.delay_days)?;
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?,
    );
    writeln!(
        w,
        "TRANSACTION_ID,DAY,CARD_ID,TX_FRAUD,{}",
        t.names.join(",")
    )?;
    for i in 0..t.rows() {
        write!(
            w,
            "{},{},{},{}",
            t.id[i],
            day_string(t.day(i)),
            t.card[i],
            u8::from(t.y[i])
        )?;
        for v in t.row(i) {
            write!(w, ",{v}")?;
        }
        writeln!(w)?;
    }
    w.flush()?;
    Ok(())
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// A model saved by XGBoost as JSON (`binary:logistic`).
    #[arg(
        long,
        conflicts_with = "lightgbm",
        required_unless_present = "lightgbm"
    )]
    xgboost: Option<PathBuf>,
    /// A model saved by LightGBM as text (`binary`).
    #[arg(long)]
    lightgbm: Option<PathBuf>,
    /// Where to write the cardguard model file.
    #[arg(long)]
    out: PathBuf,
}

/// The trainer's settings on the command line.
#[derive(clap::Args, Clone)]
pub struct TrainerArgs {
    /// Most trees.
    #[arg(long, default_value_t = 600)]
    trees: usize,
    #[arg(long, default_value_t = 0.05)]
    learning_rate: f32,
    #[arg(long, default_value_t = 6)]
    max_depth: usize,
    #[arg(long, default_value_t = 5.0)]
    min_child_weight: f64,
    #[arg(long, default_value_t = 0.8)]
    subsample: f64,
    #[arg(long, default_value_t = 0.8)]
    colsample: f64,
    /// Weight of a fraud against a genuine transaction (class imbalance).
    #[arg(long, default_value_t = 1.0)]
    scale_pos_weight: f64,
    /// Share of the genuine transactions each tree sees (class imbalance, and speed).
    #[arg(long, default_value_t = 1.0)]
    neg_subsample: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl TrainerArgs {
    fn params(&self) -> TrainParams {
        TrainParams {
            max_trees: self.trees,
            learning_rate: self.learning_rate,
            max_depth: self.max_depth,
            min_child_weight: self.min_child_weight,
            subsample: self.subsample,
            colsample: self.colsample,
            scale_pos_weight: self.scale_pos_weight,
            neg_subsample: self.neg_subsample,
            seed: self.seed,
            ..TrainParams::default()
        }
    }
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Labelled transactions: the engine's CSV schema or the handbook's, plain or gzip.
    #[arg(
        long,
        required_unless_present = "from_log",
        conflicts_with = "from_log"
    )]
    transactions: Option<PathBuf>,
    /// Or a server's data directory: its event log's authorizations and the labels it
    /// received (through /v1/labels, disputes, "not me" answers), replayed as the server
    /// applied them (it may be running).
    #[arg(long)]
    from_log: Option<PathBuf>,
    /// Training days FROM..TO (default: all but the last 7 days, which stop the training
    /// early).
    #[arg(long)]
    train: Option<String>,
    /// Days after a transaction its fraud label is known.
    #[arg(long, default_value_t = 7)]
    delay_days: u32,
    /// Where to write the model file.
    #[arg(long)]
    out: PathBuf,
    /// Trainer settings from `ml tune` (NAME.settings.json) instead of the options below.
    #[arg(long)]
    settings: Option<PathBuf>,
    #[command(flatten)]
    trainer: TrainerArgs,
}

#[derive(clap::Args)]
pub struct EvaluateArgs {
    /// Labelled transactions: the engine's CSV schema or the handbook's, plain or gzip.
    #[arg(
        long,
        required_unless_present = "from_log",
        conflicts_with = "from_log"
    )]
    transactions: Option<PathBuf>,
    /// Or a server's data directory (see `ml train --from-log`).
    #[arg(long)]
    from_log: Option<PathBuf>,
    /// Training days FROM..TO.
    #[arg(long)]
    train: String,
    /// Days after a transaction its fraud label is known.
    #[arg(long, default_value_t = 7)]
    delay_days: u32,
    /// Test days FROM..TO.
    #[arg(long)]
    test: String,
    /// Also k consecutive earlier folds (each moved back by the test length): mean and
    /// deviation.
    #[arg(long, default_value_t = 1)]
    folds: usize,
    /// Write TRANSACTION_ID,score,label for every test transaction.
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// Write precision-recall and ROC curves (SVG) and an HTML page to this folder.
    #[arg(long)]
    report: Option<PathBuf>,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Which features the model may use: all of the engine's, or only the fraud detection
    /// handbook's 15 (to see what the others add, with the same trainer).
    #[arg(long, value_enum, default_value_t = FeatureSet::All)]
    features: FeatureSet,
    #[command(flatten)]
    trainer: TrainerArgs,
}

/// The features a model is trained on.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FeatureSet {
    All,
    Handbook,
}

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// Cards in the portfolio.
    #[arg(long, default_value_t = 10_000)]
    cards: u64,
    /// Days of transactions.
    #[arg(long, default_value_t = 120)]
    days: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First day (UTC).
    #[arg(long, default_value = "2026-04-01")]
    start: String,
    /// Where to write the CSV (gzip when the name ends in .gz).
    #[arg(long)]
    out: PathBuf,
}

pub fn simulate_cmd(a: SimulateArgs) -> Result<()> {
    let start = DayRange::parse(&format!("{0}..{0}", a.start))?.from;
    let cfg = cardguard_ml::simulate::SimConfig {
        cards: a.cards,
        days: a.days,
        seed: a.seed,
        start_day: start,
    };
    let file =
        std::fs::File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let t0 = Instant::now();
    let sum = if a.out.extension().is_some_and(|e| e == "gz") {
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let s = cardguard_ml::simulate::simulate(&cfg, &mut gz)?;
        gz.finish()?;
        s
    } else {
        cardguard_ml::simulate::simulate(&cfg, file)?
    };
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{} transactions ({} frauds: {:?} by scenario 0-7) in {secs:.1} s, {:.0} transactions/s -> {}",
        sum.transactions,
        sum.frauds,
        sum.by_scenario,
        sum.transactions as f64 / secs,
        a.out.display()
    );
    Ok(())
}

pub fn run(cmd: MlCmd) -> Result<()> {
    match cmd {
        MlCmd::Train(a) => train_cmd(a),
        MlCmd::Evaluate(a) => evaluate_cmd(a),
        MlCmd::Import(a) => import_cmd(a),
        MlCmd::Features(a) => features_cmd(a),
        MlCmd::Tune(a) => tune_cmd(a),
    }
}

#[derive(clap::Args)]
pub struct TuneArgs {
    /// Labelled transactions: the engine's CSV schema or the handbook's, plain or gzip.
    #[arg(long)]
    transactions: PathBuf,
    /// The latest fold's training days FROM..TO.
    #[arg(long)]
    train: String,
    /// The latest fold's test days FROM..TO; earlier folds move back by its length.
    #[arg(long)]
    test: String,
    #[arg(long, default_value_t = 4)]
    folds: usize,
    /// Days after a transaction its fraud label is known.
    #[arg(long, default_value_t = 7)]
    delay_days: u32,
    /// Seconds the search may take (the final model's training comes after it).
    #[arg(long, default_value_t = 600)]
    budget_secs: u64,
    /// Settings tried at most.
    #[arg(long, default_value_t = 50)]
    max_trials: usize,
    /// What to maximize: average precision or card precision@100 (mean over the folds).
    #[arg(long, value_parser = ["ap", "card-precision"], default_value = "ap")]
    objective: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The model file to write, trained on all the data with the best settings; the
    /// settings (and every trial) go beside it as NAME.settings.json.
    #[arg(long)]
    out: PathBuf,
}

/// Where the settings of a model go: `model.json` → `model.settings.json`.
fn settings_path(model: &Path) -> PathBuf {
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    model.with_file_name(format!("{stem}.settings.json"))
}

fn tune_cmd(a: TuneArgs) -> Result<()> {
    use cardguard_ml::tune::{Objective, tune};
    writable(&a.out)?;
    let train = DayRange::parse(&a.train)?;
    let test = DayRange::parse(&a.test)?;
    let objective = match a.objective.as_str() {
        "card-precision" => Objective::CardPrecisionAt100,
        _ => Objective::AveragePrecision,
    };
    let table = load(&a.transactions, a.delay_days)?;
    let protocols = folds(&table, &train, &test, a.folds, a.delay_days)?;
    let budget = std::time::Duration::from_secs(a.budget_secs);
    let tuned = tune(
        &table,
        &protocols,
        objective,
        budget,
        a.max_trials,
        a.seed,
        &mut |p| {
            let best = p
                .best
                .map(|b| format!("best {:.4} ± {:.4}", b.mean, b.sd))
                .unwrap_or_else(|| "best -".into());
            crate::progress::stage(
                "tuning",
                p.elapsed.as_secs().min(p.budget.as_secs()),
                p.budget.as_secs(),
                &format!("trial {} fold {}/{}; {best}", p.trial, p.fold, p.folds),
            );
        },
    )?;
    eprintln!();
    for (i, t) in tuned.trials.iter().enumerate() {
        println!(
            "trial {:>2}: {:.4} ± {:.4} (folds {}) in {:.1} s: trees {} lr {} depth {} min_child_weight {} subsample {} colsample {} scale_pos_weight {} neg_subsample {} lambda {}",
            i + 1,
            t.mean,
            t.sd,
            t.scores
                .iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
                .join(" "),
            t.seconds,
            t.params.max_trees,
            t.params.learning_rate,
            t.params.max_depth,
            t.params.min_child_weight,
            t.params.subsample,
            t.params.colsample,
            t.params.scale_pos_weight,
            t.params.neg_subsample,
            t.params.lambda
        );
    }
    let b = &tuned.best;
    println!(
        "best of {} trials over {} folds in {:.0} s: {:?} {:.4} ± {:.4}",
        tuned.trials.len(),
        tuned.folds,
        tuned.seconds,
        tuned.objective,
        b.mean,
        b.sd
    );
    let settings = settings_path(&a.out);
    std::fs::write(&settings, serde_json::to_vec_pretty(&tuned)?)
        .with_context(|| format!("writing {}", settings.display()))?;
    fit(&table, None, &b.params, &a.out)?;
    println!("settings -> {}", settings.display());
    Ok(())
}

/// The folds of an evaluation: the latest `train`/`test`, then `n - 1` earlier ones, each
/// moved back by the test length; every fold's training days must be in the data.
fn folds(
    table: &FeatureTable,
    train: &DayRange,
    test: &DayRange,
    n: usize,
    delay_days: u32,
) -> Result<Vec<Protocol>> {
    if test.from <= train.to {
        bail!("the test days must come after the training days");
    }
    if n == 0 {
        bail!("--folds must be at least 1");
    }
    if table.rows() > 0 {
        let first = table.day(0);
        let earliest = train.shifted(-((n - 1) as i64) * test.days()).from;
        if earliest < first {
            let fit = 1 + (train.from - first).max(0) / test.days().max(1);
            bail!(
                "--folds {n} reaches back to {}, before the data starts ({}): at most {fit} folds fit",
                day_string(earliest),
                day_string(first)
            );
        }
    }
    Ok((0..n)
        .map(|k| {
            let back = -(k as i64) * test.days();
            Protocol {
                train: train.shifted(back),
                test: test.shifted(back),
                delay_days,
                k: 100,
            }
        })
        .collect())
}

fn import_cmd(a: ImportArgs) -> Result<()> {
    let (path, model) = match (&a.xgboost, &a.lightgbm) {
        (Some(p), _) => (
            p,
            read_text(p).and_then(|t| Ok(cardguard_ml::import::from_xgboost_json(&t)?)),
        ),
        (None, Some(p)) => (
            p,
            read_text(p).and_then(|t| Ok(cardguard_ml::import::from_lightgbm_text(&t)?)),
        ),
        (None, None) => bail!("give --xgboost or --lightgbm"),
    };
    let model = model.with_context(|| format!("importing {}", path.display()))?;
    // The engine must be able to score it: every feature one it computes.
    let engine_ready = model.compile().map(|_| ()).err();
    std::fs::write(&a.out, model.to_json()?)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "{} trees over {} features; model {} -> {}",
        model.trees.len(),
        model.features.len(),
        model.model_version,
        a.out.display()
    );
    if let Some(e) = engine_ready {
        eprintln!("note: the engine cannot serve this model: {e}");
    }
    Ok(())
}

fn read_text(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
}

/// A stage's progress bar (see `progress::stage`).
fn bar(what: &str, done: usize, total: usize) {
    crate::progress::stage(what, done as u64, total as u64, "");
}

fn round_bar(what: &str, r: Round) {
    let note = match r.valid_ap {
        Some(ap) => format!("trees {} best {} valid AP {ap:.4}", r.trees, r.best_trees),
        None => format!("trees {}", r.trees),
    };
    crate::progress::stage(what, r.trees as u64, r.max_trees as u64, &note);
}

/// The features of a transaction file, or of a server's event log.
fn load_from(
    transactions: Option<&Path>,
    from_log: Option<&Path>,
    delay_days: u32,
) -> Result<FeatureTable> {
    match (transactions, from_log) {
        (Some(t), _) => load(t, delay_days),
        (None, Some(dir)) => load_log(dir, delay_days),
        (None, None) => bail!("give --transactions FILE or --from-log DATA_DIR"),
    }
}

/// Every event of the log in `data_dir` (read without a lock: a server may be writing it),
/// replayed for features.
fn load_log(data_dir: &Path, delay_days: u32) -> Result<FeatureTable> {
    use cardguard_app::consumer::{self, ConsumerOptions, Delivery, MemoryCursors, Start};
    let t0 = Instant::now();
    let path = data_dir.join("events.log");
    let reader = cardguard_store::LogReader::open_file(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut events = Vec::new();
    let stop = std::sync::atomic::AtomicBool::new(false);
    consumer::run(
        "ml",
        &reader,
        &MemoryCursors::default(),
        &ConsumerOptions {
            start: Start::Beginning,
            stop_at_end: true,
            ..ConsumerOptions::default()
        },
        &stop,
        |d: &Delivery<'_>| {
            events.push((d.offset, d.event.clone()));
            Ok(())
        },
    )?;
    let auths = events
        .iter()
        .filter(|(_, e)| matches!(e, cardguard_engine::Event::Auth(_)))
        .count();
    eprintln!(
        "read {} events ({auths} authorizations) from {} in {:.1} s",
        events.len(),
        path.display(),
        t0.elapsed().as_secs_f64()
    );
    let cfg = ReplayConfig {
        label_delay_days: delay_days,
        ..ReplayConfig::default()
    };
    let table =
        cardguard_ml::replay::replay_log(&events, &cfg, &mut |d, n| bar("replaying", d, n))?;
    eprintln!(
        "{} rows ({} frauds) by replay of the log",
        table.rows(),
        table.y.iter().filter(|y| **y).count()
    );
    Ok(table)
}

fn load(path: &Path, delay_days: u32) -> Result<FeatureTable> {
    let t0 = Instant::now();
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let data = Dataset::read(f).with_context(|| format!("reading {}", path.display()))?;
    eprintln!(
        "read {} transactions ({} frauds) in {:.1} s",
        data.transactions.len(),
        data.transactions.iter().filter(|t| t.fraud).count(),
        t0.elapsed().as_secs_f64()
    );
    let t0 = Instant::now();
    let cfg = ReplayConfig {
        label_delay_days: delay_days,
        ..ReplayConfig::default()
    };
    let table = replay(&data, &cfg, &mut |d, n| bar("replaying", d, n))?;
    eprintln!("features by replay in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(table)
}

/// Checks, before any work, that a file can be created at `path` (its folder exists and
/// takes files), so that a long run does not fail at its end.
fn writable(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    anyhow::ensure!(
        dir.is_dir(),
        "cannot write {}: the folder {} does not exist",
        path.display(),
        dir.display()
    );
    tempfile::NamedTempFile::new_in(dir)
        .map(drop)
        .with_context(|| {
            format!(
                "cannot write {}: the folder {} takes no files",
                path.display(),
                dir.display()
            )
        })
}

fn train_cmd(a: TrainArgs) -> Result<()> {
    writable(&a.out)?;
    let range = a.train.as_deref().map(DayRange::parse).transpose()?;
    // Settings from `ml tune` (its settings file, or bare trainer settings) in place of the
    // command line's.
    let params = match &a.settings {
        Some(p) => {
            let v: serde_json::Value = serde_json::from_str(&read_text(p)?)
                .with_context(|| format!("reading {}", p.display()))?;
            let params = v.get("best").and_then(|b| b.get("params")).unwrap_or(&v);
            serde_json::from_value::<TrainParams>(params.clone())
                .with_context(|| format!("the trainer settings in {}", p.display()))?
        }
        None => a.trainer.params(),
    };
    let table = load_from(
        a.transactions.as_deref(),
        a.from_log.as_deref(),
        a.delay_days,
    )?;
    fit(&table, range, &params, &a.out)
}

/// Trains on `range` (all the data when none) with its last 7 days (or quarter) stopping
/// the training early, records the training data's distributions, and writes the model.
fn fit(
    table: &FeatureTable,
    range: Option<DayRange>,
    params: &TrainParams,
    out: &Path,
) -> Result<()> {
    if table.rows() == 0 {
        bail!("no transactions to train on");
    }
    let (first, last) = (table.day(0), table.day(table.rows() - 1));
    let range = range.unwrap_or(DayRange {
        from: first,
        to: last,
    });
    // The last 7 days (or quarter) of the range stop the training early.
    let valid_days = (range.days() / 4).clamp(1, 7);
    let fit_to = range.to - valid_days;
    let rows = |keep: &dyn Fn(i64) -> bool| -> (Vec<f32>, Vec<bool>) {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..table.rows() {
            if keep(table.day(i)) {
                x.extend_from_slice(table.row(i));
                y.push(table.y[i]);
            }
        }
        (x, y)
    };
    let (fx, fy) = rows(&|d| range.from <= d && d <= fit_to);
    let (vx, vy) = rows(&|d| fit_to < d && d <= range.to);
    let t0 = Instant::now();
    let model = cardguard_ml::train(
        &TrainSet {
            x: &fx,
            y: &fy,
            width: table.width(),
        },
        Some(&TrainSet {
            x: &vx,
            y: &vy,
            width: table.width(),
        }),
        &table.names,
        params,
        &mut |r| round_bar("training", r),
    )?;
    eprintln!();
    let mut model = model;
    // What the model was trained on, for drift monitoring: the distributions of the
    // training rows (every one, or an even sample of 200,000) and of their risk scores.
    let step = (fy.len() / 200_000).max(1);
    let width = table.width();
    let sample: Vec<f32> = fx.chunks(width).step_by(step).flatten().copied().collect();
    let risk: Vec<u8> = sample
        .chunks(width)
        .map(|r| (model.predict(r) * 100.0).round().clamp(0.0, 100.0) as u8)
        .collect();
    model.set_training(cardguard_engine::drift::TrainingSummary::of(
        &table.names,
        &sample,
        &risk,
    ))?;
    let text = model.to_json()?;
    std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{} trees, {} training rows ({} frauds), validation {} rows: AP {}; {:.1} s; model {} -> {}",
        model.trees.len(),
        fy.len(),
        fy.iter().filter(|&&y| y).count(),
        vy.len(),
        model.provenance["valid_average_precision"],
        t0.elapsed().as_secs_f64(),
        model.model_version,
        out.display()
    );
    Ok(())
}

fn evaluate_cmd(a: EvaluateArgs) -> Result<()> {
    let train = DayRange::parse(&a.train)?;
    let test = DayRange::parse(&a.test)?;
    if test.from <= train.to {
        bail!("the test days must come after the training days");
    }
    if a.folds == 0 {
        bail!("--folds must be at least 1");
    }
    if let Some(p) = &a.predictions {
        writable(p)?;
    }
    if let Some(dir) = &a.report {
        writable(&dir.join("index.html"))
            .or_else(|_| writable(dir))
            .with_context(|| format!("the report folder {}", dir.display()))?;
    }
    let mut table = load_from(
        a.transactions.as_deref(),
        a.from_log.as_deref(),
        a.delay_days,
    )?;
    if a.features == FeatureSet::Handbook {
        table = table.select(&cardguard_ml::HANDBOOK_FEATURES)?;
    }
    let params = a.trainer.params();
    let mut results: Vec<Evaluation> = Vec::new();
    for p in folds(&table, &train, &test, a.folds, a.delay_days)? {
        let e = evaluate(&table, &p, &params, &mut |what, r| round_bar(what, r))?;
        eprintln!();
        results.push(e);
    }
    let first = &results[0];
    if let Some(path) = &a.predictions {
        let mut w = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        writeln!(w, "TRANSACTION_ID,score,label")?;
        for (id, s, l) in &first.predictions {
            writeln!(w, "{id},{s},{}", u8::from(*l))?;
        }
        w.flush()?;
    }
    if let Some(dir) = &a.report {
        report(dir, first)?;
    }
    let stat = |f: &dyn Fn(&Evaluation) -> Option<f64>| -> (Option<f64>, Option<f64>) {
        let v: Vec<f64> = results.iter().filter_map(f).collect();
        if v.is_empty() {
            return (None, None);
        }
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        (Some(mean), Some(var.sqrt()))
    };
    let (ap, ap_sd) = stat(&|e| e.average_precision);
    let (auc, auc_sd) = stat(&|e| e.roc_auc);
    let (cp, cp_sd) = stat(&|e| e.card_precision_at_100);
    if a.json {
        let mut v = serde_json::json!({
            "average_precision": ap,
            "roc_auc": auc,
            "card_precision_at_100": cp,
            "n_test": first.n_test,
            "n_fraud": first.n_fraud,
            "folds": results,
        });
        if a.folds > 1 {
            v["average_precision_sd"] = serde_json::json!(ap_sd);
            v["roc_auc_sd"] = serde_json::json!(auc_sd);
            v["card_precision_at_100_sd"] = serde_json::json!(cp_sd);
        }
        println!("{v}");
    } else {
        let f = fmt3;
        for e in &results {
            println!(
                "train {} test {}: AP {} ROC AUC {} card precision@100 {} | test {} ({} frauds, {} left out as known compromised), train {} ({} frauds), {} trees in {:.1} s",
                e.train,
                e.test,
                f(e.average_precision),
                f(e.roc_auc),
                f(e.card_precision_at_100),
                e.n_test,
                e.n_fraud,
                e.n_removed_known,
                e.n_train,
                e.n_train_fraud,
                e.trees,
                e.train_seconds
            );
        }
        if a.folds > 1 {
            println!(
                "mean over {} folds: AP {} ± {} ROC AUC {} ± {} card precision@100 {} ± {}",
                a.folds,
                f(ap),
                f(ap_sd),
                f(auc),
                f(auc_sd),
                f(cp),
                f(cp_sd)
            );
        }
    }
    Ok(())
}

/// A metric with three decimals, or `-` when there is none.
fn fmt3(x: Option<f64>) -> String {
    x.map_or("-".to_owned(), |x| format!("{x:.3}"))
}

/// Precision-recall and ROC curve points, from the predictions file's rows.
fn curves(
    pred: &[(u64, f32, bool)],
) -> (cardguard_ml::metrics::Curve, cardguard_ml::metrics::Curve) {
    let scores: Vec<f32> = pred.iter().map(|x| x.1).collect();
    let labels: Vec<bool> = pred.iter().map(|x| x.2).collect();
    cardguard_ml::metrics::curves(&scores, &labels)
}

fn svg(title: &str, xl: &str, yl: &str, pts: &[(f64, f64)], diagonal: bool) -> String {
    let (w, h, m) = (420.0, 420.0, 50.0);
    let sx = |x: f64| m + x * (w - 2.0 * m);
    let sy = |y: f64| h - m - y * (h - 2.0 * m);
    // At most ~2,000 points drawn.
    let step = (pts.len() / 2000).max(1);
    let path: Vec<String> = pts
        .iter()
        .step_by(step)
        .chain(pts.last())
        .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
        .collect();
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">{title}</text>\
         <rect x=\"{m}\" y=\"{m}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{xl}</text>\
         <text x=\"14\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {})\">{yl}</text>",
        w / 2.0,
        w - 2.0 * m,
        h - 2.0 * m,
        w / 2.0,
        h - 12.0,
        h / 2.0,
        h / 2.0
    );
    for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{t}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{t}</text>",
            sx(t),
            h - m + 16.0,
            m - 6.0,
            sy(t) + 4.0
        ));
    }
    if diagonal {
        s.push_str(&format!(
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#ccc\" stroke-dasharray=\"4\"/>",
            sx(0.0),
            sy(0.0),
            sx(1.0),
            sy(1.0)
        ));
    }
    s.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"#c0392b\" stroke-width=\"2\" points=\"{}\"/></svg>\n",
        path.join(" ")
    ));
    s
}

fn report(dir: &Path, e: &Evaluation) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (pr, roc) = curves(&e.predictions);
    let f = fmt3;
    std::fs::write(
        dir.join("precision-recall.svg"),
        svg(
            &format!("Precision-recall (AP {})", f(e.average_precision)),
            "recall",
            "precision",
            &pr,
            false,
        ),
    )?;
    std::fs::write(
        dir.join("roc.svg"),
        svg(
            &format!("ROC (AUC {})", f(e.roc_auc)),
            "false positive rate",
            "true positive rate",
            &roc,
            true,
        ),
    )?;
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>cardguard model evaluation</title></head>\
         <body style=\"font-family:sans-serif\"><h1>Model evaluation</h1>\
         <p>Model <code>{}</code>, {} trees. Training days {}, test days {}.</p>\
         <table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse\">\
         <tr><th>average precision</th><td>{}</td></tr>\
         <tr><th>ROC AUC</th><td>{}</td></tr>\
         <tr><th>card precision@100</th><td>{}</td></tr>\
         <tr><th>test transactions</th><td>{} ({} frauds; {} of known compromised cards left out)</td></tr>\
         <tr><th>training transactions</th><td>{} ({} frauds)</td></tr></table>\
         <p><img src=\"precision-recall.svg\" alt=\"precision-recall curve\"> <img src=\"roc.svg\" alt=\"ROC curve\"></p>\
         </body></html>\n",
        e.model_version,
        e.trees,
        e.train,
        e.test,
        f(e.average_precision),
        f(e.roc_auc),
        f(e.card_precision_at_100),
        e.n_test,
        e.n_fraud,
        e.n_removed_known,
        e.n_train,
        e.n_train_fraud
    );
    std::fs::write(dir.join("index.html"), html)?;
    Ok(())
}
