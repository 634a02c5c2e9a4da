//! `cardguard bench notify`: from a decision to the message accepted by a real SMTP server.
//! It starts aiosmtpd (`scripts/smtp_sink.py`, built in; `CARDGUARD_PYTHON` or `python3`
//! with the `aiosmtpd` package) and a server sending email to it, enrolls cards with an
//! address, and sends approved purchases over the usage-notice threshold at a steady rate:
//! each makes a notice. Latency runs from the authorization's answer to the SMTP server's
//! acceptance of its message, both on the machine's monotonic clock.

use crate::bench::{BenchCard, enroll, report, spawn_pacer, start_server_with};
use anyhow::{Context, Result, bail};
use cardguard_core::{Clock, SystemClock, Timestamp};
use cardguard_server::client::{Client, monotonic_ns};
use hdrhistogram::Histogram;
use serde_json::json;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::Duration;

const SINK: &str = include_str!("../../../scripts/smtp_sink.py");

#[derive(clap::Args)]
pub struct NotifyArgs {
    /// Notices per second.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Seconds of load.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Cards to spread the purchases over (each with an email address).
    #[arg(long, default_value_t = 10_000)]
    cards: u64,
}

/// aiosmtpd, killed when dropped; its JSON lines.
pub(crate) struct Sink {
    child: std::process::Child,
    port: u16,
    pub(crate) lines: std::sync::mpsc::Receiver<serde_json::Value>,
    _script: tempfile::NamedTempFile,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_sink() -> Result<Sink> {
    let python = std::env::var("CARDGUARD_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        bail!(
            "bench notify needs {python} with aiosmtpd (pip install aiosmtpd==1.4.6; scripts/test.sh installs it in target/test-python: CARDGUARD_PYTHON=target/test-python/bin/python)"
        );
    }
    let mut script = tempfile::NamedTempFile::new()?;
    std::io::Write::write_all(&mut script, SINK.as_bytes())?;
    let mut child = std::process::Command::new(&python)
        .arg(script.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting aiosmtpd")?;
    let mut lines = BufReader::new(child.stdout.take().context("sink stdout")?).lines();
    let port = lines
        .next()
        .context("aiosmtpd printed no port")??
        .trim()
        .parse()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&l)
                && tx.send(v).is_err()
            {
                break;
            }
        }
    });
    Ok(Sink {
        child,
        port,
        lines: rx,
        _script: script,
    })
}

/// The settings that send a server's email to the sink.
pub(crate) fn smtp_env(sink: &Sink) -> [(&'static str, String); 4] {
    [
        ("CARDGUARD__NOTIFY__SMTP__HOST", "\"127.0.0.1\"".to_owned()),
        ("CARDGUARD__NOTIFY__SMTP__PORT", sink.port.to_string()),
        (
            "CARDGUARD__NOTIFY__SMTP__FROM",
            "\"Bench <alerts@bench.example>\"".to_owned(),
        ),
        ("CARDGUARD__NOTIFY__SMTP__TLS", "\"none\"".to_owned()),
    ]
}

pub async fn run(a: NotifyArgs) -> Result<()> {
    let sink = start_sink()?;
    let key = "bench-key-0123456789abcdef";
    let (server, http, _) = start_server_with(key, None, None, false, &smtp_env(&sink))?;
    println!(
        "server: http://{http} (pid {}), aiosmtpd on port {}",
        server.child.id(),
        sink.port
    );
    let cards = enroll(http, key, a.cards).await?;
    let total = a.rate * a.duration;
    let now = SystemClock.now();
    // Answered at (monotonic ns) by authorization id.
    let answered: Arc<std::sync::Mutex<HashMap<String, u64>>> = Arc::default();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let start = std::time::Instant::now() + Duration::from_millis(50);
    let pacer = spawn_pacer(start, a.rate, total, move |i| tx.send(i).is_ok());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (rx, answered, cards) = (Arc::clone(&rx), Arc::clone(&answered), Arc::clone(&cards));
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(http, key).await?;
            loop {
                let Some(i) = rx.lock().await.recv().await else {
                    return anyhow::Ok(());
                };
                let card: &BenchCard = &cards[(i % cards.len() as u64) as usize];
                let at = Timestamp(now.0 + (i * 1000 / a.rate) as i64);
                let body = json!({"id": format!("n-{i}"), "timestamp": at.to_rfc3339(),
                    "card": {"number": card.pan, "expiry": "2029-12"},
                    "amount": {"value": 12_800, "currency": "JPY"},
                    "merchant": {"id": "m-bench", "terminal_id": "t-1", "name": "BENCH SHOP", "mcc": "5411",
                                 "country": "JP", "city": "Tokyo"},
                    "channel": "ecommerce", "type": "purchase"});
                let (s, v) = c.post("/v1/authorizations", &body).await?;
                let t = monotonic_ns();
                if s == 200
                    && v["decision"] == "approve"
                    && let Some(id) = v["authorization_id"].as_str()
                {
                    answered
                        .lock()
                        .map_err(|_| anyhow::anyhow!("answered"))?
                        .insert(id.to_owned(), t);
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let _ = pacer.join();
    let expected = answered
        .lock()
        .map_err(|_| anyhow::anyhow!("answered"))?
        .len();
    let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000_000, 3)?;
    let mut seen: HashMap<String, u32> = HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < expected && std::time::Instant::now() < deadline {
        let Ok(m) = sink.lines.recv_timeout(Duration::from_secs(5)) else {
            continue;
        };
        let id = m["message_id"]
            .as_str()
            .and_then(|s| s.trim_start_matches('<').split('.').next())
            .unwrap_or("")
            .to_owned();
        let n = seen.entry(id.clone()).or_default();
        *n += 1;
        if *n > 1 {
            continue;
        }
        let at = m["at_ns"].as_u64().unwrap_or(0);
        if let Some(t) = answered
            .lock()
            .map_err(|_| anyhow::anyhow!("answered"))?
            .get(&id)
        {
            h.record(at.saturating_sub(*t).max(1))?;
        }
    }
    let twice = seen.values().filter(|&&n| n > 1).count();
    println!(
        "{} notices at {}/s for {} s ({} approved purchases): {} arrived, {twice} twice; from the answer to the SMTP server's acceptance {}",
        total,
        a.rate,
        a.duration,
        expected,
        seen.len(),
        report(&h)
    );
    drop(server);
    Ok(())
}
