//! Crash safety of the real binary: killed with SIGKILL under load and started again, every
//! authorization that got a response is still there (a retry of its id gets the same
//! answer), and a torn record at the end of the log is detected and cut off.

mod common;

use cardguard_server::client::Client;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An answered request: id, card, sequence number, the answer.
type Answered = (String, usize, usize, serde_json::Value);

const KEY: &str = "crash-test-key-0123456789";

fn start(dir: &Path) -> (Child, SocketAddr) {
    common::serve(
        dir,
        &format!(
            "[[auth.api_keys]]\nkey = \"{KEY}\"\nscopes = [\"admin\", \"authorize\"]\n[storage]\nsnapshot_every = 700\n[engine]\nmax_clock_skew_secs = 0\n"
        ),
    )
}

fn body(id: &str, card: usize, i: usize) -> serde_json::Value {
    json!({"id": id, "timestamp": format!("2026-11-21T{:02}:{:02}:{:02}Z", (i / 3600) % 24, (i / 60) % 60, i % 60),
      "card": {"number": pan(card), "expiry": "2029-12", "csc": "123"},
      "amount": {"value": 1000 + i as u64, "currency": "JPY"},
      "merchant": {"id": format!("m-{}", i % 17), "terminal_id": "t-1", "name": "SHOP", "mcc": "5411",
                   "country": "JP", "city": "Tokyo", "lat": 35.68, "lon": 139.76},
      "channel": "card_present", "type": "purchase"})
}

fn pan(i: usize) -> String {
    let body = format!("411111{i:09}");
    let d = cardguard_cardsec::luhn::check_digit(&body).unwrap();
    format!("{body}{d}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_answered_authorization() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(dir.path());
    let mut admin = Client::connect(addr, KEY).await.unwrap();
    for c in 0..20 {
        let e = json!({"number": pan(c), "expiry": "2029-12", "cardholder_id": format!("ch-{c}"), "product": "classic",
            "status": "active", "service_code": "101", "csc": {"method": "stored", "value": "123"},
            "contact": {"language": "en"}});
        let (s, v) = admin.post("/v1/cards", &e).await.unwrap();
        assert_eq!(s, 201, "{v}");
    }
    let answered: Arc<Mutex<Vec<Answered>>> = Arc::default();
    let stop_at = Instant::now() + Duration::from_millis(1500);
    let mut tasks = Vec::new();
    for w in 0..8usize {
        let answered = Arc::clone(&answered);
        tasks.push(tokio::spawn(async move {
            let Ok(mut c) = Client::connect(addr, KEY).await else {
                return;
            };
            for n in 0.. {
                let i = n * 8 + w;
                let id = format!("k-{i}");
                match c.post("/v1/authorizations", &body(&id, i % 20, i)).await {
                    Ok((200, v)) => answered.lock().unwrap().push((id, i % 20, i, v)),
                    Ok((s, v)) => panic!("status {s}: {v}"),
                    Err(_) => return, // the server died mid-request: that one was never answered
                }
            }
        }));
    }
    tokio::time::sleep_until(stop_at.into()).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() > 200,
        "too little load to test: {}",
        answered.len()
    );

    // A write torn by a crash: half a frame at the end of the log.
    let log = dir.path().join("data/events.log");
    let before = std::fs::metadata(&log).unwrap().len();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 1, b'{', b'"'])
            .unwrap();
    }

    let (mut child, addr) = start(dir.path());
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        before,
        "the torn tail was cut off"
    );
    let mut c = Client::connect(addr, KEY).await.unwrap();
    for (id, card, i, first) in &answered {
        let (s, v) = c
            .post("/v1/authorizations", &body(id, *card, *i))
            .await
            .unwrap();
        assert_eq!(s, 200);
        assert_eq!(
            &v, first,
            "{id} was answered before the crash and must be in the log"
        );
    }
    let (_, stats) = c.get("/v1/stats").await.unwrap();
    let n = stats["engine"]["authorizations"].as_u64().unwrap();
    assert!(n as usize >= answered.len(), "{n} < {}", answered.len());
    child.kill().unwrap();
    child.wait().unwrap();
}
