//! `cardguard bench …`: the engine alone (decide latency and memory per card with a million
//! cards), the HTTP path under open-loop load against a server process, and a restart.

use crate::rng::{Rng, luhn_pan};
use anyhow::{Context, Result, bail};
use cardguard_core::{Clock, SystemClock, Timestamp};
use cardguard_engine::synth;
use cardguard_engine::{Engine, EngineConfig};
use cardguard_server::client::Client;
use hdrhistogram::Histogram;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(clap::Subcommand)]
pub enum BenchCmd {
    /// decide() latency and memory per card, one core, with many cards in state.
    Engine {
        #[arg(long, default_value_t = 1_000_000)]
        cards: u64,
        /// Transactions per card over the last 30 days.
        #[arg(long, default_value_t = 12)]
        per_card: u64,
        #[arg(long, default_value_t = 1_000_000)]
        decisions: u64,
        /// Decide with this model file (from `cardguard ml train`) instead of the scorecard.
        #[arg(long)]
        model: Option<std::path::PathBuf>,
    },
    /// Open-loop HTTP load against a server on this machine (started here unless --addr).
    Http(HttpArgs),
    /// Open-loop ISO 8583 load (0100 over TCP, several in flight per connection) against a
    /// server started here.
    Iso8583(crate::bench_iso::IsoArgs),
    /// From a decision to its notice accepted by a real SMTP server (aiosmtpd).
    Notify(crate::bench_notify::NotifyArgs),
    /// Step-up authentication: codes by email to a real SMTP server, then frictionless
    /// answers for trusted devices.
    Stepup(crate::bench_stepup::StepUpArgs),
    /// The case queue and case timelines with many cases and authorizations (SQLite).
    Cases(crate::bench_cases::CasesArgs),
    /// Phishing analyzer throughput on one core over the messages under PATH.
    Mail {
        path: std::path::PathBuf,
        /// Passes over the messages.
        #[arg(long, default_value_t = 5)]
        rounds: u32,
    },
    /// Time to open a data directory holding many events (with its snapshot, and without).
    Restart {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long, default_value_t = 100_000)]
        cards: u64,
    },
}

pub fn run(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Engine {
            cards,
            per_card,
            decisions,
            model,
        } => bench_engine(cards, per_card, decisions, model.as_deref()),
        BenchCmd::Http(args) => {
            // One thread for the load generator, the other core for the server; a
            // current-thread runtime drives the connections without waking a worker.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(interruptible(bench_http(args)))
        }
        BenchCmd::Iso8583(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(interruptible(crate::bench_iso::run(args))),
        BenchCmd::Notify(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(interruptible(crate::bench_notify::run(args))),
        BenchCmd::Stepup(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(interruptible(crate::bench_stepup::run(args))),
        BenchCmd::Cases(args) => crate::bench_cases::run(args),
        BenchCmd::Mail { path, rounds } => bench_mail(&path, rounds),
        BenchCmd::Restart { events, cards } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(interruptible(bench_restart(events, cards)))
        }
    }
}

/// Runs a benchmark until it ends or is interrupted (Ctrl-C, SIGTERM). An interrupted run
/// drops what it started, as a finished one does: the server it runs is killed and its data
/// directory (gigabytes at a million cards) removed, instead of left behind in the
/// temporary directory.
pub(crate) async fn interruptible(
    bench: impl std::future::Future<Output = Result<()>>,
) -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = bench => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted; the benchmark's server and its data are removed"),
        _ = term.recv() => bail!("terminated; the benchmark's server and its data are removed"),
    }
}

/// Resident memory of a process in bytes (Linux).
pub(crate) fn rss_bytes(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

pub(crate) fn report(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs (n = {})",
        us(h.value_at_quantile(0.5)),
        us(h.value_at_quantile(0.9)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max()),
        h.len()
    )
}

fn bench_mail(path: &std::path::Path, rounds: u32) -> Result<()> {
    let mut sources = Vec::new();
    crate::mail::read_messages(path, &mut sources)?;
    if sources.is_empty() {
        bail!("no messages under {}", path.display());
    }
    let reg = cardguard_phish::BrandRegistry::builtin();
    let bytes: usize = sources.iter().map(|s| s.raw.len()).sum();
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let t0 = Instant::now();
    for _ in 0..rounds.max(1) {
        for s in &sources {
            let t = Instant::now();
            std::hint::black_box(cardguard_phish::analyze(&s.raw, &reg).ok());
            h.record((t.elapsed().as_nanos() as u64).max(1))?;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = sources.len() as f64 * f64::from(rounds.max(1));
    println!(
        "{} messages ({:.1} MB) x {rounds}: {:.0} messages/s on one core; per message {}",
        sources.len(),
        bytes as f64 / 1e6,
        n / secs,
        report(&h)
    );
    Ok(())
}

fn bench_engine(
    cards: u64,
    per_card: u64,
    decisions: u64,
    model: Option<&std::path::Path>,
) -> Result<()> {
    let now = Timestamp::parse_rfc3339("2026-11-21T12:00:00Z")?;
    let rss0 = rss_bytes("self").unwrap_or(0);
    let t0 = Instant::now();
    let mut e = Engine::new(EngineConfig::default());
    if let Some(path) = model {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let m = cardguard_ml::Model::from_json(&text)?;
        println!("model: {} ({} trees)", m.model_version, m.trees.len());
        e.set_scorer(std::sync::Arc::new(m.compile()?));
    }
    let applied = synth::populate(&mut e, cards, per_card, now, 7);
    let rss1 = rss_bytes("self").unwrap_or(0);
    let stats = e.stats();
    println!(
        "state: {cards} cards, {applied} transactions applied in {:.1} s; {} terminals, {} devices",
        t0.elapsed().as_secs_f64(),
        stats.terminals,
        stats.devices
    );
    println!(
        "memory: card state {:.0} bytes/card (map slots and history); whole process grew {:.0} bytes/card (also the authorization index of the {applied} loaded transactions)",
        stats.card_bytes as f64 / cards as f64,
        rss1.saturating_sub(rss0) as f64 / cards as f64
    );
    let probes: Vec<_> = (0..65_536u64)
        .map(|i| {
            synth::transaction(
                i * 7919 + 1,
                (i.wrapping_mul(2_654_435_761)) % cards,
                now,
                format!("p{i}"),
            )
        })
        .collect();
    let checks = synth::ok_checks();
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut explained = 0u64;
    let t0 = Instant::now();
    for i in 0..decisions {
        let p = &probes[(i % probes.len() as u64) as usize];
        let s = Instant::now();
        let o = e.decide(p, &checks);
        let ns = s.elapsed().as_nanos() as u64;
        explained += u64::from(o.decision != cardguard_core::Decision::Approve);
        std::hint::black_box(o);
        h.record(ns.max(1))?;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!("decide(): {}", report(&h));
    println!(
        "not approved (reasons computed): {:.2}% of decisions",
        explained as f64 * 100.0 / decisions.max(1) as f64
    );
    println!(
        "throughput: {:.0} decisions/s on one core",
        decisions as f64 / secs
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct HttpArgs {
    /// Requests per second.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// Seconds of load.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Cards to enroll and spread the load over.
    #[arg(long, default_value_t = 10_000)]
    cards: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: u64,
    /// Step the rate up (10 s a step) until p99 exceeds 2 ms; report the highest rate below.
    #[arg(long)]
    find_max: bool,
    /// Events between snapshots of the server started here (its default otherwise).
    #[arg(long)]
    snapshot_every: Option<u64>,
    /// Authorizations sent before the measured run, as fast as the server answers, with
    /// times spread over the last 30 days (so that cards carry state, as in production; a
    /// server given with --addr needs engine.max_clock_skew_secs = 0 for them).
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Send with a plain generator instead of the hyper client: one OS thread per
    /// connection, blocking sockets, each request written in one call (to tell the
    /// generator's share of a tail from the server's).
    #[arg(long)]
    raw: bool,
    /// Model file for the server started here (`engine.model_file`).
    #[arg(long)]
    model: Option<std::path::PathBuf>,
    /// After the measured run, measure again while 16 clients without a key keep sending
    /// 10 MiB bodies and 300 idle connections stay open (reopened when the server closes
    /// them); report both p99s and the server's memory growth.
    #[arg(long)]
    abuse: bool,
    /// A ruleset (TOML) put in force (PUT /v1/rules) before the load; the default ruleset
    /// otherwise.
    #[arg(long)]
    rules: Option<std::path::PathBuf>,
    /// Use a running server instead of starting one (needs --key with admin and authorize).
    #[arg(long)]
    addr: Option<SocketAddr>,
    #[arg(long)]
    key: Option<String>,
}

pub(crate) struct ServerProc {
    pub(crate) child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const BENCH_CVK: &str = "0123456789ABCDEFFEDCBA9876543210";

/// A server for a benchmark, on its own data directory: its HTTP address, and its ISO 8583
/// one with `iso`.
pub(crate) fn start_server(
    key: &str,
    snapshot_every: Option<u64>,
    model: Option<&std::path::Path>,
    iso: bool,
) -> Result<(ServerProc, SocketAddr, Option<SocketAddr>)> {
    start_server_with(key, snapshot_every, model, iso, &[])
}

/// [`start_server`] with more settings in its environment.
pub(crate) fn start_server_with(
    key: &str,
    snapshot_every: Option<u64>,
    model: Option<&std::path::Path>,
    iso: bool,
    env: &[(&str, String)],
) -> Result<(ServerProc, SocketAddr, Option<SocketAddr>)> {
    let dir = tempfile::tempdir()?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // The warm-up dates its authorizations over the last 30 days.
    cmd.env("CARDGUARD__ENGINE__MAX_CLOCK_SKEW_SECS", "0");
    if let Some(n) = snapshot_every {
        cmd.env("CARDGUARD__STORAGE__SNAPSHOT_EVERY", n.to_string());
    }
    if iso {
        cmd.args(["serve", "--iso8583", "127.0.0.1:0"]);
    } else {
        cmd.arg("serve");
    }
    if let Some(m) = model {
        cmd.env(
            "CARDGUARD__ENGINE__MODEL_FILE",
            format!("{:?}", std::path::absolute(m)?.display().to_string()),
        );
    }
    let mut child = cmd
        .args(["--http", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env(
            "CARDGUARD__AUTH__API_KEYS",
            format!("[{{key = \"{key}\", scopes = [\"admin\", \"authorize\"]}}]"),
        )
        .env("CARDGUARD__KEYS__CVK__BENCH", BENCH_CVK)
        .env("CARDGUARD_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting the server")?;
    let out = child.stdout.take().context("server stdout")?;
    let mut lines = BufReader::new(out).lines();
    let (mut http, mut iso_addr) = (None, None);
    while http.is_none() || (iso && iso_addr.is_none()) {
        let Some(line) = lines.next() else {
            bail!("the server exited before listening")
        };
        let line = line?;
        if let Some(a) = line.strip_prefix("cardguard listening on http://") {
            http = Some(a.parse()?);
        }
        if let Some(a) = line.strip_prefix("cardguard iso8583 listening on ") {
            iso_addr = Some(a.parse()?);
        }
    }
    let http = http.context("no HTTP address")?;
    Ok((ServerProc { child, _dir: dir }, http, iso_addr))
}

pub(crate) struct BenchCard {
    pub(crate) pan: String,
    pub(crate) csc: String,
    pub(crate) city: usize,
}

pub(crate) const CITIES: &[(&str, &str, f64, f64, &str)] = &[
    ("JP", "Tokyo", 35.68, 139.76, "JPY"),
    ("JP", "Osaka", 34.69, 135.50, "JPY"),
    ("US", "New York", 40.71, -74.01, "USD"),
    ("GB", "London", 51.51, -0.13, "GBP"),
];

fn request(rng: &mut Rng, cards: &[BenchCard], id: &str, now: Timestamp) -> Vec<u8> {
    let c = &cards[rng.below(cards.len() as u64) as usize];
    let city = CITIES[c.city];
    let online = rng.below(4) == 0;
    let merchant = rng.below(2000);
    let mcc = ["5411", "5812", "5732", "5999"][(merchant % 4) as usize];
    let mut body = json!({
        "id": id, "timestamp": now.to_rfc3339(),
        "card": {"number": c.pan, "expiry": "2029-12", "csc": c.csc},
        "amount": {"value": 300 + rng.below(15_000), "currency": city.4},
        "merchant": {"id": format!("m-{merchant}"), "terminal_id": format!("t-{}", merchant % 5), "name": "BENCH SHOP",
                     "mcc": mcc, "country": city.0, "city": city.1},
        "channel": if online { "ecommerce" } else { "card_present" }, "type": "purchase",
    });
    if online {
        body["device"] = json!({"id": format!("dev-{}", rng.below(50_000)), "ip": "203.0.113.9"});
    } else {
        body["merchant"]["lat"] = json!(city.2);
        body["merchant"]["lon"] = json!(city.3);
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

pub(crate) async fn enroll(addr: SocketAddr, key: &str, n: u64) -> Result<Arc<Vec<BenchCard>>> {
    let cvk = cardguard_cardsec::TdesKey::from_hex(BENCH_CVK)?;
    let mut rng = Rng::new(&[42]);
    let cards: Vec<BenchCard> = (0..n)
        .map(|i| {
            let pan = luhn_pan(&mut rng, if i % 2 == 0 { "4" } else { "53" }, 16);
            let csc =
                cardguard_cardsec::cvv::generate(&cvk, &pan, "2912", "101", 3).unwrap_or_default();
            BenchCard {
                pan,
                csc,
                city: (i % CITIES.len() as u64) as usize,
            }
        })
        .collect();
    let cards = Arc::new(cards);
    let body_of = |i: usize, card: &BenchCard| {
        let city = CITIES[card.city];
        json!({"number": card.pan, "expiry": "2029-12", "cardholder_id": format!("ch-{i}"),
            "product": "classic", "status": "active", "service_code": "101",
            "csc": {"method": "cvv-3des", "key_id": "bench"},
            "contact": {"language": "en", "email": format!("holder{i}@bench.example")},
            "home": {"country": city.0, "city": city.1, "lat": city.2, "lon": city.3}})
    };
    // In batches of 1,000 (POST /v1/cards:batch); one by one for a server without it.
    const BATCH: usize = 1000;
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (cards, next, key) = (Arc::clone(&cards), Arc::clone(&next), key.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr, &key).await?;
            let mut batches = true;
            loop {
                let from = next.fetch_add(BATCH as u64, Ordering::Relaxed) as usize;
                if from >= cards.len() {
                    return anyhow::Ok(());
                }
                let to = (from + BATCH).min(cards.len());
                if batches {
                    let list: Vec<serde_json::Value> =
                        (from..to).map(|i| body_of(i, &cards[i])).collect();
                    match c.post("/v1/cards:batch", &json!({ "cards": list })).await {
                        Ok((200, v)) if v["failed"].as_u64() == Some(0) => continue,
                        Ok((s, v)) if s != 404 && s != 413 => bail!("enrolling: {s} {v}"),
                        // A server without the batch route (it may close the connection
                        // on the unread body): one card at a time on a new connection.
                        _ => {
                            batches = false;
                            c = Client::connect(addr, &key).await?;
                        }
                    }
                }
                for i in from..to {
                    let (s, v) = c.post("/v1/cards", &body_of(i, &cards[i])).await?;
                    if s >= 300 {
                        bail!("enrolling: {s} {v}");
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(cards)
}

/// Authorizations as fast as the server answers them, over `conns` connections, with times
/// spread evenly over the 30 days before now: state for every card before a measured run.
async fn warm(
    addr: SocketAddr,
    key: &str,
    cards: Arc<Vec<BenchCard>>,
    n: u64,
    conns: u64,
) -> Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let now = SystemClock.now();
    let span = 30 * 86_400_000i64;
    let mut tasks = Vec::new();
    for t in 0..conns {
        let (cards, next, key) = (Arc::clone(&cards), Arc::clone(&next), key.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr, &key).await?;
            let mut rng = Rng::new(&[1000, t]);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                let at = Timestamp(now.0 - span + (i as i64) * span / n.max(1) as i64);
                let body = request(&mut rng, &cards, &format!("w{}-{i}", now.0), at);
                let (s, _) = c.post_bytes("/v1/authorizations", body).await?;
                if s != 200 {
                    bail!("warm-up answered {s}");
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// What one connection of a load generator records, made before the clock starts: a
/// histogram is a few hundred kilobytes, zeroed as it is first touched, and making them on
/// the run's first due times made that second's answers wait for the generator (146–383 of
/// them over 5 ms in every run).
struct Recorder {
    all: Histogram<u64>,
    /// The answers that were not approvals.
    declined: Histogram<u64>,
    /// Each answer's moments (see [`LoadResult::moments`]), room made for twice its share.
    moments: Vec<(u64, u64, bool)>,
}

impl Recorder {
    fn new(total: u64, conns: u64) -> Result<Recorder> {
        Ok(Recorder {
            all: Histogram::new_with_bounds(1, 60_000_000_000, 3)?,
            declined: Histogram::new_with_bounds(1, 60_000_000_000, 3)?,
            moments: Vec::with_capacity((2 * total / conns.max(1)) as usize),
        })
    }
}

struct LoadResult {
    hist: Histogram<u64>,
    /// Latency of the answers that were not approvals.
    declined: Histogram<u64>,
    /// Answers that were not 200, by status (0: no answer, the connection failed).
    statuses: std::collections::BTreeMap<u16, u64>,
    errors: u64,
    sent: u64,
    secs: f64,
    decisions: std::collections::BTreeMap<String, u64>,
    /// Of the answers that took over 5 ms: how long each waited for a connection before it
    /// was sent, then before the server took it, in the server, and after the server
    /// answered (the shared monotonic clock), in µs.
    slow: Vec<[u64; 4]>,
    /// Every answer's moments on the shared monotonic clock: sent, taken by the server,
    /// and whether it took over 5 ms.
    moments: Vec<(u64, u64, bool)>,
}

/// Sends `rate` requests a second for `secs` seconds, each at its scheduled time on the
/// first free connection. Latency runs from the scheduled time when the request had to wait
/// for a connection (a backlog is the server's doing) and from the moment it was sent
/// otherwise (an idle sender's timer slack, up to a millisecond, is the generator's).
async fn load(
    addr: SocketAddr,
    key: &str,
    cards: Arc<Vec<BenchCard>>,
    rate: u64,
    secs: u64,
    conns: u64,
    run: u64,
) -> Result<LoadResult> {
    let total = rate * secs;
    // The bodies are made before the clock starts, so that the generator spends the run
    // sending and receiving only.
    // Each request dated when it is due, as live traffic is.
    let bodies: Arc<Vec<Vec<u8>>> =
        Arc::new(tokio::task::spawn_blocking(move || bodies_of(&cards, rate, total, run)).await?);
    // The connections are open before the clock starts, as an acquirer's are, and so is
    // what each records (see [`Recorder`]).
    let mut clients = Vec::new();
    for _ in 0..conns {
        clients.push((
            Client::connect(addr, key).await?,
            Recorder::new(total, conns)?,
        ));
    }
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    // A pacer thread releases request i at its due time, with the sub-millisecond precision
    // of the OS sleep (tokio's timer wheel has a 1 ms tick, which would send the requests of
    // each millisecond as one burst).
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let pacer = spawn_pacer(start.into_std(), rate, total, move |i| tx.send(i).is_ok());
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut tasks = Vec::new();
    for (mut c, rec) in clients {
        let (bodies, rx, key) = (Arc::clone(&bodies), Arc::clone(&rx), key.to_owned());
        tasks.push(tokio::spawn(async move {
            let Recorder {
                all: mut h,
                declined: mut hd,
                mut moments,
            } = rec;
            let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
            let mut errors = 0u64;
            let mut decisions = std::collections::BTreeMap::<String, u64>::new();
            let mut slow = Vec::new();
            loop {
                let ready = tokio::time::Instant::now();
                let Some(i) = rx.lock().await.recv().await else {
                    break;
                };
                let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
                let body = bodies[i as usize].clone();
                let sent = tokio::time::Instant::now();
                // Waiting for a free connection is the server's doing; the pacer's and the
                // runtime's wake-up of an idle sender is the generator's.
                let from = if ready > due { due } else { sent };
                let answer = c.post_timed("/v1/authorizations", body).await;
                // The clock stops when the answer is in; reading it is the generator's time.
                let took = (from.elapsed().as_nanos() as u64).max(1);
                h.record(took)?;
                if let Ok((_, _, Some(t))) = &answer {
                    moments.push((t.sent, t.taken, took > 5_000_000));
                }
                if took > 5_000_000
                    && let Ok((_, _, Some(t))) = &answer
                {
                    let waited = sent.saturating_duration_since(from).as_micros() as u64;
                    slow.push([
                        waited,
                        t.taken.saturating_sub(t.sent) / 1000,
                        t.answered.saturating_sub(t.taken) / 1000,
                        t.received.saturating_sub(t.answered) / 1000,
                    ]);
                }
                match answer {
                    Ok((200, bytes, _)) => {
                        let d = decision_of(&bytes);
                        if d != "approve" {
                            hd.record(took)?;
                        }
                        match decisions.get_mut(d) {
                            Some(n) => *n += 1,
                            None => {
                                decisions.insert(d.to_owned(), 1);
                            }
                        }
                    }
                    Ok((status, _, _)) => {
                        errors += 1;
                        *statuses.entry(status).or_default() += 1;
                    }
                    Err(_) => {
                        errors += 1;
                        *statuses.entry(0).or_default() += 1;
                        // The connection is gone: a new one for the next request.
                        c = Client::connect(addr, &key).await?;
                    }
                }
            }
            anyhow::Ok((h, hd, statuses, errors, decisions, slow, moments))
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut declined = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut statuses = std::collections::BTreeMap::new();
    let mut errors = 0;
    let mut decisions = std::collections::BTreeMap::new();
    let mut slow = Vec::new();
    let mut moments = Vec::new();
    for t in tasks {
        let (h, hd, st, e, d, sl, mo) = t.await??;
        slow.extend(sl);
        moments.extend(mo);
        hist.add(h)?;
        declined.add(hd)?;
        for (k, v) in st {
            *statuses.entry(k).or_default() += v;
        }
        errors += e;
        for (k, v) in d {
            *decisions.entry(k).or_default() += v;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = pacer.join();
    Ok(LoadResult {
        sent: hist.len(),
        hist,
        declined,
        statuses,
        errors,
        secs,
        decisions,
        slow,
        moments,
    })
}

/// An authorization answer's decision ("?" when it has none): read without building the
/// answer's tree, so that the generator spends its time on sending and receiving.
fn decision_of(body: &[u8]) -> &str {
    #[derive(serde::Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        decision: &'a str,
    }
    serde_json::from_slice::<Answer<'_>>(body).map_or("?", |a| a.decision)
}

/// Of the answers over 5 ms that waited more than 2 ms between being sent and being taken:
/// how many waited while the server took no other request at all (the server stood still),
/// and how many while it took others (their own bytes came late).
fn print_stalls(moments: &[(u64, u64, bool)]) {
    let mut taken: Vec<u64> = moments.iter().map(|m| m.1).collect();
    taken.sort_unstable();
    let (mut still, mut others) = (0, 0);
    for &(sent, took, slow) in moments {
        if !slow || took < sent + 2_000_000 {
            continue;
        }
        // Others taken strictly inside the wait, a millisecond from either end.
        let lo = taken.partition_point(|&t| t <= sent + 1_000_000);
        let hi = taken.partition_point(|&t| t < took - 1_000_000);
        if hi > lo {
            others += 1;
        } else {
            still += 1;
        }
    }
    if still + others > 0 {
        println!(
            "  of the slow answers that waited over 2 ms to be taken: {still} while the server took no other request, {others} while it took others"
        );
    }
    if let Some(series) = slow_per_second(moments) {
        println!("  answers over 5 ms in each second of the run: {series}");
    }
}

/// How many answers took over 5 ms in each second of the run (by when they were sent), as
/// a line of counts, when any did: a tail that comes in bursts shows its rhythm (a snapshot
/// every 50,000 events is one every 10 s at 5,000/s).
fn slow_per_second(moments: &[(u64, u64, bool)]) -> Option<String> {
    let start = moments.iter().map(|m| m.0).min()?;
    let mut per: Vec<u64> = Vec::new();
    for &(sent, _, slow) in moments {
        let i = ((sent - start) / 1_000_000_000) as usize;
        if per.len() <= i {
            per.resize(i + 1, 0);
        }
        per[i] += u64::from(slow);
    }
    per.iter()
        .any(|&n| n > 0)
        .then(|| per.iter().map(u64::to_string).collect::<Vec<_>>().join(" "))
}

/// Requests released at their due times for blocking senders: a pacer thread sends each
/// number at `start + i / rate` to a queue the senders share.
pub(crate) struct Paced {
    pub(crate) start: std::time::Instant,
    queue: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<u64>>>,
    pacer: std::thread::JoinHandle<()>,
}

impl Paced {
    pub(crate) fn new(rate: u64, total: u64) -> Paced {
        let start = std::time::Instant::now() + Duration::from_millis(50);
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        Paced {
            start,
            queue: Arc::new(std::sync::Mutex::new(rx)),
            pacer: spawn_pacer(start, rate, total, move |i| tx.send(i).is_ok()),
        }
    }

    /// A handle for one more sender.
    pub(crate) fn queue(&self) -> PacedQueue {
        PacedQueue(Arc::clone(&self.queue))
    }

    /// Waits until the pacer has released every request.
    pub(crate) fn finish(self) {
        let _ = self.pacer.join();
    }
}

/// A sender's end of [`Paced`].
pub(crate) struct PacedQueue(Arc<std::sync::Mutex<std::sync::mpsc::Receiver<u64>>>);

impl PacedQueue {
    /// The next request released, or None once all were.
    pub(crate) fn next(&self) -> Option<u64> {
        self.0.lock().ok()?.recv().ok()
    }
}

/// The rates a run steps through: `rate` for `secs`, or with `find_max` on up by a quarter at
/// a time (10 s each) to 100,000/s.
pub(crate) fn rate_steps(rate: u64, secs: u64, find_max: bool) -> Vec<(u64, u64)> {
    let mut r = vec![(rate, secs)];
    let mut x = rate;
    while find_max && x < 100_000 {
        x = x * 5 / 4;
        r.push((x / 100 * 100, 10));
    }
    r
}

/// The outcome of `--find-max`.
pub(crate) fn print_best(best: Option<u64>) {
    match best {
        Some(b) => println!("highest rate with p99 <= 2 ms and no errors: {b}/s"),
        None => println!("no rate tried kept p99 <= 2 ms"),
    }
}

/// A thread that releases request `i` at `start + i / rate`, with the sub-millisecond
/// precision of the OS sleep, until `release` says nobody listens.
pub(crate) fn spawn_pacer(
    start: std::time::Instant,
    rate: u64,
    total: u64,
    release: impl Fn(u64) -> bool + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for i in 0..total {
            let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
            let now = std::time::Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if !release(i) {
                break;
            }
        }
    })
}

/// The bodies of a run, each dated when it is due, made before the clock starts.
fn bodies_of(cards: &[BenchCard], rate: u64, total: u64, run: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(&[run + 1]);
    let now = SystemClock.now();
    (0..total)
        .map(|i| {
            let at = Timestamp(now.0 + (i * 1000 / rate) as i64);
            // Ids of their own on every run: a server given with --addr may have answered
            // this run's ids before (for other requests: 409).
            request(&mut rng, cards, &format!("b{}-{run}-{i}", now.0), at)
        })
        .collect()
}

/// [`load`] with a plain generator: one OS thread per connection with a blocking socket,
/// each request written with one call and its answer read by its length; the same pacing,
/// timing and report.
fn load_raw(
    addr: SocketAddr,
    key: &str,
    cards: Arc<Vec<BenchCard>>,
    rate: u64,
    secs: u64,
    conns: u64,
    run: u64,
) -> Result<LoadResult> {
    use std::io::{Read, Write};
    let total = rate * secs;
    let bodies = Arc::new(bodies_of(&cards, rate, total, run));
    // Connected, and what each connection records made, before the clock starts (see
    // [`Recorder`]).
    let mut streams = Vec::new();
    for _ in 0..conns {
        let tcp = std::net::TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        streams.push((tcp, Recorder::new(total, conns)?));
    }
    let paced = Paced::new(rate, total);
    let start = paced.start;
    let mut threads = Vec::new();
    for (mut tcp, rec) in streams {
        let (bodies, queue, key) = (Arc::clone(&bodies), paced.queue(), key.to_owned());
        threads.push(std::thread::spawn(move || -> Result<_> {
            let Recorder {
                all: mut h,
                mut moments,
                ..
            } = rec;
            let mut slow = Vec::new();
            let mut errors = 0u64;
            let mut buf = Vec::with_capacity(4096);
            loop {
                let ready = std::time::Instant::now();
                let Some(i) = queue.next() else {
                    break;
                };
                let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
                let body = &bodies[i as usize];
                let mut req = format!(
                    "POST /v1/authorizations HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nauthorization: Bearer {key}\r\n{}: 1\r\ncontent-length: {}\r\n\r\n",
                    cardguard_server::client::TIMING_HEADER,
                    body.len()
                )
                .into_bytes();
                req.extend_from_slice(body);
                let sent_at = std::time::Instant::now();
                let from = if ready > due { due } else { sent_at };
                let sent = cardguard_server::client::monotonic_ns();
                tcp.write_all(&req)?;
                // The answer: headers up to the blank line, then content-length bytes.
                buf.clear();
                let mut chunk = [0u8; 4096];
                let (head_end, length) = loop {
                    let n = tcp.read(&mut chunk)?;
                    anyhow::ensure!(n > 0, "the server closed the connection");
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (p + 4, len);
                    }
                };
                while buf.len() < head_end + length {
                    let n = tcp.read(&mut chunk)?;
                    anyhow::ensure!(n > 0, "the server closed the connection");
                    buf.extend_from_slice(&chunk[..n]);
                }
                let received = cardguard_server::client::monotonic_ns();
                let took = (from.elapsed().as_nanos() as u64).max(1);
                h.record(took)?;
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                if !head.starts_with("http/1.1 200") {
                    errors += 1;
                }
                let server = head
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{}:", cardguard_server::client::TIMING_HEADER)))
                    .and_then(|v| v.trim().split_once(' '))
                    .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
                if let Some((taken, answered)) = server {
                    moments.push((sent, taken, took > 5_000_000));
                    if took > 5_000_000 {
                        slow.push([
                            sent_at.saturating_duration_since(from).as_micros() as u64,
                            taken.saturating_sub(sent) / 1000,
                            answered.saturating_sub(taken) / 1000,
                            received.saturating_sub(answered) / 1000,
                        ]);
                    }
                }
            }
            Ok((h, slow, moments, errors))
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let (mut slow, mut moments, mut errors) = (Vec::new(), Vec::new(), 0);
    for t in threads {
        let (h, sl, mo, e) = t
            .join()
            .map_err(|_| anyhow::anyhow!("a sender panicked"))??;
        hist.add(h)?;
        slow.extend(sl);
        moments.extend(mo);
        errors += e;
    }
    paced.finish();
    Ok(LoadResult {
        sent: hist.len(),
        declined: Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?,
        hist,
        statuses: std::collections::BTreeMap::new(),
        errors,
        secs: start.elapsed().as_secs_f64(),
        decisions: std::collections::BTreeMap::new(),
        slow,
        moments,
    })
}

/// Where the time of the answers over 5 ms went: the median and the largest of each part,
/// and how often each part was the largest.
fn print_slow(slow: &[[u64; 4]]) {
    if slow.is_empty() {
        return;
    }
    const PARTS: [&str; 4] = [
        "waiting for a connection",
        "before the server took it",
        "in the server",
        "after the server answered",
    ];
    let mut line = format!(
        "  the {} answers over 5 ms, where their time went:",
        slow.len()
    );
    let mut largest = [0usize; 4];
    for s in slow {
        let i = (0..4).max_by_key(|&i| s[i]).unwrap_or(0);
        largest[i] += 1;
    }
    for (i, name) in PARTS.iter().enumerate() {
        let mut v: Vec<u64> = slow.iter().map(|s| s[i]).collect();
        v.sort_unstable();
        line.push_str(&format!(
            " {name} median {:.1} ms, max {:.1} ms (largest part {}×);",
            v[v.len() / 2] as f64 / 1000.0,
            v[v.len() - 1] as f64 / 1000.0,
            largest[i]
        ));
    }
    println!("{}", line.trim_end_matches(';'));
}

/// Waits until every consumer of the server's log is within 1 MB of its end (or `limit`
/// passed): the largest lag left.
async fn caught_up(addr: SocketAddr, key: &str, limit: Duration) -> Result<u64> {
    let mut c = Client::connect(addr, key).await?;
    let t0 = Instant::now();
    loop {
        let (_, text) = c.get_raw("/metrics").await?;
        let lag = String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| l.starts_with("cardguard_consumer_lag_bytes{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        if lag < 1 << 20 || t0.elapsed() > limit {
            return Ok(lag);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The server's own counts (its `/metrics`): answers in all and those over 1 ms, 5 ms and
/// 25 ms from a valid request to its answer; waits for the engine lock while another
/// request held it, those over 1 ms, and their sum.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Inside {
    answers: [u64; 4],
    lock_waits: [u64; 2],
    lock_wait_secs: f64,
}

pub(crate) async fn server_buckets(addr: SocketAddr, key: &str) -> Result<Inside> {
    let mut c = Client::connect(addr, key).await?;
    let (_, text) = c.get_raw("/metrics").await?;
    Ok(inside_of(&String::from_utf8_lossy(&text)))
}

/// [`Inside`] read from the text of `/metrics`.
fn inside_of(text: &str) -> Inside {
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let bucket = |hist: &str, le: &str| value(&format!("{hist}_bucket{{le=\"{le}\"}}")) as u64;
    let (lat, lock) = (
        "cardguard_authorization_seconds",
        "cardguard_engine_lock_wait_seconds",
    );
    let all = bucket(lat, "+Inf");
    let waits = bucket(lock, "+Inf");
    Inside {
        answers: [
            all,
            all - bucket(lat, "0.001"),
            all - bucket(lat, "0.005"),
            all - bucket(lat, "0.025"),
        ],
        lock_waits: [waits, waits - bucket(lock, "0.001")],
        lock_wait_secs: value(&format!("{lock}_sum")),
    }
}

/// What the server's own counts saw between two readings of them.
pub(crate) fn print_inside(before: &Inside, after: &Inside) {
    let (a, b) = (&after.answers, &before.answers);
    println!(
        "  inside the server: {} answers, over 1 ms {}, over 5 ms {}, over 25 ms {}",
        a[0] - b[0],
        a[1] - b[1],
        a[2] - b[2],
        a[3] - b[3]
    );
    let (a, b) = (&after.lock_waits, &before.lock_waits);
    println!(
        "  waits for the engine lock: {} ({:.1} ms in all), over 1 ms {}",
        a[0] - b[0],
        (after.lock_wait_secs - before.lock_wait_secs) * 1e3,
        a[1] - b[1]
    );
}

async fn bench_http(a: HttpArgs) -> Result<()> {
    let key = a
        .key
        .clone()
        .unwrap_or_else(|| "bench-key-0123456789abcdef".into());
    let (proc_, addr) = match a.addr {
        Some(addr) => (None, addr),
        None => {
            let (p, addr, _) = start_server(&key, a.snapshot_every, a.model.as_deref(), false)?;
            (Some(p), addr)
        }
    };
    let pid = proc_.as_ref().map(|p| p.child.id().to_string());
    println!(
        "server: http://{addr}{}",
        pid.as_deref()
            .map(|p| format!(" (pid {p}, started for this run)"))
            .unwrap_or_default()
    );
    if let Some(path) = &a.rules {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let mut c = Client::connect(addr, &key).await?;
        let (status, body) = c
            .request(
                cardguard_server::client::Method::PUT,
                "/v1/rules",
                Some(("application/toml", text)),
            )
            .await?;
        anyhow::ensure!(
            status == 200,
            "the ruleset was refused: {}",
            String::from_utf8_lossy(&body)
        );
        println!("ruleset {} in force", path.display());
    }
    let t0 = Instant::now();
    let cards = enroll(addr, &key, a.cards).await?;
    println!(
        "enrolled {} cards in {:.1} s",
        a.cards,
        t0.elapsed().as_secs_f64()
    );
    if a.warmup > 0 {
        let t0 = Instant::now();
        warm(addr, &key, Arc::clone(&cards), a.warmup, a.connections).await?;
        println!(
            "warm-up: {} authorizations in {:.1} s ({:.0}/s); 10 s for the kernel to write the log back",
            a.warmup,
            t0.elapsed().as_secs_f64(),
            a.warmup as f64 / t0.elapsed().as_secs_f64()
        );
        // The warm-up leaves a log written faster than any steady rate; the measured run
        // starts once the page cache has taken it to disk, as it would have in production.
        tokio::time::sleep(Duration::from_secs(10)).await;
        // ... and once the log's consumers (cases, notifications) have caught up with it:
        // the run measures them following live traffic, not working off the warm-up's
        // backlog (which a background consumer does on idle CPU time).
        let t0 = Instant::now();
        let lag = caught_up(addr, &key, Duration::from_secs(900)).await?;
        println!(
            "consumers caught up with the warm-up in {:.1} s (largest lag left {lag} bytes)",
            t0.elapsed().as_secs_f64()
        );
    }
    let rss_before = pid.as_deref().and_then(rss_bytes);
    let rates = rate_steps(a.rate, a.duration, a.find_max);
    let mut best = None;
    for (run, &(rate, secs)) in rates.iter().enumerate() {
        let before = server_buckets(addr, &key).await?;
        let r = if a.raw {
            let (cards, key) = (Arc::clone(&cards), key.clone());
            let conns = a.connections;
            tokio::task::spawn_blocking(move || {
                load_raw(addr, &key, cards, rate, secs, conns, run as u64)
            })
            .await??
        } else {
            load(
                addr,
                &key,
                Arc::clone(&cards),
                rate,
                secs,
                a.connections,
                run as u64,
            )
            .await?
        };
        let p99 = r.hist.value_at_quantile(0.99);
        let decisions: Vec<String> = r
            .decisions
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let statuses: Vec<String> = r
            .statuses
            .iter()
            .map(|(k, v)| {
                format!(
                    "{v}× {}",
                    if *k == 0 {
                        "no answer".to_owned()
                    } else {
                        k.to_string()
                    }
                )
            })
            .collect();
        println!(
            "rate {rate}/s for {secs} s: achieved {:.0}/s, errors {}{}; latency {}; decisions: {}",
            r.sent as f64 / r.secs,
            r.errors,
            if statuses.is_empty() {
                String::new()
            } else {
                format!(" ({})", statuses.join(", "))
            },
            report(&r.hist),
            decisions.join(", ")
        );
        if !r.declined.is_empty() {
            println!("  answers that were not approvals: {}", report(&r.declined));
        }
        print_slow(&r.slow);
        print_stalls(&r.moments);
        let after = server_buckets(addr, &key).await?;
        print_inside(&before, &after);
        if p99 <= 2_000_000 && r.errors == 0 {
            best = Some(rate);
        } else if a.find_max {
            break;
        }
    }
    if a.find_max {
        print_best(best);
    }
    if a.abuse {
        let rss0 = pid.as_deref().and_then(rss_bytes);
        let abuse = Abuse::start(addr, 16, 300)?;
        // Let the attackers get going before measuring.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = server_buckets(addr, &key).await?;
        let r = load(
            addr,
            &key,
            Arc::clone(&cards),
            a.rate,
            a.duration,
            a.connections,
            rates.len() as u64,
        )
        .await?;
        let rss1 = pid.as_deref().and_then(rss_bytes);
        let (uploads, refused, idle_closed) = abuse.stop();
        println!(
            "under abuse (16 clients without a key sending 10 MiB bodies, 300 idle connections): rate {}/s: errors {}; latency {}",
            a.rate,
            r.errors,
            report(&r.hist)
        );
        let after = server_buckets(addr, &key).await?;
        print_inside(&before, &after);
        print_slow(&r.slow);
        println!(
            "  uploads tried {uploads}, refused with 401 before their body {refused}; idle connections closed by the server {idle_closed}"
        );
        if let (Some(b), Some(c)) = (rss0, rss1) {
            println!(
                "  server RSS {:.1} MB before the abuse, {:.1} MB at its end ({:+.1} MB)",
                b as f64 / 1e6,
                c as f64 / 1e6,
                (c as f64 - b as f64) / 1e6
            );
        }
    }
    let mut c = Client::connect(addr, &key).await?;
    let (_, stats) = c.get("/v1/stats").await?;
    let e = &stats["engine"];
    let cards_in_state = e["cards"].as_u64().unwrap_or(0).max(1);
    println!(
        "engine state: {} cards, {:.0} bytes/card (card state), {} authorizations, {:.1} MB in all",
        e["cards"],
        e["card_bytes"].as_u64().unwrap_or(0) as f64 / cards_in_state as f64,
        e["authorizations"],
        e["total_bytes"].as_u64().unwrap_or(0) as f64 / 1e6
    );
    if let (Some(pid), Some(before)) = (pid.as_deref(), rss_before)
        && let Some(after) = rss_bytes(pid)
    {
        println!(
            "server RSS: {:.1} MB after enrolment, {:.1} MB after the load",
            before as f64 / 1e6,
            after as f64 / 1e6
        );
    }
    drop(proc_);
    Ok(())
}

/// Attackers on a thread of their own: clients without a key that send 10 MiB bodies, and
/// connections that send nothing and are opened again when the server closes them.
struct Abuse {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u64, u64)>,
}

impl Abuse {
    fn start(addr: SocketAddr, uploaders: usize, idle: usize) -> Result<Abuse> {
        use std::sync::atomic::AtomicBool;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let stop = Arc::new(AtomicBool::new(false));
        let st = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("abuse".into())
            .spawn(move || {
                // The attackers would be other machines: here they take only the CPU time
                // the server and the load generator leave (SCHED_IDLE), so that what is
                // measured is the server's resistance, not two cores shared three ways.
                let param = libc::sched_param { sched_priority: 0 };
                // SAFETY: sets this thread's scheduling policy; no memory is shared.
                unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                rt.block_on(async move {
                    let tried = Arc::new(AtomicU64::new(0));
                    let refused = Arc::new(AtomicU64::new(0));
                    let closed = Arc::new(AtomicU64::new(0));
                    let mut tasks = Vec::new();
                    for _ in 0..uploaders {
                        let (st, tried, refused) =
                            (Arc::clone(&st), Arc::clone(&tried), Arc::clone(&refused));
                        tasks.push(tokio::spawn(async move {
                            let chunk = vec![b'x'; 64 << 10];
                            while !st.load(Ordering::Relaxed) {
                                let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else {
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                    continue;
                                };
                                tried.fetch_add(1, Ordering::Relaxed);
                                let head = format!(
                                    "POST /v1/mail/scan HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
                                    10 << 20
                                );
                                let _ = tcp.write_all(head.as_bytes()).await;
                                for _ in 0..160 {
                                    if tcp.write_all(&chunk).await.is_err() {
                                        break;
                                    }
                                }
                                let mut answer = [0u8; 12];
                                if let Ok(Ok(n)) = tokio::time::timeout(
                                    Duration::from_secs(2),
                                    tcp.read(&mut answer),
                                )
                                .await
                                    && answer[..n].starts_with(b"HTTP/1.1 401")
                                {
                                    refused.fetch_add(1, Ordering::Relaxed);
                                }
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }));
                    }
                    for _ in 0..idle {
                        let (st, closed) = (Arc::clone(&st), Arc::clone(&closed));
                        tasks.push(tokio::spawn(async move {
                            let mut buf = [0u8; 256];
                            while !st.load(Ordering::Relaxed) {
                                let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else {
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                    continue;
                                };
                                // Wait for the server to close it (or the end of the run).
                                loop {
                                    match tokio::time::timeout(
                                        Duration::from_millis(500),
                                        tcp.read(&mut buf),
                                    )
                                    .await
                                    {
                                        Ok(Ok(0) | Err(_)) => {
                                            closed.fetch_add(1, Ordering::Relaxed);
                                            break;
                                        }
                                        Ok(Ok(_)) => {}
                                        Err(_) if st.load(Ordering::Relaxed) => break,
                                        Err(_) => {}
                                    }
                                }
                            }
                        }));
                    }
                    for t in tasks {
                        let _ = t.await;
                    }
                    (
                        tried.load(Ordering::Relaxed),
                        refused.load(Ordering::Relaxed),
                        closed.load(Ordering::Relaxed),
                    )
                })
            })?;
        Ok(Abuse { stop, thread })
    }

    /// Stops the attackers: uploads tried, refused with 401, idle connections the server
    /// closed.
    fn stop(self) -> (u64, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or((0, 0, 0))
    }
}

async fn bench_restart(events: u64, cards: u64) -> Result<()> {
    use cardguard_app::{App, Config};
    let dir = tempfile::tempdir()?;
    let env = vec![
        (
            "CARDGUARD__STORAGE__DURABILITY".to_string(),
            "write".to_string(),
        ),
        (
            "CARDGUARD__KEYS__CVK__BENCH".to_string(),
            BENCH_CVK.to_string(),
        ),
        // Two months of recorded times.
        (
            "CARDGUARD__ENGINE__MAX_CLOCK_SKEW_SECS".to_string(),
            "0".to_string(),
        ),
        // The worst case of the default spacing: a quarter of the events after the last
        // periodic snapshot.
        (
            "CARDGUARD__STORAGE__SNAPSHOT_EVERY".to_string(),
            (events / 4 + 1).to_string(),
        ),
    ];
    let config = Config::load(None, env)?;
    let (app, _) = App::open(config.clone(), dir.path(), Arc::new(SystemClock))?;
    let app = Arc::new(app);
    let t0 = Instant::now();
    let mut rng = Rng::new(&[9]);
    let mut pans = Vec::new();
    for i in 0..cards {
        let pan = luhn_pan(&mut rng, "4", 16);
        let req: cardguard_app::CardRecord = serde_json::from_value(json!({
            "number": pan, "expiry": "2029-12", "cardholder_id": format!("ch-{i}"), "product": "classic",
            "status": "active", "service_code": "101", "csc": {"method": "cvv-3des", "key_id": "bench"},
            "contact": {"language": "en"}}))?;
        app.enroll(&req)?;
        pans.push(pan);
    }
    let base = Timestamp::parse_rfc3339("2026-10-01T00:00:00Z")?;
    let step = (60 * 86_400_000 / events.max(1)) as i64;
    for i in 0..events {
        let body = json!({
            "id": format!("r{i}"), "timestamp": Timestamp(base.0 + i as i64 * step).to_rfc3339(),
            "card": {"number": pans[rng.below(cards) as usize], "expiry": "2029-12"},
            "amount": {"value": 100 + rng.below(20_000), "currency": "JPY"},
            "merchant": {"id": format!("m-{}", rng.below(5000)), "terminal_id": "t-1", "name": "SHOP", "mcc": "5411",
                         "country": "JP", "city": "Tokyo", "lat": 35.68, "lon": 139.76},
            "channel": "card_present", "type": "purchase"});
        let req: cardguard_server::api::dto::AuthorizationReq = serde_json::from_value(body)?;
        let (auth, off) = req.validate().map_err(|e| anyhow::anyhow!(e.message))?;
        app.authorize(
            auth,
            off,
            &cardguard_app::ClientId::local("bench"),
            Instant::now(),
        )
        .await?;
        if i > 0 && i % 200_000 == 0 {
            println!(
                "  {i} events written ({:.0}/s)",
                i as f64 / t0.elapsed().as_secs_f64()
            );
        }
    }
    // No snapshot at the end: as after a crash, the events since the last periodic snapshot
    // are replayed. Wait for the snapshot writers to let go of the app, and for the log's
    // writer thread to finish.
    let mut app = app;
    loop {
        match Arc::try_unwrap(app) {
            Ok(a) => {
                drop(a);
                break;
            }
            Err(a) => {
                app = a;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let size = std::fs::metadata(dir.path().join("events.log"))?.len();
    println!(
        "wrote {events} events ({:.0} MB log) for {cards} cards in {:.1} s",
        size as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let (_, s) = App::open(config.clone(), dir.path(), Arc::new(SystemClock))?;
    println!(
        "restart with the snapshot: {:.2} s ({} events replayed after the snapshot at offset {}; cards {} ms, snapshot {} ms, log {} ms)",
        t.elapsed().as_secs_f64(),
        s.replayed,
        s.snapshot_offset.unwrap_or(0),
        s.cards_ms,
        s.snapshot_ms,
        s.replay_ms
    );
    cardguard_store::remove_snapshots(dir.path())?;
    let t = Instant::now();
    let (_, s) = App::open(config, dir.path(), Arc::new(SystemClock))?;
    println!(
        "restart without a snapshot (full replay): {:.2} s ({} events replayed)",
        t.elapsed().as_secs_f64(),
        s.replayed
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_answers_are_counted_per_second_of_the_run() {
        let s = 1_000_000_000;
        let m = [
            (5 * s, 0, false),
            (5 * s + 1, 0, true),
            (7 * s + 9, 0, true),
            (7 * s + 10, 0, true),
        ];
        assert_eq!(slow_per_second(&m).as_deref(), Some("1 0 2"));
        assert_eq!(slow_per_second(&[(s, 0, false)]), None);
        assert_eq!(slow_per_second(&[]), None);
    }

    #[test]
    fn an_answers_decision_is_read_from_its_body() {
        let body = br#"{"authorization_id":"au_1","id":"x","decision":"hold","reasons":[{"code":"VELOCITY","detail":"\"decision\":\"approve\""}]}"#;
        assert_eq!(decision_of(body), "hold");
        assert_eq!(decision_of(br#"{"error":"bad"}"#), "?");
        assert_eq!(decision_of(b"not json"), "?");
    }

    #[test]
    fn the_servers_counts_are_read_from_its_metrics() {
        let m = cardguard_app::metrics::Metrics::default();
        let d = |us| Duration::from_micros(us);
        use cardguard_core::{Decision, ResponseCode};
        for us in [300, 2_000, 7_000, 30_000] {
            m.authorization(Decision::Approve, ResponseCode::Approved, d(us));
        }
        m.lock_waited(d(50));
        m.lock_waited(d(1_500));
        let got = inside_of(&m.render(&[]));
        assert_eq!(got.answers, [4, 3, 2, 1]);
        assert_eq!(got.lock_waits, [2, 1]);
        assert!((got.lock_wait_secs - 0.00155).abs() < 1e-9, "{got:?}");
        assert_eq!(inside_of(""), Inside::default());
    }
}
