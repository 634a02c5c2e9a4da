//! Step-up authentication end to end, against a real SMTP server (aiosmtpd): a new device
//! is challenged with a code by email (delivered within a second, 6 digits, single use,
//! 5 wrong entries at most, resends limited), a right code trusts the device and gives a
//! single-use authentication value bound to card, amount and merchant; the trusted device
//! is then frictionless until it is revoked; a failed challenge alerts the cardholder; an
//! authenticator app (TOTP) is enrolled, confirmed and used. The challenge page runs in
//! headless Chromium in Japanese and English, with screenshots.

mod common;

use cardguard_server::client::{Client, Method};
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

const KEY: &str = "stepup-test-key-0123456789abcdef";
const PAN: &str = "4123456789012349";
const PUBLIC: &str = "https://cards.example";

fn config(port: u16) -> String {
    format!(
        r#"[[auth.api_keys]]
key = "{KEY}"
scopes = ["admin", "authorize", "authenticate"]
[engine]
max_clock_skew_secs = 0
[notify]
issuer_name = "Example Card"
[notify.smtp]
host = "127.0.0.1"
port = {port}
from = "Example Card <alerts@cards.example>"
tls = "none"
[web]
public_url = "{PUBLIC}/"
"#
    )
}

async fn enroll(c: &mut Client, pan: &str, language: &str, email: bool) -> String {
    let mut contact = json!({"language": language});
    if email {
        contact["email"] = json!("hanako@example.jp");
    }
    let card = json!({"number": pan, "expiry": "2029-12", "cardholder_id": "ch-1", "product": "gold",
        "status": "active", "service_code": "101", "csc": {"method": "stored", "value": "123"},
        "contact": contact,
        // No usage notices: the sink sees codes and alerts only.
        "notifications": {"channels": if email { json!(["email"]) } else { json!([]) },
                          "usage_threshold": {"value": 10_000_000, "currency": "JPY"}},
        "home": {"country": "JP", "city": "Tokyo", "lat": 35.68, "lon": 139.76}});
    let (s, v) = c.post("/v1/cards", &card).await.unwrap();
    assert_eq!(s, 201, "{v}");
    v["card_token"].as_str().unwrap().to_owned()
}

fn authentication(id: &str, pan: &str, yen: u64) -> Value {
    json!({"id": id, "card": {"number": pan, "expiry": "2029-12"},
        "amount": {"value": yen, "currency": "JPY"},
        "merchant": {"id": "m-shop", "name": "EXAMPLE SHOP", "mcc": "5732", "country": "JP",
                     "url": "https://shop.example"},
        "channel": "browser",
        "browser": {"user_agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36",
                    "ip": "203.0.113.7", "accept_language": "ja-JP"}})
}

async fn authenticate(c: &mut Client, body: &Value, device: Option<&str>) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = device.map(|d| ("x-device-token", d)).into_iter().collect();
    let (s, b) = c
        .request_with(
            Method::POST,
            "/v1/authentications",
            &headers,
            Some(("application/json", serde_json::to_vec(body).unwrap())),
        )
        .await
        .unwrap();
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn authorization(id: &str, yen: u64, value: Option<&str>) -> Value {
    let mut a = json!({"id": id, "timestamp": "2026-12-01T10:00:00+09:00",
     "card": {"number": PAN, "expiry": "2029-12"},
     "amount": {"value": yen, "currency": "JPY"},
     "merchant": {"id": "m-shop", "terminal_id": "web", "name": "EXAMPLE SHOP", "mcc": "5732",
                  "country": "JP", "city": "Tokyo"},
     "channel": "ecommerce", "type": "purchase"});
    if let Some(v) = value {
        a["authentication"] = json!({"value": v});
    }
    a
}

/// The 6-digit code in a message's body.
fn code_in(msg: &Value) -> String {
    msg["body"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .find(|w| w.len() == 6 && w.bytes().all(|b| b.is_ascii_digit()))
        .expect("a code")
        .to_owned()
}

async fn enter(c: &mut Client, id: &str, code: &str) -> (u16, Value) {
    c.post(
        &format!("/v1/authentications/{id}/challenge"),
        &json!({"code": code}),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_new_device_is_challenged_then_trusted_and_the_value_passes_the_step_up_rule_once() {
    let Some(sink) = common::Sink::start(&[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = common::serve(dir.path(), &config(sink.port));
    let _server = common::Running(child);
    let mut c = Client::connect(addr, KEY).await.unwrap();
    let token = enroll(&mut c, PAN, "en", true).await;
    // A ruleset whose step-up rule challenges every unauthenticated online purchase.
    let (s, v) = c
        .send_json(
            Method::PUT,
            "/v1/rules",
            Some((
                "application/toml",
                br#"[[rules]]
id = "step_up"
description = "online purchases need step-up authentication"
rule = "challenge if :channel: = 'ecommerce' and not :authenticated:"
"#
                .to_vec(),
            )),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");

    // A new device: challenged, by email (the card's only factor).
    let t0 = Instant::now();
    let (s, a) = authenticate(&mut c, &authentication("3ds-1", PAN, 12800), None).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["trans_status"], "C", "{a}");
    assert_eq!(a["factor"], "email");
    assert!(
        a["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["code"] == "new_device"),
        "{a}"
    );
    let url = a["challenge_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{PUBLIC}/challenge?t=ch_")),
        "{url}"
    );
    let mail = sink
        .next(Duration::from_secs(5))
        .expect("the code by email");
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "code delivered in {took:?}");
    assert_eq!(mail["to"], "hanako@example.jp");
    let body = mail["body"].as_str().unwrap();
    assert!(
        body.contains("EXAMPLE SHOP") && body.contains("¥12,800"),
        "{body}"
    );
    assert!(!body.contains(PAN) && body.contains("ending 2349"));
    common::assert_clean(&mail);
    let code = code_in(&mail);
    // The same request again: the first answer, no second code.
    let (_, again) = authenticate(&mut c, &authentication("3ds-1", PAN, 12800), None).await;
    assert_eq!(again["challenge_url"], a["challenge_url"]);
    assert!(
        sink.next(Duration::from_millis(300)).is_none(),
        "no second code"
    );
    // The same id for another amount is a conflict.
    let (s, _) = authenticate(&mut c, &authentication("3ds-1", PAN, 99999), None).await;
    assert_eq!(s, 409);
    // A resend right away is too soon.
    let (s, r) = c
        .post("/v1/authentications/3ds-1/resend", &json!({}))
        .await
        .unwrap();
    assert_eq!(s, 409, "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("seconds"),
        "{r}"
    );

    // A wrong code counts; the right one authenticates.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (s, w) = enter(&mut c, "3ds-1", wrong).await;
    assert_eq!(s, 200, "{w}");
    assert_eq!(
        (w["trans_status"].as_str(), w["error"].as_str()),
        (Some("C"), Some("wrong_code"))
    );
    assert_eq!(w["attempts_left"], 4);
    let (s, y) = enter(&mut c, "3ds-1", &code).await;
    assert_eq!(s, 200, "{y}");
    assert_eq!(y["trans_status"], "Y", "{y}");
    let device = y["device_token"].as_str().unwrap().to_owned();
    let value = y["authentication_value"].as_str().unwrap().to_owned();
    assert!(y.get("challenge_url").is_none());
    // Single use: the code again is refused (the challenge has ended).
    assert_eq!(enter(&mut c, "3ds-1", &code).await.0, 409);

    // The authorization presenting the value passes the step-up rule, once.
    let (_, plain) = c
        .post("/v1/authorizations", &authorization("au-0", 12800, None))
        .await
        .unwrap();
    assert_eq!(plain["decision"], "challenge", "{plain}");
    let (_, ok) = c
        .post(
            "/v1/authorizations",
            &authorization("au-1", 12800, Some(&value)),
        )
        .await
        .unwrap();
    assert_eq!(ok["decision"], "approve", "{ok}");
    let (_, reused) = c
        .post(
            "/v1/authorizations",
            &authorization("au-2", 12800, Some(&value)),
        )
        .await
        .unwrap();
    assert_eq!(reused["decision"], "challenge", "reused: {reused}");
    // A retry of the approved request gets its first answer.
    let (_, retry) = c
        .post(
            "/v1/authorizations",
            &authorization("au-1", 12800, Some(&value)),
        )
        .await
        .unwrap();
    assert_eq!(retry["authorization_id"], ok["authorization_id"]);

    // The trusted device at low risk: frictionless, with a value bound to its amount.
    let (_, f) = authenticate(&mut c, &authentication("3ds-2", PAN, 5000), Some(&device)).await;
    assert_eq!(f["trans_status"], "Y", "{f}");
    assert!(
        f.get("device_token").is_none(),
        "the device keeps its token"
    );
    let v2 = f["authentication_value"].as_str().unwrap();
    let (_, changed) = c
        .post("/v1/authorizations", &authorization("au-3", 6000, Some(v2)))
        .await
        .unwrap();
    assert_eq!(
        changed["decision"], "challenge",
        "another amount: {changed}"
    );
    // Another device, or a forged token, is challenged again.
    // The token with its last hex digit changed.
    let last = if device.ends_with('0') { "1" } else { "0" };
    let forged = format!("{}{last}", &device[..device.len() - 1]);
    let (_, other) = authenticate(&mut c, &authentication("3ds-3", PAN, 5000), Some(&forged)).await;
    assert_eq!(other["trans_status"], "C");
    assert!(
        other["reasons"]
            .to_string()
            .contains("device_token_invalid")
    );
    sink.next(Duration::from_secs(5)).expect("its code");

    // The issuer lists and revokes the device; its token no longer passes.
    let (s, list) = c.get(&format!("/v1/cards/{token}/devices")).await.unwrap();
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["label"], "Chrome on Linux");
    let id = list[0]["id"].as_str().unwrap();
    let (s, _) = c
        .request(
            Method::DELETE,
            &format!("/v1/cards/{token}/devices/{id}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, 204);
    let (_, revoked) =
        authenticate(&mut c, &authentication("3ds-4", PAN, 5000), Some(&device)).await;
    assert_eq!(revoked["trans_status"], "C");
    assert!(revoked["reasons"].to_string().contains("device_revoked"));
    sink.next(Duration::from_secs(5)).expect("its code");

    // Five wrong codes end the challenge with N, and the cardholder is alerted.
    for i in 0..5 {
        let (_, w) = enter(&mut c, "3ds-4", "999999").await;
        let want = if i < 4 { "C" } else { "N" };
        assert_eq!(w["trans_status"], want, "entry {i}: {w}");
    }
    let alert = sink
        .next(Duration::from_secs(5))
        .expect("the failed step-up alert");
    assert!(
        alert["subject"]
            .as_str()
            .unwrap()
            .contains("was not confirmed"),
        "{alert}"
    );
    assert!(
        alert["body"]
            .as_str()
            .unwrap()
            .contains("too many wrong codes")
    );
    common::assert_clean(&alert);

    // Without credentials, nothing.
    let mut anon = Client::connect(addr, "wrong-key-0123456789abcdef")
        .await
        .unwrap();
    assert_eq!(
        anon.post("/v1/authentications", &authentication("x", PAN, 1))
            .await
            .unwrap()
            .0,
        401
    );
    // An unknown card is not authenticated; a bad body names its field.
    let (_, n) = authenticate(
        &mut c,
        &authentication("3ds-5", "4111111111111111", 5000),
        None,
    )
    .await;
    assert_eq!(n["trans_status"], "N", "{n}");
    let mut bad = authentication("3ds-6", PAN, 5000);
    bad["channel"] = json!("fax");
    let (s, e) = authenticate(&mut c, &bad, None).await;
    assert_eq!(s, 400);
    assert!(e.to_string().contains("channel"), "{e}");
}

#[tokio::test]
async fn an_authenticator_app_is_enrolled_confirmed_and_used() {
    let dir = tempfile::tempdir().unwrap();
    // No mail channel: the card's only factor is its app.
    let cfg = config(1).replace("[notify.smtp]", "[notify.unused]");
    let cfg = cfg.split("[notify.unused]").next().unwrap().to_owned()
        + &format!("[web]\npublic_url = \"{PUBLIC}/\"\n");
    let (child, addr) = common::serve(dir.path(), &cfg);
    let _server = common::Running(child);
    let mut c = Client::connect(addr, KEY).await.unwrap();
    let token = enroll(&mut c, PAN, "en", false).await;
    // No factor yet: cannot be performed.
    let (_, u) = authenticate(&mut c, &authentication("t-1", PAN, 5000), None).await;
    assert_eq!(u["trans_status"], "U", "{u}");
    assert!(u["reasons"].to_string().contains("no_factor"));

    let (s, t) = c
        .post(&format!("/v1/cards/{token}/totp"), &json!({}))
        .await
        .unwrap();
    assert_eq!(s, 201, "{t}");
    assert!(t["uri"].as_str().unwrap().starts_with("otpauth://totp/"));
    let key = cardguard_cardsec::otp::base32_decode(t["secret"].as_str().unwrap()).unwrap();
    let totp = cardguard_cardsec::otp::Totp::default();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    // Unconfirmed, it is not a factor; a wrong code does not confirm it.
    let (s, _) = c
        .post(
            &format!("/v1/cards/{token}/totp/confirm"),
            &json!({"code": "000000"}),
        )
        .await
        .unwrap();
    assert_eq!(s, 400);
    let (s, _) = c
        .post(
            &format!("/v1/cards/{token}/totp/confirm"),
            &json!({"code": totp.code(&key, now() - 30)}),
        )
        .await
        .unwrap();
    assert_eq!(s, 204);

    let (_, ch) = authenticate(&mut c, &authentication("t-2", PAN, 5000), None).await;
    assert_eq!(
        (ch["trans_status"].as_str(), ch["factor"].as_str()),
        (Some("C"), Some("totp")),
        "{ch}"
    );
    // The code of the step the confirmation took is not taken again.
    let (_, w) = enter(&mut c, "t-2", &totp.code(&key, now() - 30)).await;
    assert_eq!(w["error"], "wrong_code", "{w}");
    let (_, y) = enter(&mut c, "t-2", &totp.code(&key, now())).await;
    assert_eq!(y["trans_status"], "Y", "{y}");
    // Removed, the card has no factor again.
    let (s, _) = c
        .request(Method::DELETE, &format!("/v1/cards/{token}/totp"), None)
        .await
        .unwrap();
    assert_eq!(s, 204);
    let (_, u) = authenticate(&mut c, &authentication("t-3", PAN, 5000), None).await;
    assert_eq!(u["trans_status"], "U", "{u}");
}

#[tokio::test]
async fn the_challenge_page_in_a_real_browser_in_both_languages() {
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
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for (lang, pan) in [("ja", PAN), ("en", "4000000000000002")] {
        enroll(&mut c, pan, lang, true).await;
        let (_, a) = authenticate(
            &mut c,
            &authentication(&format!("b-{lang}"), pan, 12800),
            None,
        )
        .await;
        assert_eq!(a["trans_status"], "C", "{a}");
        let url = a["challenge_url"]
            .as_str()
            .unwrap()
            .replace(PUBLIC, &format!("http://{addr}"));
        let code = code_in(&sink.next(Duration::from_secs(5)).expect("the code"));
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/challenge_page.mjs"
        );
        // In English the cardholder also removes the device from the page's list.
        let remove = if lang == "en" { "remove" } else { "keep" };
        let out = Command::new("node")
            .args([script, &url, &code])
            .arg(&shots)
            .arg(format!("challenge-{lang}"))
            .arg(remove)
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
        assert_eq!(seen["lang"], lang);
        let before = seen["before"].as_str().unwrap();
        let after = seen["after"].as_str().unwrap();
        assert!(
            before.contains("EXAMPLE SHOP") && before.contains("¥12,800"),
            "{before}"
        );
        assert_eq!(seen["status"], "Y", "{seen}");
        if lang == "ja" {
            assert!(
                seen["wrong"].as_str().unwrap().contains("正しくありません"),
                "{seen}"
            );
            assert!(after.contains("本人認証が完了しました"), "{after}");
        } else {
            assert!(
                seen["wrong"].as_str().unwrap().contains("not right"),
                "{seen}"
            );
            assert!(after.contains("You are verified"), "{after}");
        }
        for shot in ["open", "wrong", "done"] {
            assert!(shots.join(format!("challenge-{lang}-{shot}.png")).exists());
        }
        assert_eq!(seen["httpOnly"], true);
        let listed = seen["devices"].as_str().unwrap();
        assert!(
            listed.contains("Chrome")
                && (listed.contains("this device") || listed.contains("この端末")),
            "{listed}"
        );
        // The cookie the page set is the device's token: the next time, frictionless,
        // unless the cardholder removed the device.
        let cookie = seen["cookie"].as_str().expect("the device cookie");
        let (_, f) = authenticate(
            &mut c,
            &authentication(&format!("b-{lang}-2"), pan, 3000),
            Some(cookie),
        )
        .await;
        if lang == "en" {
            assert_eq!(seen["removed"], 0, "the list is gone: {seen}");
            assert_eq!(f["trans_status"], "C", "{f}");
            assert!(f["reasons"].to_string().contains("device_revoked"), "{f}");
            sink.next(Duration::from_secs(5)).expect("its code");
        } else {
            assert_eq!(f["trans_status"], "Y", "{f}");
        }
    }
}

#[tokio::test]
async fn a_passkey_is_created_after_a_challenge_and_used_in_the_next() {
    let Some((playwright, chromium)) = common::browser() else {
        return;
    };
    let Some(sink) = common::Sink::start(&[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // WebAuthn needs a domain: the browser opens the pages at http://localhost:PORT.
    let cfg = config(sink.port)
        + "[stepup]\npasskey_rp_id = \"localhost\"\npasskey_origin = \"http://localhost\"\npasskey_any_port = true\n";
    let (child, addr) = common::serve(dir.path(), &cfg);
    let _server = common::Running(child);
    let mut c = Client::connect(addr, KEY).await.unwrap();
    let token = enroll(&mut c, PAN, "en", true).await;
    let local = format!("http://localhost:{}", addr.port());
    let (_, a) = authenticate(&mut c, &authentication("pk-1", PAN, 12800), None).await;
    assert_eq!(
        (a["trans_status"].as_str(), a["factor"].as_str()),
        (Some("C"), Some("email")),
        "{a}"
    );
    let url = a["challenge_url"].as_str().unwrap().replace(PUBLIC, &local);
    let code = code_in(&sink.next(Duration::from_secs(5)).expect("the code"));
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/browser/passkey_page.mjs"
    );
    let mut node = Command::new("node")
        .args([script, &url, &code])
        .arg(&shots)
        .arg("passkey")
        .env("CARDGUARD_PLAYWRIGHT", &playwright)
        .env("CARDGUARD_CHROMIUM", &chromium)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufRead::lines(std::io::BufReader::new(node.stdout.take().unwrap()));
    let mut next = || -> Value {
        match out.next() {
            Some(Ok(l)) => serde_json::from_str(&l).unwrap(),
            _ => {
                let mut err = String::new();
                std::io::Read::read_to_string(node.stderr.as_mut().unwrap(), &mut err).unwrap();
                panic!("the browser script stopped: {err}");
            }
        }
    };
    let registered = next();
    assert_eq!(registered["credentials"], 1, "{registered}");
    assert!(
        registered["message"]
            .as_str()
            .unwrap()
            .contains("passkey is ready"),
        "{registered}"
    );

    // The card's preferred factor is now its passkey: no code is sent.
    let (_, b) = authenticate(&mut c, &authentication("pk-2", PAN, 8000), None).await;
    assert_eq!(
        (b["trans_status"].as_str(), b["factor"].as_str()),
        (Some("C"), Some("passkey")),
        "{b}"
    );
    assert!(
        sink.next(Duration::from_millis(300)).is_none(),
        "no code for a passkey"
    );
    let url2 = b["challenge_url"].as_str().unwrap().replace(PUBLIC, &local);
    std::io::Write::write_all(node.stdin.as_mut().unwrap(), format!("{url2}\n").as_bytes())
        .unwrap();
    let done = next();
    assert_eq!(done["status"], "Y", "{done}");
    assert!(
        done["before"]
            .as_str()
            .unwrap()
            .contains("Use your passkey"),
        "{done}"
    );
    assert!(done["cookie"].is_string(), "the device is trusted: {done}");
    assert!(node.wait().unwrap().success());
    for shot in ["offer", "created", "challenge", "done"] {
        assert!(shots.join(format!("passkey-{shot}.png")).exists());
    }
    let (_, g) = c.get("/v1/authentications/pk-2").await.unwrap();
    assert_eq!(g["trans_status"], "Y");
    assert!(g["reasons"].to_string().contains("passkey_verified"), "{g}");
    assert!(g["authentication_value"].is_string());
    let _ = token;
}
