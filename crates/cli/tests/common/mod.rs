//! Helpers shared by the command's tests: run `cardguard` and insist that it succeeded, or
//! start it as a server.

#![allow(dead_code)] // each test binary uses some of them

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The `cardguard` binary under test, ready for arguments.
pub fn cardguard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cardguard"))
}

/// Runs the command, failing the test with its stderr unless it succeeds; returns stdout.
pub fn ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs the command, failing the test with its stderr unless it exits with one of `codes`;
/// returns the code and stdout.
pub fn exits(cmd: &mut Command, codes: &[i32]) -> (i32, Vec<u8>) {
    let out = cmd.output().expect("the command runs");
    let code = out.status.code().unwrap_or(-1);
    assert!(
        codes.contains(&code),
        "exit code {code}, expected one of {codes:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, out.stdout)
}

/// A child process that is killed when dropped, so that a failing test leaves no server
/// behind (holding the test's output open).
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cardguard serve` on port 0 with `config` (TOML, written to `dir/c.toml`) and the
/// data directory `dir/data`; returns the process and the address it listens on.
pub fn serve(dir: &Path, config: &str) -> (Child, SocketAddr) {
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, config).unwrap();
    start(dir, Some(&cfg))
}

/// Starts `cardguard serve` on port 0 with no config (the keys of the data directory).
pub fn serve_without_keys(dir: &Path) -> (Child, SocketAddr) {
    start(dir, None)
}

fn start(dir: &Path, config: Option<&Path>) -> (Child, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cardguard"));
    cmd.args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"));
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let mut child = cmd
        .env("CARDGUARD_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(a) = line.strip_prefix("cardguard listening on http://") {
            break a.parse().unwrap();
        }
    };
    (child, addr)
}

/// An enrollment body for a test card in Tokyo: a stored security code of 123, a Japanese
/// email contact, the expiry 2029-12.
pub fn tokyo_card(pan: &str) -> serde_json::Value {
    serde_json::json!({"number": pan, "expiry": "2029-12", "cardholder_id": "ch-1", "product": "gold",
        "status": "active", "service_code": "101", "csc": {"method": "stored", "value": "123"},
        "contact": {"email": "hanako@example.jp", "language": "ja"},
        "home": {"country": "JP", "city": "Tokyo", "lat": 35.68, "lon": 139.76}})
}

/// aiosmtpd, printing a JSON line per accepted message.
pub struct Sink {
    child: Child,
    pub port: u16,
    messages: mpsc::Receiver<Value>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sink {
    /// The SMTP server, or None (after saying why) when aiosmtpd is not installed.
    pub fn start(args: &[&str]) -> Option<Sink> {
        let python = std::env::var("CARDGUARD_PYTHON").unwrap_or_else(|_| "python3".into());
        let probe = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .output();
        if !probe.as_ref().is_ok_and(|o| o.status.success()) {
            assert!(
                std::env::var_os("CARDGUARD_REQUIRE_ORACLES").is_none(),
                "aiosmtpd unavailable: {probe:?}"
            );
            eprintln!("aiosmtpd unavailable (pip install aiosmtpd==1.4.6): not tested");
            return None;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/smtp_sink.py");
        let mut child = Command::new(&python)
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = lines.next().unwrap().unwrap().trim().parse().unwrap();
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                if tx.send(serde_json::from_str(&l).unwrap()).is_err() {
                    break;
                }
            }
        });
        Some(Sink {
            child,
            port,
            messages,
        })
    }

    pub fn next(&self, within: Duration) -> Option<Value> {
        self.messages.recv_timeout(within).ok()
    }
}

/// Node with playwright-core and Debian's Chromium, or None (after saying why).
pub fn browser() -> Option<(String, String)> {
    let playwright = std::env::var("CARDGUARD_PLAYWRIGHT").ok();
    let chromium =
        std::env::var("CARDGUARD_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ready = playwright
        .as_ref()
        .is_some_and(|p| std::path::Path::new(p).join("index.mjs").exists())
        && std::path::Path::new(&chromium).exists();
    if !ready {
        assert!(
            std::env::var_os("CARDGUARD_REQUIRE_BROWSER").is_none(),
            "no browser: CARDGUARD_PLAYWRIGHT={playwright:?}, chromium {chromium}"
        );
        eprintln!("no browser (scripts/test.sh installs chromium and playwright-core): not tested");
        return None;
    }
    Some((playwright.unwrap_or_default(), chromium))
}

/// Asserts that cardguard's own phishing analyzer finds a message the SMTP sink took clean
/// (our notices must not look like the phishing we flag).
pub fn assert_clean(message: &Value) {
    let raw: Vec<u8> = message["raw"]
        .as_str()
        .expect("the raw message")
        .chars()
        .map(|c| c as u8)
        .collect();
    let report =
        cardguard_phish::analyze(&raw, &cardguard_phish::BrandRegistry::builtin()).unwrap();
    assert_eq!(
        report.verdict,
        cardguard_phish::analyze::Verdict::Clean,
        "{} {:?}",
        message["subject"],
        report.reasons
    );
}

/// A city as the tests' merchants stand in it: country, name, latitude, longitude.
pub type City = (&'static str, &'static str, f64, f64);
pub const TOKYO: City = ("JP", "Tokyo", 35.68, 139.76);
pub const NY: City = ("US", "New York", 40.71, -74.01);
pub const LA: City = ("US", "Los Angeles", 34.05, -118.24);

/// A card-present purchase of `yen` with the card `pan` at an electronics shop in `city`.
pub fn shop_purchase(pan: &str, id: &str, at: &str, city: City, yen: u64) -> Value {
    serde_json::json!({"id": id, "timestamp": at,
     "card": {"number": pan, "expiry": "2029-12"},
     "amount": {"value": yen, "currency": "JPY"},
     "merchant": {"id": format!("m-{}", city.1.replace(' ', "-")), "terminal_id": "t-1", "name": "BIC CAMERA", "mcc": "5732",
                  "country": city.0, "city": city.1, "lat": city.2, "lon": city.3},
     "channel": "card_present", "type": "purchase"})
}

/// The `[notify.smtp]` section that sends a server's email to the sink on `port`.
pub fn smtp_section(port: u16) -> String {
    format!(
        "[notify.smtp]\nhost = \"127.0.0.1\"\nport = {port}\nfrom = \"Example Card <alerts@cards.example>\"\ntls = \"none\"\n"
    )
}

/// 10:00 Tokyo time `days` days ago (negative: ahead) plus `minutes`, as RFC 3339: recent
/// moments for requests, so that windows counted from the server's clock (60 days for
/// disputes, 90 for claims, 180 for recurring merchants) keep holding whenever the tests run.
pub fn tokyo_time(days: i64, minutes: i64) -> String {
    const DAY: i64 = 86_400_000;
    const JST: i64 = 9 * 3_600_000;
    let now = cardguard_core::Clock::now(&cardguard_core::SystemClock).0;
    let local = now - days * DAY + JST;
    let midnight = local - local.rem_euclid(DAY) - JST;
    cardguard_core::Timestamp(midnight + 10 * 3_600_000 + minutes * 60_000).to_rfc3339()
}

/// The month (`YYYY-MM`, Tokyo time) of [`tokyo_time`]`(days, 0)`.
/// Enrolls [`tokyo_card`] with `pan`: its card token.
pub async fn enroll_tokyo(c: &mut cardguard_server::client::Client, pan: &str) -> String {
    let (status, card) = c
        .post("/v1/cards", &tokyo_card(pan))
        .await
        .expect("enrolled");
    assert_eq!(status, 201, "{card}");
    card["card_token"]
        .as_str()
        .expect("a card token")
        .to_owned()
}

pub fn tokyo_month(days: i64) -> String {
    let t = cardguard_core::Timestamp::parse_rfc3339(&tokyo_time(days, 0)).expect("a time");
    cardguard_core::Timestamp(t.0 + 9 * 3_600_000).to_rfc3339()[..7].to_owned()
}

/// Shop purchases in Tokyo with `pan`, ids `PREFIX-i`, at each time for each amount, each
/// approved: their authorization ids.
pub async fn approved_purchases(
    c: &mut cardguard_server::client::Client,
    pan: &str,
    prefix: &str,
    purchases: &[(String, u64)],
) -> Vec<String> {
    let mut ids = Vec::with_capacity(purchases.len());
    for (i, (at, yen)) in purchases.iter().enumerate() {
        let (_, a) = c
            .post(
                "/v1/authorizations",
                &shop_purchase(pan, &format!("{prefix}-{i}"), at, TOKYO, *yen),
            )
            .await
            .unwrap();
        assert_eq!(a["decision"], "approve", "{a}");
        ids.push(a["authorization_id"].as_str().unwrap().to_owned());
    }
    ids
}

/// Polls, 25 ms apart, for what the cases consumer writes: 30 s in all, for it runs under
/// `SCHED_IDLE` and a machine whose cores other tests keep busy gives it little.
pub const CASES_POLLS: usize = 1200;

/// A card's transactions of 400 days once the cases consumer has indexed `n` of them.
pub async fn indexed_transactions(
    c: &mut cardguard_server::client::Client,
    token: &str,
    n: usize,
) -> Value {
    let path = format!("/v1/cards/{token}/transactions?days=400");
    for _ in 0..CASES_POLLS {
        let (_, t) = c.get(&path).await.unwrap();
        if t.as_array().map_or(0, Vec::len) >= n {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the cases consumer did not index {n} transactions of {token}");
}
