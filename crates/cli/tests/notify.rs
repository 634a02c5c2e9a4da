//! Notifications end to end against a real SMTP server (aiosmtpd, started here): a hold
//! (New York, then Los Angeles five minutes later) sends a fraud alert with the two answer
//! links, an approved purchase of ¥12,800 a usage notice, a ¥3,000 one nothing; each in the
//! cardholder's language, with the last four digits only, its idempotency key as the
//! Message-ID, and clean by cardguard's own phishing analyzer. The alert's links open a page
//! (GET changes nothing) whose form answers: "it was me" releases the purchase, "it was not
//! me" blocks the card; once. An SMTP server that answers "try again later" gets the message
//! again after the backoff.

mod common;

use cardguard_server::client::Client;
use common::{LA, NY, TOKYO};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const KEY: &str = "notify-test-key-0123456789abcdef";
const PAN: &str = "4123456789012349";

fn config(port: u16) -> String {
    format!(
        r#"[[auth.api_keys]]
key = "{KEY}"
scopes = ["admin", "authorize"]
[engine]
max_clock_skew_secs = 0
[notify]
retry_initial_ms = 200
issuer_name = "Example Card"
[notify.smtp]
host = "127.0.0.1"
port = {port}
from = "Example Card <alerts@cards.example>"
tls = "none"
[web]
public_url = "https://cards.example/"
"#
    )
}

fn authorization(id: &str, at: &str, city: common::City, yen: u64) -> Value {
    common::shop_purchase(PAN, id, at, city, yen)
}

async fn enroll(c: &mut Client, language: &str) {
    let card = json!({"number": PAN, "expiry": "2029-12", "cardholder_id": "ch-1", "product": "gold",
        "status": "active", "service_code": "101", "csc": {"method": "stored", "value": "123"},
        "contact": {"email": "hanako@example.jp", "language": language},
        "notifications": {"usage_threshold": {"value": 5000, "currency": "JPY"}, "channels": ["email"]},
        "home": {"country": "JP", "city": "Tokyo", "lat": 35.68, "lon": 139.76}});
    let (s, v) = c.post("/v1/cards", &card).await.unwrap();
    assert_eq!(s, 201, "{v}");
}

#[tokio::test]
async fn a_hold_sends_an_alert_and_a_large_purchase_a_notice_by_smtp() {
    let Some(sink) = common::Sink::start(&[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = common::serve(dir.path(), &config(sink.port));
    let _server = common::Running(child);
    let mut c = Client::connect(addr, KEY).await.unwrap();
    enroll(&mut c, "ja").await;

    let (_, small) = c
        .post(
            "/v1/authorizations",
            &authorization("n-1", "2026-12-01T01:00:00Z", TOKYO, 3000),
        )
        .await
        .unwrap();
    assert_eq!(small["decision"], "approve", "{small}");
    let (_, large) = c
        .post(
            "/v1/authorizations",
            &authorization("n-2", "2026-12-01T01:15:00Z", TOKYO, 12_800),
        )
        .await
        .unwrap();
    assert_eq!(large["decision"], "approve", "{large}");
    let notice = sink.next(Duration::from_secs(10)).expect("a usage notice");
    let au = large["authorization_id"].as_str().unwrap();
    assert_eq!(
        notice["message_id"],
        format!("<{au}.usage-notice.email@cards.example>")
    );
    assert_eq!(notice["rcpt_tos"], json!(["hanako@example.jp"]));
    let subject = notice["subject"].as_str().unwrap();
    assert!(
        subject.contains("Example Card") && subject.contains("¥12,800") && subject.contains("2349"),
        "{subject}"
    );
    let body = notice["body"].as_str().unwrap();
    assert!(body.contains("2026年12月1日 10:15 (JST)"), "{body}");
    assert!(!body.contains(PAN) && !notice["raw"].as_str().unwrap().contains(PAN));

    // New York, then Los Angeles five minutes later: held, and an alert with two links.
    c.post(
        "/v1/authorizations",
        &authorization("n-3", "2026-12-01T15:00:00Z", NY, 4000),
    )
    .await
    .unwrap();
    let (_, held) = c
        .post(
            "/v1/authorizations",
            &authorization("n-4", "2026-12-01T15:05:00Z", LA, 4000),
        )
        .await
        .unwrap();
    assert_eq!(held["decision"], "hold", "{held}");
    let alert = sink.next(Duration::from_secs(10)).expect("a fraud alert");
    let au = held["authorization_id"].as_str().unwrap();
    assert_eq!(
        alert["message_id"],
        format!("<{au}.fraud-alert.email@cards.example>")
    );
    let body = alert["body"].as_str().unwrap();
    let links: Vec<&str> = body
        .split_whitespace()
        .filter(|w| w.starts_with("https://cards.example/answer?t="))
        .collect();
    assert_eq!(links.len(), 2, "{body}");
    assert!(
        links[0].ends_with("answer=yes") && links[1].ends_with("answer=no"),
        "{body}"
    );
    assert!(links[0].contains(au), "the link names the authorization");
    assert!(
        body.contains("保留") && body.contains("Los Angeles"),
        "{body}"
    );
    // Our own alert is not phishing to our own analyzer.
    common::assert_clean(&alert);
    // Nothing else was sent (the ¥3,000 and ¥4,000 purchases are under the threshold).
    assert!(sink.next(Duration::from_millis(500)).is_none());

    // The cardholder opens the "it was me" link: a page with one form, nothing changed.
    let path = |link: &str| link.trim_start_matches("https://cards.example").to_owned();
    let (s, page) = c.get_raw(&path(links[0])).await.unwrap();
    let page = String::from_utf8_lossy(&page).to_string();
    assert_eq!(s, 200, "{page}");
    assert!(
        page.contains("<form method=\"post\" action=\"/answer\">")
            && page.contains("はい、本人の利用です")
            && page.contains("Los Angeles")
            && page.contains("¥4,000"),
        "{page}"
    );
    assert_eq!(page.matches("<form").count(), 1);
    let again = |id: &str| authorization(id, "2026-12-01T15:06:00Z", LA, 4000);
    let (_, still) = c.post("/v1/authorizations", &again("n-5")).await.unwrap();
    assert_eq!(
        still["decision"], "hold",
        "opening the link changed nothing: {still}"
    );
    assert!(
        sink.next(Duration::from_secs(10)).is_some(),
        "its own alert"
    );
    // The form's POST answers: released, and the same purchase again is approved.
    let token = links[0]
        .split("t=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let form = |answer: &str| format!("t={token}&answer={answer}").into_bytes();
    let (s, done) = c
        .post_typed("/answer", "application/x-www-form-urlencoded", form("yes"))
        .await
        .unwrap();
    let done = String::from_utf8_lossy(&done).to_string();
    assert_eq!(s, 200, "{done}");
    assert!(done.contains("保留を解除しました"), "{done}");
    let (_, approved) = c.post("/v1/authorizations", &again("n-6")).await.unwrap();
    assert_eq!(approved["decision"], "approve", "{approved}");
    // Answered once: a second answer (even the other one) changes nothing.
    let (_, second) = c
        .post_typed("/answer", "application/x-www-form-urlencoded", form("no"))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&second).contains("本人の利用です」とご回答"));
    // A changed link opens nothing.
    let (s, _) = c
        .get_raw(&path(links[0]).replace("answer?t=au_", "answer?t=au_9"))
        .await
        .unwrap();
    assert_eq!(s, 400);
    // The server marks a message sent once the SMTP server's answer reaches it, a moment
    // after the sink has it.
    let mut m = String::new();
    for _ in 0..100 {
        let (_, raw) = c.get_raw("/metrics").await.unwrap();
        m = String::from_utf8_lossy(&raw).into_owned();
        if m.contains("cardguard_notification_outbox{state=\"sent\"} 3") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        m.contains("cardguard_notifications_sent_total{kind=\"fraud-alert\"} 2")
            && m.contains("cardguard_notification_outbox{state=\"sent\"} 3"),
        "{m}"
    );
}

#[tokio::test]
async fn it_was_not_me_blocks_the_card() {
    let Some(sink) = common::Sink::start(&[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = common::serve(dir.path(), &config(sink.port));
    let _server = common::Running(child);
    let mut c = Client::connect(addr, KEY).await.unwrap();
    enroll(&mut c, "en").await;
    c.post(
        "/v1/authorizations",
        &authorization("x-1", "2026-12-01T15:00:00Z", NY, 4000),
    )
    .await
    .unwrap();
    let (_, held) = c
        .post(
            "/v1/authorizations",
            &authorization("x-2", "2026-12-01T15:05:00Z", LA, 4000),
        )
        .await
        .unwrap();
    assert_eq!(held["decision"], "hold");
    let alert = sink.next(Duration::from_secs(10)).expect("a fraud alert");
    let body = alert["body"].as_str().unwrap();
    let no = body
        .split_whitespace()
        .find(|w| w.ends_with("answer=no"))
        .unwrap();
    let token = no.split("t=").nth(1).unwrap().split('&').next().unwrap();
    let (s, page) = c
        .get_raw(no.trim_start_matches("https://cards.example"))
        .await
        .unwrap();
    let page = String::from_utf8_lossy(&page).to_string();
    assert_eq!(s, 200);
    assert!(
        page.contains("No, it was not me") && page.contains("lang=\"en\""),
        "{page}"
    );
    let (s, done) = c
        .post_typed(
            "/answer",
            "application/x-www-form-urlencoded",
            format!("t={token}&answer=no").into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&done).contains("We have stopped this card"));
    // The cardholder is told the card is stopped.
    let blocked = sink
        .next(Duration::from_secs(10))
        .expect("the notice of the blocked card");
    assert_eq!(
        blocked["message_id"],
        format!(
            "<{}.card-blocked.email@cards.example>",
            held["authorization_id"].as_str().unwrap()
        )
    );
    assert!(
        blocked["subject"]
            .as_str()
            .unwrap()
            .contains("we have stopped your card ending 2349"),
        "{blocked}"
    );
    // The hold shows as refused (the call centre sees it), and answers stay as given.
    let holds = holds_in(&mut c, "refused").await;
    assert_eq!(
        holds[0]["authorization_id"], held["authorization_id"],
        "{holds}"
    );
    assert_eq!(
        (holds[0]["via"].as_str(), holds[0]["last4"].as_str()),
        (Some("web"), Some("2349"))
    );
    let au = held["authorization_id"].as_str().unwrap();
    let (s, again) = c
        .post(&format!("/v1/holds/{au}/answer"), &json!({"answer": "yes"}))
        .await
        .unwrap();
    assert_eq!(
        (s, &again["answer"], &again["first"]),
        (200, &json!("no"), &json!(false))
    );
    // The card is blocked: the next purchase, even at home, is declined 62.
    let (_, next) = c
        .post(
            "/v1/authorizations",
            &authorization("x-3", "2026-12-01T16:00:00Z", TOKYO, 500),
        )
        .await
        .unwrap();
    assert_eq!(
        (next["decision"].as_str(), next["response_code"].as_str()),
        (Some("decline"), Some("62")),
        "{next}"
    );
}

#[tokio::test]
async fn a_server_that_says_try_later_gets_the_message_again() {
    let Some(sink) = common::Sink::start(&["--fail-first", "2"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = common::serve(dir.path(), &config(sink.port));
    let _server = common::Running(child);
    let mut c = Client::connect(addr, KEY).await.unwrap();
    enroll(&mut c, "en").await;
    let (_, large) = c
        .post(
            "/v1/authorizations",
            &authorization("r-1", "2026-12-01T01:15:00Z", TOKYO, 50_000),
        )
        .await
        .unwrap();
    let notice = sink
        .next(Duration::from_secs(20))
        .expect("the notice, on the third try");
    let au = large["authorization_id"].as_str().unwrap();
    assert_eq!(
        notice["message_id"],
        format!("<{au}.usage-notice.email@cards.example>")
    );
    assert!(
        notice["subject"]
            .as_str()
            .unwrap()
            .starts_with("Example Card: your card ending 2349 was used for ¥50,000"),
        "{notice}"
    );
    assert!(
        notice["body"]
            .as_str()
            .unwrap()
            .contains("1 Dec 2026, 10:15 JST")
    );
    let (_, m) = c.get_raw("/metrics").await.unwrap();
    let m = String::from_utf8_lossy(&m);
    assert!(
        m.contains("cardguard_notification_failures_total{outcome=\"retry\"} 2"),
        "{m}"
    );
}

#[tokio::test]
async fn the_answer_page_in_a_real_browser() {
    let Some((playwright, chromium)) = common::browser() else {
        return;
    };
    let Some(sink) = common::Sink::start(&[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = common::serve(dir.path(), &config(sink.port));
    let _server = common::Running(child);
    let mut c = Client::connect(addr, KEY).await.unwrap();
    enroll(&mut c, "ja").await;
    c.post(
        "/v1/authorizations",
        &authorization("w-1", "2026-12-01T15:00:00Z", NY, 4000),
    )
    .await
    .unwrap();
    let (_, held) = c
        .post(
            "/v1/authorizations",
            &authorization("w-2", "2026-12-01T15:05:00Z", LA, 4000),
        )
        .await
        .unwrap();
    assert_eq!(held["decision"], "hold");
    let alert = sink.next(Duration::from_secs(10)).expect("a fraud alert");
    let yes = alert["body"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .find(|w| w.ends_with("answer=yes"))
        .unwrap()
        .replace("https://cards.example", &format!("http://{addr}"));
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/answer_page.mjs");
    let out = Command::new("node")
        .arg(script)
        .arg(&yes)
        .arg(&shots)
        .env("CARDGUARD_PLAYWRIGHT", &playwright)
        .env("CARDGUARD_CHROMIUM", &chromium)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (seen["status"].as_u64(), seen["lang"].as_str()),
        (Some(200), Some("ja"))
    );
    assert_eq!(seen["buttons"], 1, "one form, one button");
    let before = seen["before"].as_str().unwrap();
    assert!(
        before.contains("はい、本人の利用です") && before.contains("¥4,000"),
        "{before}"
    );
    assert!(
        seen["after"]
            .as_str()
            .unwrap()
            .contains("保留を解除しました"),
        "{seen}"
    );
    assert!(shots.join("answer-page.png").exists() && shots.join("answered.png").exists());
    // The browser's answer took effect: the same purchase is approved.
    let (_, again) = c
        .post(
            "/v1/authorizations",
            &authorization("w-3", "2026-12-01T15:06:00Z", LA, 4000),
        )
        .await
        .unwrap();
    assert_eq!(again["decision"], "approve", "{again}");
}

#[tokio::test]
async fn holds_answered_through_the_api_and_dead_letters_shown() {
    let Some(sink) = common::Sink::start(&["--reject"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = common::serve(dir.path(), &config(sink.port));
    let _server = common::Running(child);
    let mut c = Client::connect(addr, KEY).await.unwrap();
    enroll(&mut c, "en").await;
    c.post(
        "/v1/authorizations",
        &authorization("h-1", "2026-12-01T15:00:00Z", NY, 4000),
    )
    .await
    .unwrap();
    let (_, held) = c
        .post(
            "/v1/authorizations",
            &authorization("h-2", "2026-12-01T15:05:00Z", LA, 4000),
        )
        .await
        .unwrap();
    let au = held["authorization_id"].as_str().unwrap().to_owned();
    // The consumer records the hold within a moment.
    let open = holds_in(&mut c, "open").await;
    assert_eq!(open[0]["authorization_id"], au, "{open}");
    assert_eq!(open[0]["amount"], json!({"value": 4000, "currency": "JPY"}));
    // The call centre answers for the cardholder: released.
    let (s, a) = c
        .post(&format!("/v1/holds/{au}/answer"), &json!({"answer": "yes"}))
        .await
        .unwrap();
    assert_eq!((s, &a["first"]), (200, &json!(true)), "{a}");
    let (_, approved) = c
        .post(
            "/v1/authorizations",
            &authorization("h-3", "2026-12-01T15:06:00Z", LA, 4000),
        )
        .await
        .unwrap();
    assert_eq!(approved["decision"], "approve", "{approved}");
    for (path, body, status) in [
        (
            format!("/v1/holds/{au}/answer"),
            json!({"answer": "maybe"}),
            400,
        ),
        (
            "/v1/holds/au_000000000000/answer".to_owned(),
            json!({"answer": "no"}),
            409,
        ),
        (
            "/v1/holds/au_999999999999/answer".to_owned(),
            json!({"answer": "no"}),
            404,
        ),
    ] {
        let (s, v) = c.post(&path, &body).await.unwrap();
        assert_eq!(s, status, "{path}: {v}");
    }
    let (s, _) = c.get("/v1/holds?state=closed").await.unwrap();
    assert_eq!(s, 400);
    // The SMTP server refuses the alert for good: a dead letter at once, visible, and put
    // back in the queue on request.
    let mut dead = Value::Null;
    for _ in 0..100 {
        let (_, d) = c.get("/v1/notifications?state=dead").await.unwrap();
        if d.as_array().is_some_and(|a| !a.is_empty()) {
            dead = d;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(dead[0]["key"], format!("{au}.fraud-alert.email"), "{dead}");
    assert_eq!(dead[0]["tries"], 1);
    assert!(
        dead[0]["last_error"].as_str().unwrap().contains("550"),
        "{dead}"
    );
    assert!(dead[0].get("recipient").is_none(), "no address shown");
    let key = dead[0]["key"].as_str().unwrap();
    let (s, _) = c
        .post(&format!("/v1/notifications/{key}/retry"), &json!({}))
        .await
        .unwrap();
    assert_eq!(s, 200);
    let (_, m) = c.get_raw("/metrics").await.unwrap();
    assert!(
        String::from_utf8_lossy(&m)
            .contains("cardguard_notification_failures_total{outcome=\"dead\"} 1")
    );
    assert!(sink.next(Duration::from_millis(200)).is_none());
}

/// An HTTP endpoint (Python's standard library) printing a JSON line per POST.
struct HttpSink {
    child: Child,
    port: u16,
    requests: mpsc::Receiver<Value>,
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HttpSink {
    fn start() -> HttpSink {
        let python = std::env::var("CARDGUARD_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/http_sink.py");
        let mut child = Command::new(&python)
            .arg(script)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = lines.next().unwrap().unwrap().trim().parse().unwrap();
        let (tx, requests) = mpsc::channel();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                if tx.send(serde_json::from_str(&l).unwrap()).is_err() {
                    break;
                }
            }
        });
        HttpSink {
            child,
            port,
            requests,
        }
    }
}

#[tokio::test]
async fn sms_and_push_go_out_and_an_sms_reply_answers() {
    let http = HttpSink::start();
    let p = http.port;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        r#"[[auth.api_keys]]
key = "{KEY}"
scopes = ["admin", "authorize"]
[engine]
max_clock_skew_secs = 0
[notify.sms]
url = "http://127.0.0.1:{p}/sms/send"
from = "ExampleCard"
from_field = "From"
to_field = "To"
text_field = "Body"
auth = "basic"
username = "AC123"
password = "sms-password"
inbound_secret = "inbound-secret-0123456789"
[notify.push]
url = "http://127.0.0.1:{p}/push"
secret = "push-secret-0123456789"
"#
    );
    let (child, addr) = common::serve(dir.path(), &cfg);
    let _server = common::Running(child);
    let mut c = Client::connect(addr, KEY).await.unwrap();
    let card = json!({"number": PAN, "expiry": "2029-12", "cardholder_id": "ch-1", "product": "gold",
        "status": "active", "service_code": "101", "csc": {"method": "stored", "value": "123"},
        "contact": {"phone": "+819012345678", "language": "en"},
        "notifications": {"channels": ["sms", "push"]},
        "home": {"country": "JP", "city": "Tokyo", "lat": 35.68, "lon": 139.76}});
    let (s, v) = c.post("/v1/cards", &card).await.unwrap();
    assert_eq!(s, 201, "{v}");
    c.post(
        "/v1/authorizations",
        &authorization("s-1", "2026-12-01T15:00:00Z", NY, 4000),
    )
    .await
    .unwrap();
    let (_, held) = c
        .post(
            "/v1/authorizations",
            &authorization("s-2", "2026-12-01T15:05:00Z", LA, 4000),
        )
        .await
        .unwrap();
    assert_eq!(held["decision"], "hold");
    let au = held["authorization_id"].as_str().unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(
            http.requests
                .recv_timeout(Duration::from_secs(10))
                .expect("a request"),
        );
    }
    got.sort_by_key(|r| r["path"].as_str().unwrap().to_owned());
    let (push, sms) = (&got[0], &got[1]);
    assert_eq!(sms["path"], "/sms/send");
    assert_eq!(
        sms["headers"]["authorization"],
        "Basic QUMxMjM6c21zLXBhc3N3b3Jk"
    );
    let body = sms["body"].as_str().unwrap();
    assert!(
        body.starts_with(
            "From=ExampleCard&To=%2B819012345678&Body=cardguard%3A+we+have+put+on+hold"
        ),
        "{body}"
    );
    let code = cardguard_app::links::reply_code(au);
    assert!(body.contains(&format!("Reply+YES+{code}")), "{body}");
    assert_eq!(push["path"], "/push");
    let doc: Value = serde_json::from_str(push["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (doc["kind"].as_str(), doc["last4"].as_str()),
        (Some("fraud-alert"), Some("2349"))
    );
    assert!(
        doc["answer"]["yes"]
            .as_str()
            .unwrap()
            .contains("answer=yes")
    );
    let ts: i64 = push["headers"]["x-cardguard-timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        push["headers"]["x-cardguard-signature"],
        cardguard_notify::http::push_signature(
            b"push-secret-0123456789",
            ts,
            push["body"].as_str().unwrap().as_bytes()
        )
    );
    // The cardholder replies by SMS; without the secret, nothing.
    let reply = |secret: &str| {
        (
            format!("/v1/sms/inbound?secret={secret}"),
            format!("From=%2B819012345678&Body=yes+{code}").into_bytes(),
        )
    };
    let (path, form) = reply("wrong");
    let (s, _) = c
        .post_typed(&path, "application/x-www-form-urlencoded", form)
        .await
        .unwrap();
    assert_eq!(s, 401);
    let (_, still) = c
        .post(
            "/v1/authorizations",
            &authorization("s-3", "2026-12-01T15:06:00Z", LA, 4000),
        )
        .await
        .unwrap();
    assert_eq!(still["decision"], "hold");
    for _ in 0..2 {
        http.requests
            .recv_timeout(Duration::from_secs(10))
            .expect("its alerts");
    }
    let (path, form) = reply("inbound-secret-0123456789");
    let (s, _) = c
        .post_typed(&path, "application/x-www-form-urlencoded", form)
        .await
        .unwrap();
    assert_eq!(s, 200);
    let (_, approved) = c
        .post(
            "/v1/authorizations",
            &authorization("s-4", "2026-12-01T15:07:00Z", LA, 4000),
        )
        .await
        .unwrap();
    assert_eq!(approved["decision"], "approve", "{approved}");
    let holds = holds_in(&mut c, "released").await;
    assert_eq!(holds[0]["via"], "sms", "{holds}");
}

/// The holds in `state`, once the consumer has recorded one (it follows the log a moment
/// behind the answers).
async fn holds_in(c: &mut Client, state: &str) -> Value {
    for _ in 0..200 {
        let (s, h) = c.get(&format!("/v1/holds?state={state}")).await.unwrap();
        assert_eq!(s, 200, "{h}");
        if h.as_array().is_some_and(|a| !a.is_empty()) {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no hold {state} within 10 s");
}

/// A card number of the test BIN with its Luhn digit.
fn pan(i: u32) -> String {
    let body = format!("412345670{i:06}");
    let d = cardguard_cardsec::luhn::check_digit(&body).unwrap();
    format!("{body}{d}")
}

/// 1,000 usage notices; the server killed with SIGKILL while they are being sent and started
/// again: every one arrives. Those the SMTP server had accepted when the kill came, but whose
/// row was not yet marked sent, arrive twice (with the same Message-ID); the count is
/// printed and bounded by what can be in flight.
#[tokio::test]
async fn killed_while_sending_every_notification_arrives() {
    let Some(sink) = common::Sink::start(&[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(sink.port).replace("[notify]\n", "[notify]\nconcurrency = 8\n");
    let (child, addr) = common::serve(dir.path(), &cfg);
    let mut server = common::Running(child);
    let mut c = Client::connect(addr, KEY).await.unwrap();
    let cards: Vec<Value> = (0..1000)
        .map(|i| {
            json!({"number": pan(i), "expiry": "2029-12", "cardholder_id": format!("ch-{i}"),
                "product": "gold", "status": "active", "service_code": "101",
                "csc": {"method": "stored", "value": "123"},
                "contact": {"email": format!("holder{i}@example.jp"), "language": "en"},
                "home": {"country": "JP"}})
        })
        .collect();
    let (s, v) = c
        .post("/v1/cards:batch", &json!({"cards": cards}))
        .await
        .unwrap();
    assert_eq!((s, &v["created"]), (200, &json!(1000)), "{v}");
    for i in 0..1000u32 {
        let mut a = authorization(&format!("k-{i}"), "2026-12-01T01:15:00Z", TOKYO, 6000);
        a["card"]["number"] = json!(pan(i));
        let (s, v) = c.post("/v1/authorizations", &a).await.unwrap();
        assert_eq!((s, v["decision"].as_str()), (200, Some("approve")), "{v}");
    }
    // Killed while the notices go out.
    let mut seen: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    while seen.len() < 200 {
        let m = sink
            .next(Duration::from_secs(20))
            .expect("notices going out");
        *seen
            .entry(m["message_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    // What the SMTP server had taken before the kill was complete.
    while let Some(m) = sink.next(Duration::from_millis(500)) {
        *seen
            .entry(m["message_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let before = seen.len();
    assert!(
        before < 1000,
        "the kill came too late to test anything ({before} sent)"
    );
    drop(server);
    let (child, _) = common::serve(dir.path(), &cfg);
    let _server = common::Running(child);
    while seen.len() < 1000 {
        let m = sink
            .next(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("only {} of 1,000 arrived", seen.len()));
        *seen
            .entry(m["message_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    // Nothing more comes.
    while let Some(m) = sink.next(Duration::from_secs(2)) {
        *seen
            .entry(m["message_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let twice = seen.values().filter(|&&n| n > 1).count();
    eprintln!(
        "SIGKILL with {} of 1,000 pending: all 1,000 arrived, {twice} twice",
        1000 - before
    );
    assert_eq!(seen.len(), 1000);
    assert!(seen.values().all(|&n| n <= 2));
    assert!(twice <= 8, "at most what was in flight: {twice}");
}
