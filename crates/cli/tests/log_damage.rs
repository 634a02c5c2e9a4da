//! A damaged event log never loses answered events silently: a changed length byte in a
//! middle frame stops the start (it is not cut as a torn tail), `cardguard log verify`
//! names it, `cardguard log repair` sets it aside and every later answered authorization
//! is still there; a flipped bit before the snapshot shows in the health.

mod common;

use cardguard_server::client::Client;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const KEY: &str = "log-damage-test-key-0123456789";
const PAN: &str = "4111111111111111";

fn config(snapshot_every: u64) -> String {
    format!(
        "[[auth.api_keys]]\nkey = \"{KEY}\"\nscopes = [\"admin\", \"authorize\"]\n[storage]\nsnapshot_every = {snapshot_every}\n[engine]\nmax_clock_skew_secs = 0\n"
    )
}

fn body(i: usize) -> serde_json::Value {
    json!({"id": format!("r-{i}"), "timestamp": format!("2026-11-21T10:{:02}:{:02}Z", i / 60, i % 60),
      "card": {"number": PAN, "expiry": "2029-12", "csc": "123"},
      "amount": {"value": 1000 + i as u64, "currency": "JPY"},
      "merchant": {"id": "m-1", "terminal_id": "t-1", "name": "SHOP", "mcc": "5411",
                   "country": "JP", "city": "Tokyo", "lat": 35.68, "lon": 139.76},
      "channel": "card_present", "type": "purchase"})
}

/// Enrolls the card and sends `n` authorizations; their answers.
async fn load(client: &mut Client, n: usize) -> Vec<serde_json::Value> {
    let card = json!({"number": PAN, "expiry": "2029-12", "cardholder_id": "ch-1", "product": "classic",
        "status": "active", "service_code": "101", "csc": {"method": "stored", "value": "123"},
        "contact": {"language": "en"}});
    let (s, v) = client.post("/v1/cards", &card).await.unwrap();
    assert_eq!(s, 201, "{v}");
    let mut answers = Vec::new();
    for i in 0..n {
        let (s, v) = client.post("/v1/authorizations", &body(i)).await.unwrap();
        assert_eq!(s, 200, "{v}");
        answers.push(v);
    }
    answers
}

/// Where each frame of the log starts.
fn frame_offsets(log: &Path) -> Vec<u64> {
    let b = std::fs::read(log).unwrap();
    let mut at = 0usize;
    let mut out = Vec::new();
    while at + 8 < b.len() {
        out.push(at as u64);
        at += 8 + u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    }
    out
}

fn patch(path: &Path, offset: u64, f: impl FnOnce(u8) -> u8) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    file.read_exact_at(&mut b, offset).unwrap();
    file.write_all_at(&[f(b[0])], offset).unwrap();
}

fn log_cmd(args: &[&str], dir: &Path) -> (bool, String) {
    let out = common::cardguard()
        .arg("log")
        .args(args)
        .arg(dir.join("data"))
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn a_changed_length_in_a_middle_frame_stops_the_start_and_repair_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    // No snapshot: every frame is replayed at the start.
    let (mut child, addr) = common::serve(dir.path(), &config(1_000_000));
    let mut c = Client::connect(addr, KEY).await.unwrap();
    let answers = load(&mut c, 150).await;
    child.kill().unwrap(); // SIGKILL: no snapshot at shutdown
    child.wait().unwrap();
    let log = dir.path().join("data/events.log");
    let frames = frame_offsets(&log);
    assert_eq!(frames.len(), 150);
    // Authorization 23's length now runs past the end of the file; 126 answered ones follow.
    let damaged = frames[23];
    patch(&log, damaged + 2, |b| b | 0x0f);
    let len = std::fs::metadata(&log).unwrap().len();

    let out = common::cardguard()
        .args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(dir.path().join("c.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the server started on a damaged log");
    assert!(
        stderr.contains(&format!("damaged at offset {damaged}")) && stderr.contains("log repair"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        len,
        "nothing was cut"
    );

    let (ok, text) = log_cmd(&["verify"], dir.path());
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("damaged: offset {damaged}"))
            && text.contains(&format!("resume at offset {}", frames[24])),
        "{text}"
    );
    let (ok, text) = log_cmd(&["repair"], dir.path());
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "set aside {} bytes at offset {damaged}",
            frames[24] - damaged
        )) && text.contains("kept 149 events")
            && text.contains("holding 1 authorization"),
        "{text}"
    );
    let (ok, text) = log_cmd(&["verify"], dir.path());
    assert!(ok, "{text}");

    let (mut child, addr) = common::serve(dir.path(), &config(1_000_000));
    let mut c = Client::connect(addr, KEY).await.unwrap();
    for (i, first) in answers.iter().enumerate().filter(|(i, _)| *i != 23) {
        let (s, v) = c.post("/v1/authorizations", &body(i)).await.unwrap();
        assert_eq!((s, &v), (200, first), "r-{i} after the repair");
    }
    let (_, stats) = c.get("/v1/stats").await.unwrap();
    assert_eq!(stats["engine"]["authorizations"], 150);
    assert_eq!(stats["engine"]["authorizations_missing"], 1);
    let (s, h) = c.get("/v1/health").await.unwrap();
    assert_eq!((s, h["status"].as_str()), (200, Some("degraded")), "{h}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn a_flipped_bit_before_the_snapshot_shows_in_the_health() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = common::serve(dir.path(), &config(50));
    let mut c = Client::connect(addr, KEY).await.unwrap();
    load(&mut c, 120).await;
    // SIGTERM: a clean stop writes a snapshot of everything.
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    child.wait().unwrap();
    let data = dir.path().join("data");
    let covered = cardguard_store::snapshot_offset(&data).unwrap().unwrap();
    let log = data.join("events.log");
    let frames = frame_offsets(&log);
    assert!(frames[10] < covered);
    patch(&log, frames[10] + 20, |b| b ^ 0x04);

    let (mut child, addr) = common::serve(dir.path(), &config(50));
    let mut c = Client::connect(addr, KEY).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        let (s, h) = c.get("/v1/health").await.unwrap();
        if h["status"] != "ok" || Instant::now() > deadline {
            break (s, h);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (health.0, health.1["status"].as_str()),
        (200, Some("degraded")),
        "{:?}",
        health.1
    );
    let problems = health.1["problems"].to_string();
    assert!(
        problems.contains("damaged before the snapshot")
            && problems.contains(&format!("offset {}", frames[10])),
        "{problems}"
    );
    // Without a key the status only.
    let mut anon = Client::connect(addr, "not-a-key-0123456789").await.unwrap();
    let (_, h) = anon.get("/v1/health").await.unwrap();
    assert!(h.get("problems").is_none(), "{h}");
    child.kill().unwrap();
    child.wait().unwrap();
}
