//! The `cardguard` command: `serve` runs the platform (with `--demo`, sample traffic too);
//! `bench` measures the engine, the HTTP path and a restart; `mail` is the phishing analyzer;
//! `ml` trains and evaluates the fraud model.

mod audit;
mod backtest;
mod bench;
mod bench_cases;
mod bench_iso;
mod bench_notify;
mod bench_stepup;
mod cards;
mod demo;
mod keys;
mod log;
pub mod mail;
mod ml;
mod progress;
mod rng;
mod rules;

use anyhow::{Context, Result, bail};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use cardguard_app::{App, Config, Scope};
use cardguard_core::SystemClock;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "cardguard", version, about = "Real-time card fraud prevention")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the authorization service on the embedded store.
    Serve(ServeArgs),
    /// Benchmarks: the engine alone, the HTTP path under open-loop load, a restart.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Cards: `import` enrolls a portfolio from a CSV or JSON Lines file.
    #[command(subcommand)]
    Cards(cards::CardsCmd),
    /// The audit trail: `verify` checks its hash chain, `show` prints its last entries.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// API keys: `create` mints one for a data directory (only its hash is kept).
    #[command(subcommand)]
    Keys(keys::KeysCmd),
    /// The event log of a data directory: `tail` prints its events (as a resuming consumer
    /// with `--consumer NAME`), `verify` checks it, `repair` sets damaged spans aside.
    #[command(subcommand)]
    Log(log::LogCmd),
    /// Mail: the phishing analyzer.
    #[command(subcommand)]
    Mail(mail::MailCmd),
    /// The fraud model: train, evaluate, import.
    #[command(subcommand)]
    Ml(ml::MlCmd),
    /// A ruleset (and a model) replayed over labelled history: per rule hits, precision,
    /// recall, amounts and overlaps.
    Backtest(backtest::BacktestArgs),
    /// The rules language: `check FILE` validates a ruleset offline, `default` prints the
    /// one a new data directory starts with.
    #[command(subcommand)]
    Rules(rules::RulesCmd),
    /// Bring the database's schema up to this version: PostgreSQL's
    /// (`storage.database_url`) by its numbered migrations; the embedded SQLite store applies
    /// its own when it opens.
    Migrate(MigrateArgs),
    /// Write simulated labelled transactions (the engine's CSV schema) with seven fraud
    /// scenarios.
    Simulate(ml::SimulateArgs),
}

#[derive(clap::Args)]
struct MigrateArgs {
    /// TOML config file; CARDGUARD__SECTION__KEY variables override it
    /// (`CARDGUARD__STORAGE__DATABASE_URL`).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Data directory (created if missing): event log, snapshot, card registry, keys.
    /// Default: `cardguard-data`, or `cardguard-demo` with --demo.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to listen on (default: server.http from the config, 127.0.0.1:8080).
    #[arg(long)]
    http: Option<String>,
    /// TOML config file; CARDGUARD__SECTION__KEY variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Also enroll sample cards, replay an hour of traffic with fraud in it, print what was
    /// decided and why, and keep serving.
    #[arg(long)]
    demo: bool,
    /// Also take ISO 8583 authorizations over TCP on this address (2-byte length prefix,
    /// the common ASCII field table), into the same engine as the HTTP API (default:
    /// `iso8583.listen` from the config, none).
    #[arg(long)]
    iso8583: Option<String>,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CARDGUARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// mimalloc's `mi_option_purge_delay` (its v3 header's option enum, index 15).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory freed stays with the process instead of going back to the OS 10 ms later: giving
/// it back and faulting it in again costs the request threads page faults and TLB
/// shootdowns (HTTP p99 at 5,000/s: 1.0 ms with purging, 0.52 ms without). A server keeps
/// its state in memory; its size is its peak either way. `MIMALLOC_PURGE_DELAY` set in the
/// environment still decides.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's options; any value is valid for this one.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

/// Runs the command. A user's error prints as the product's message, its causes after it,
/// without a backtrace (whatever `RUST_BACKTRACE` says), and exits 1; `mail scan` has its
/// own codes (0 clean, 1 flagged, 2 error).
fn main() -> std::process::ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    init_logging();
    let scanner = matches!(cli.cmd, Cmd::Mail(_));
    match run(cli.cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(if scanner { 2 } else { 1 })
        }
    }
}

fn run(cmd: Cmd) -> Result<std::process::ExitCode> {
    let ok = |r: Result<()>| r.map(|()| std::process::ExitCode::SUCCESS);
    match cmd {
        Cmd::Serve(a) => {
            let config = Config::load(a.config.as_deref(), std::env::vars())?;
            let mut rt = tokio::runtime::Builder::new_multi_thread();
            if config.server.worker_threads > 0 {
                rt.worker_threads(config.server.worker_threads);
            }
            ok(rt.enable_all().build()?.block_on(serve(a, config)))
        }
        Cmd::Bench(b) => ok(bench::run(b)),
        Cmd::Cards(c) => ok(cards::run(c)),
        Cmd::Keys(k) => ok(keys::run(k)),
        Cmd::Audit(a) => ok(audit::run(a)),
        Cmd::Log(l) => ok(log::run(l)),
        Cmd::Mail(m) => mail::run(m),
        Cmd::Ml(m) => ok(ml::run(m)),
        Cmd::Rules(r) => ok(rules::run(r)),
        Cmd::Backtest(b) => ok(backtest::run(b)),
        Cmd::Simulate(a) => ok(ml::simulate_cmd(a)),
        Cmd::Migrate(a) => ok(migrate(a)),
    }
}

async fn serve(a: ServeArgs, mut config: Config) -> Result<()> {
    if a.demo && config.engine.max_clock_skew_secs > 0 {
        // The demo replays the last hour at the times it happened.
        tracing::warn!("demo: the clock-skew check is off (engine.max_clock_skew_secs = 0)");
        config.engine.max_clock_skew_secs = 0;
    }
    // A write past a file size limit (`ulimit -f`, systemd's LimitFSIZE) then fails with
    // EFBIG, which the event log handles like a full disk, instead of killing the process.
    // SAFETY: ignoring a signal changes nothing else.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let addr = a.http.clone().unwrap_or_else(|| config.server.http.clone());
    // The address first: a start that cannot listen changes nothing (no key is minted and
    // shown for a server that never ran).
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let iso_addr = a.iso8583.clone().or_else(|| config.iso8583.listen.clone());
    let iso_listener = match &iso_addr {
        Some(iso) => Some(
            tokio::net::TcpListener::bind(iso)
                .await
                .with_context(|| format!("binding {iso} (ISO 8583)"))?,
        ),
        None => None,
    };
    let dir = match (&a.data_dir, a.demo) {
        (Some(d), _) => d.clone(),
        (None, false) => PathBuf::from("cardguard-data"),
        (None, true) => PathBuf::from(demo::DEFAULT_DIR),
    };
    if a.demo {
        demo::fresh_directory(&dir)?;
    }
    let data_dir = dir.clone();
    let cfg = config.clone();
    // Its errors name what they are about (the data directory, a model file, a setting).
    let (app, summary) =
        tokio::task::spawn_blocking(move || App::open(cfg, &data_dir, Arc::new(SystemClock)))
            .await??;
    if !summary.created_keys.is_empty() {
        tracing::info!(
            keys = summary.created_keys.join(", "),
            file = %dir.join("keys.toml").display(),
            "created data keys on first start (the config names none); keep this file secret and backed up"
        );
    }
    tracing::info!(
        cards = summary.cards,
        snapshot_offset = summary.snapshot_offset.unwrap_or(0),
        replayed_events = summary.replayed,
        log_events = summary.log_frames,
        torn_bytes_cut = summary.truncated_bytes,
        ms = summary.elapsed_ms as u64,
        "data directory opened"
    );
    let app = Arc::new(app);
    app.watch_rules_file()
        .context("starting the rules file watcher")?;
    let (mut keys, created) = cardguard_app::access::load_keys(&config, &dir)?;
    if let Some(key) = created {
        println!(
            "Created an API key with scopes admin, authorize, label (shown only this once): {key}"
        );
        println!(
            "Its SHA-256 is in {}; send it as 'Authorization: Bearer <key>'.",
            dir.join(cardguard_app::access::BOOTSTRAP_KEYS).display()
        );
    }
    let demo_key = if a.demo {
        let (k, _) = cardguard_app::access::new_key()?;
        keys.add(&k, &[Scope::Admin, Scope::Authorize, Scope::Label]);
        Some(k)
    } else {
        None
    };
    if keys.is_empty() {
        bail!("no API keys");
    }
    // Notifications start before the doors open: a bad template or sender fails the start.
    let notifier = Some(cardguard_notify::Notifier::start(&app)?);
    // Cases follow the log from its start (every transaction is kept for the timelines
    // and disputes); their timers run on a thread of their own.
    let cases = cardguard_app::cases::spawn_consumer(&app)?;
    cardguard_app::cases::spawn_timers(&app).context("starting the case timers")?;
    // Decisions a stop caught between their commit and their event are told now.
    let told = app
        .log_pending_events()
        .await
        .context("logging the decisions left pending")?;
    if told > 0 {
        tracing::info!(events = told, "logged the decisions a stop had left untold");
    }
    let local = listener.local_addr()?;
    println!("cardguard listening on http://{local}");
    tracing::info!(%local, "listening");
    if let Some(k) = demo_key {
        let dk = demo::DemoKeys::from_config(&config.keys.cvk, &config.keys.pvk);
        tokio::spawn(async move {
            if let Err(e) = demo::run(local, &k, dk).await {
                tracing::error!(error = %e, "demo failed");
            }
        });
    }
    // SIGHUP reads the phishing analyzer's brands file and the model file again.
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        let a = Arc::clone(&app);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let a = Arc::clone(&a);
                let done = tokio::task::spawn_blocking(move || {
                    if let Err(e) = a.reload_brands() {
                        tracing::error!(error = %e, "brand registry kept");
                    }
                    if a.config.engine.model_file.is_some()
                        && let Err(e) = a.reload_model()
                    {
                        tracing::error!(error = %e, "model kept");
                    }
                })
                .await;
                if let Err(e) = done {
                    tracing::error!(error = %e, "reload task");
                }
            }
        });
    }
    // One shutdown for both front doors.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let iso_task = match iso_listener {
        Some(l) => {
            let local = l.local_addr()?;
            println!("cardguard iso8583 listening on {local}");
            tracing::info!(%local, "ISO 8583 listening");
            Some(tokio::spawn(cardguard_iso::listener::run(
                l,
                Arc::clone(&app),
                Arc::new(cardguard_iso8583::Spec::default_ascii()),
                cardguard_iso::listener::Limits::from_config(&config.iso8583),
                stopped(stop_rx.clone()),
            )))
        }
        None => None,
    };
    cardguard_server::serve(listener, Arc::clone(&app), keys, stopped(stop_rx)).await?;
    if let Some(t) = iso_task {
        t.await??;
    }
    if let Err(e) = tokio::task::spawn_blocking(move || cases.stop()).await? {
        tracing::error!(error = %e, "cases consumer");
    }
    if let Some(n) = notifier {
        n.stop().await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests, writing a snapshot");
}

/// `cardguard migrate`.
fn migrate(a: MigrateArgs) -> Result<()> {
    let config = Config::load(a.config.as_deref(), std::env::vars())?;
    let Some(url) = &config.storage.database_url else {
        println!(
            "storage.database_url is not set: the embedded SQLite store applies its schema when it opens; nothing to migrate"
        );
        return Ok(());
    };
    let applied = cardguard_store::sql::Db::migrate_postgres(url)?;
    let version = cardguard_store::sql::MIGRATIONS.len();
    if applied.is_empty() {
        println!("PostgreSQL: the schema is current (version {version})");
    } else {
        let list: Vec<String> = applied.iter().map(i64::to_string).collect();
        println!(
            "PostgreSQL: applied migration(s) {}; the schema is at version {version}",
            list.join(", ")
        );
    }
    Ok(())
}
