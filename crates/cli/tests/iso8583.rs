//! The ISO 8583 front door of the real binary (`serve --iso8583`): a card-present
//! authorization over ISO 8583 in Tokyo, then one over JSON in New York five minutes later, is
//! held (both doors share one engine); the ISO answer carries DE39 and DE38 and echoes the
//! STAN and RRN; a retry gets the same answer and another request under its numbers 94; an
//! echo test is answered; a malformed message whose MTI and STAN can be read gets DE39 30,
//! and an unreadable one closes the connection. A reversal (0400, then its repeat as a 0420)
//! takes an authorization out of the card's velocity once, and survives a restart.

mod common;

use cardguard_core::{Clock, SystemClock, Timestamp};
use cardguard_iso8583::{Message, Spec, decode, encode};
use cardguard_server::client::Client;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};

const KEY: &str = "iso-test-key-0123456789abcdef";
const PAN: &str = "4123456789012349";

/// The server with both doors; its HTTP and ISO 8583 addresses.
fn start(dir: &std::path::Path) -> (common::Running, SocketAddr, SocketAddr) {
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!("[[auth.api_keys]]\nkey = \"{KEY}\"\nscopes = [\"admin\", \"authorize\"]\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cardguard"))
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--iso8583",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&cfg)
        .env("CARDGUARD_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut http, mut iso) = (None, None);
    while http.is_none() || iso.is_none() {
        let line = lines.next().expect("the server exited").unwrap();
        if let Some(a) = line.strip_prefix("cardguard listening on http://") {
            http = Some(a.parse().unwrap());
        }
        if let Some(a) = line.strip_prefix("cardguard iso8583 listening on ") {
            iso = Some(a.parse().unwrap());
        }
    }
    (common::Running(child), http.unwrap(), iso.unwrap())
}

/// Sends one message with its 2-byte length; the answer, or None if the server closed.
fn exchange(tcp: &mut TcpStream, frame: &[u8]) -> Option<Message> {
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    tcp.write_all(&(frame.len() as u16).to_be_bytes()).unwrap();
    tcp.write_all(frame).unwrap();
    let mut len = [0u8; 2];
    tcp.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    tcp.read_exact(&mut body).ok()?;
    Some(decode(&Spec::default_ascii(), &body).unwrap())
}

use cardguard_iso::map::mmddhhmmss;

/// Enrolls the test card, at home in Tokyo.
async fn enroll_card(c: &mut Client) {
    let card = json!({"number": PAN, "expiry": "2029-12", "cardholder_id": "ch-1", "product": "gold",
        "status": "active", "service_code": "101", "csc": {"method": "stored", "value": "123"},
        "contact": {"language": "ja"}, "home": {"country": "JP", "city": "Tokyo", "lat": 35.68, "lon": 139.76}});
    let (s, v) = c.post("/v1/cards", &card).await.unwrap();
    assert_eq!(s, 201, "{v}");
}

fn tokyo(at: Timestamp, stan: &str) -> Message {
    let mut m = Message::new("0100");
    m.set(2, PAN)
        .set(3, "000000")
        .set(4, "000000012800")
        .set(7, mmddhhmmss(at, 0))
        .set(11, stan)
        .set(12, mmddhhmmss(at, 540)[4..].to_owned())
        .set(13, mmddhhmmss(at, 540)[..4].to_owned())
        .set(14, "2912")
        .set(18, "5732")
        .set(22, "051")
        .set(37, format!("633510{stan}"))
        .set(41, "TERM0007")
        .set(42, "MERCHANT0000042")
        .set(
            43,
            format!("{:<25}{:<13}JP", "BIC CAMERA YURAKUCHO", "TOKYO"),
        )
        .set(49, "392");
    m
}

#[tokio::test]
async fn iso_then_json_share_one_engine_and_bad_messages_are_answered_or_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, http, iso) = start(dir.path());
    let mut c = Client::connect(http, KEY).await.unwrap();
    enroll_card(&mut c).await;

    let spec = Spec::default_ascii();
    let now = SystemClock.now();
    // Four minutes ago in Tokyo and a minute ahead in New York: five minutes apart, both
    // within the server's clock-skew window.
    let four_ago = Timestamp(now.0 - 4 * 60_000);
    let in_a_minute = Timestamp(now.0 + 60_000);
    let mut tcp = TcpStream::connect(iso).unwrap();
    let req = tokyo(four_ago, "000042");
    let answer = exchange(&mut tcp, &encode(&spec, &req).unwrap()).unwrap();
    assert_eq!(answer.mti, "0110");
    assert_eq!(answer.text(39), Some("00"), "{answer:?}");
    assert_eq!(answer.text(11), Some("000042"));
    assert_eq!(answer.text(37), req.text(37));
    let approval = answer.text(38).unwrap().to_owned();
    assert_eq!(approval.len(), 6);
    // The network retries: the same answer.
    let again = exchange(&mut tcp, &encode(&spec, &req).unwrap()).unwrap();
    assert_eq!(again, answer);
    // The same terminal, STAN, time and RRN for another amount: a duplicate transmission.
    let mut other = req.clone();
    other.set(4, "000000099999");
    let dup = exchange(&mut tcp, &encode(&spec, &other).unwrap()).unwrap();
    assert_eq!((dup.text(39), dup.text(11)), (Some("94"), Some("000042")));

    // Five minutes later the card is read in New York, over JSON: held.
    let ny = json!({"id": "json-ny-1", "timestamp": in_a_minute.to_rfc3339(),
        "card": {"number": PAN, "expiry": "2029-12"},
        "amount": {"value": 4500, "currency": "USD"},
        "merchant": {"id": "m-ny", "terminal_id": "t-1", "name": "SHOP", "mcc": "5411",
                     "country": "US", "city": "New York", "lat": 40.71, "lon": -74.01},
        "channel": "card_present", "type": "purchase"});
    let (s, v) = c.post("/v1/authorizations", &ny).await.unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["decision"].as_str(), v["response_code"].as_str()),
        (Some("hold"), Some("01")),
        "{v}"
    );
    assert_eq!(v["reasons"][0]["code"], "IMPOSSIBLE_TRAVEL", "{v}");

    // An echo test.
    let mut echo = Message::new("0800");
    echo.set(7, mmddhhmmss(now, 0))
        .set(11, "000050")
        .set(70, "301");
    let a = exchange(&mut tcp, &encode(&spec, &echo).unwrap()).unwrap();
    assert_eq!(
        (a.mti.as_str(), a.text(39), a.text(70)),
        ("0810", Some("00"), Some("301"))
    );

    // A malformed amount: its MTI and STAN are readable, so a format error.
    let mut bad = tokyo(now, "000051");
    bad.set(4, "00000001280A");
    let a = exchange(&mut tcp, &encode(&spec, &bad).unwrap()).unwrap();
    assert_eq!(
        (a.mti.as_str(), a.text(39), a.text(11)),
        ("0110", Some("30"), Some("000051"))
    );
    // A message cut short: the MTI and STAN are read before the cut.
    let whole = encode(&spec, &tokyo(now, "000052")).unwrap();
    let a = exchange(&mut tcp, &whole[..whole.len() - 5]).unwrap();
    assert_eq!((a.text(39), a.text(11)), (Some("30"), Some("000052")));
    // Not a message at all: the connection is closed, and others are untouched.
    assert!(exchange(&mut tcp, b"XXXX").is_none());
    let mut other = TcpStream::connect(iso).unwrap();
    let a = exchange(&mut other, &encode(&spec, &echo).unwrap()).unwrap();
    assert_eq!(a.text(39), Some("00"));

    let (_, stats) = c.get("/v1/stats").await.unwrap();
    assert_eq!(stats["engine"]["authorizations"], 2, "{stats}");
}

/// The independent side: pyiso8583 encodes the requests and decodes the answers, over a real
/// connection with the 2-byte prefix, several requests in flight at once.
#[tokio::test]
async fn pyiso8583_talks_to_the_listener() {
    let python = std::env::var("CARDGUARD_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import iso8583"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var_os("CARDGUARD_REQUIRE_ORACLES").is_none(),
            "pyiso8583 oracle unavailable: {probe:?}"
        );
        eprintln!("pyiso8583 oracle unavailable (pip install pyiso8583==4.0.1): not compared");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_server, http, iso) = start(dir.path());
    let mut c = Client::connect(http, KEY).await.unwrap();
    enroll_card(&mut c).await;
    let now = SystemClock.now();
    let mut docs = Vec::new();
    for i in 0..20u32 {
        let m = tokyo(
            Timestamp(now.0 - 60_000 + i64::from(i) * 1000),
            &format!("{:06}", 100 + i),
        );
        let mut doc = serde_json::Map::new();
        doc.insert("t".into(), json!(m.mti));
        for (n, v) in &m.fields {
            doc.insert(n.to_string(), json!(String::from_utf8(v.clone()).unwrap()));
        }
        docs.push(serde_json::Value::Object(doc));
    }
    docs.push(json!({"t": "0800", "7": mmddhhmmss(now, 0), "11": "000200", "70": "301"}));
    // An unknown processing code: a format error, still matched by its STAN.
    let mut odd = docs[0].clone();
    odd["3"] = json!("990000");
    odd["11"] = json!("000201");
    docs.push(odd);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/oracle/pyiso8583_client.py"
    );
    let mut child = Command::new(&python)
        .args([script, &iso.ip().to_string(), &iso.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for d in &docs {
            writeln!(stdin, "{d}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let answers: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), docs.len());
    // Matched by STAN, whatever order they came in.
    for d in &docs {
        let a = answers
            .iter()
            .find(|a| a["11"] == d["11"])
            .unwrap_or_else(|| panic!("no answer for STAN {}", d["11"]));
        let (mti, code) = (a["t"].as_str().unwrap(), a["39"].as_str().unwrap());
        match (d["t"].as_str(), d["3"].as_str()) {
            (Some("0800"), _) => assert_eq!((mti, code), ("0810", "00"), "{a}"),
            (_, Some("990000")) => assert_eq!((mti, code), ("0110", "30"), "{a}"),
            _ => {
                // Twenty purchases in twenty seconds: approved, then held for velocity.
                assert!(mti == "0110" && (code == "00" || code == "01"), "{a}");
                assert_eq!(
                    a["38"].as_str().map(str::len),
                    (code == "00").then_some(6),
                    "{a}"
                );
                assert_eq!(a["37"], d["37"]);
            }
        }
    }
}

/// A 0400 that names `original` by DE90, with its own STAN and transmission time.
fn reversal_of(original: &Message, mti: &str, stan: &str, now: Timestamp) -> Message {
    let mut r = original.clone();
    r.mti = mti.to_owned();
    let de90 = format!(
        "0100{}{}{:022}",
        original.text(11).unwrap(),
        original.text(7).unwrap(),
        0
    );
    r.set(7, mmddhhmmss(now, 0)).set(11, stan).set(90, de90);
    r.fields.remove(&52);
    r
}

#[tokio::test]
async fn a_reversal_takes_an_authorization_out_of_the_cards_velocity_once() {
    let dir = tempfile::tempdir().unwrap();
    let (server, http, iso) = start(dir.path());
    let mut c = Client::connect(http, KEY).await.unwrap();
    enroll_card(&mut c).await;
    let spec = Spec::default_ascii();
    let now = SystemClock.now();
    let mut tcp = TcpStream::connect(iso).unwrap();
    let mut sent = Vec::new();
    for (i, ago) in [100i64, 90, 80].iter().enumerate() {
        let m = tokyo(Timestamp(now.0 - ago * 1000), &format!("{:06}", 300 + i));
        let a = exchange(&mut tcp, &encode(&spec, &m).unwrap()).unwrap();
        assert_eq!(a.text(39), Some("00"), "{a:?}");
        sent.push(m);
    }
    let rev = reversal_of(&sent[1], "0400", "000400", now);
    let a = exchange(&mut tcp, &encode(&spec, &rev).unwrap()).unwrap();
    assert_eq!(
        (a.mti.as_str(), a.text(39), a.text(11), a.text(90)),
        ("0410", Some("00"), Some("000400"), rev.text(90)),
        "{a:?}"
    );
    // Two earlier authorizations in five minutes, not three: no velocity points.
    let probe = |id: &str| {
        json!({"id": id, "timestamp": SystemClock.now().to_rfc3339(),
            "card": {"number": PAN, "expiry": "2029-12"},
            "amount": {"value": 12800, "currency": "JPY"},
            "merchant": {"id": "MERCHANT0000042", "terminal_id": "TERM0007", "name": "BIC CAMERA",
                         "mcc": "5732", "country": "JP", "city": "Tokyo", "lat": 35.68, "lon": 139.76},
            "channel": "card_present", "type": "purchase"})
    };
    let (s, first) = c.post("/v1/authorizations", &probe("p1")).await.unwrap();
    assert_eq!(
        (s, first["decision"].as_str()),
        (200, Some("approve")),
        "{first}"
    );
    // The network repeats the reversal as an advice: answered, nothing more taken back.
    let advice = reversal_of(&sent[1], "0420", "000401", now);
    let a = exchange(&mut tcp, &encode(&spec, &advice).unwrap()).unwrap();
    assert_eq!((a.mti.as_str(), a.text(39)), ("0430", Some("00")), "{a:?}");
    // Now three earlier ones (two over ISO 8583, the first probe): 20 velocity points.
    let (_, second) = c.post("/v1/authorizations", &probe("p2")).await.unwrap();
    // (Without the reversal the first probe would have had them; at night by the probe's
    // clock the velocity brings 5 more.)
    assert_eq!(first["risk_score"], 0, "{first}");
    assert!(
        second["risk_score"].as_u64().unwrap() >= 20,
        "{first} {second}"
    );
    // A reversal of nothing, and one for another amount than the original's: 25.
    let mut nothing = reversal_of(&sent[0], "0400", "000402", now);
    nothing.set(
        90,
        format!("0100000999{}{:022}", sent[0].text(7).unwrap(), 0),
    );
    let mut other_amount = reversal_of(&sent[0], "0400", "000403", now);
    other_amount.set(4, "000000000100");
    for m in [nothing, other_amount] {
        let a = exchange(&mut tcp, &encode(&spec, &m).unwrap()).unwrap();
        assert_eq!((a.text(39), a.text(11)), (Some("25"), m.text(11)), "{a:?}");
    }
    // A partial reversal (DE95 keeps an amount) is not taken.
    let mut partial = reversal_of(&sent[0], "0400", "000404", now);
    partial.set(95, format!("{:012}{:030}", 5000, 0));
    let a = exchange(&mut tcp, &encode(&spec, &partial).unwrap()).unwrap();
    assert_eq!(a.text(39), Some("12"), "{a:?}");
    let (_, metrics) = c.get_raw("/metrics").await.unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(metrics.contains("cardguard_reversals_total 1"), "{metrics}");

    // Killed and started again: the log replays the reversal, and its repeat is still 00.
    drop(server);
    let (_server, _, iso) = start(dir.path());
    let mut tcp = TcpStream::connect(iso).unwrap();
    let a = exchange(&mut tcp, &encode(&spec, &rev).unwrap()).unwrap();
    assert_eq!(a.text(39), Some("00"), "{a:?}");
    let out = common::cardguard()
        .args(["log", "tail", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let reversals: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"kind\":\"reversal\""))
        .collect();
    assert_eq!(reversals.len(), 1, "{text}");
    assert!(
        reversals[0].contains("iso8583 0400") && !reversals[0].contains(PAN),
        "{}",
        reversals[0]
    );
}
