//! The HTTP API end to end: a server on port 0 with its own data directory, driven over
//! HTTP as an acquirer and an administrator would.

mod common;

use cardguard_cardsec::{TdesKey, cvv, pin, pinblock};
use cardguard_core::SystemClock;
use cardguard_server::client::Client;
use common::{ACQUIRER, ADMIN, PAN, Server, TEST_KEY};
use serde_json::{Value, json};

/// A change that makes a valid request body invalid.
type Mutation = Box<dyn Fn(&mut Value)>;

fn cvv_of(pan: &str, yymm: &str) -> String {
    cvv::generate(&TdesKey::from_hex(TEST_KEY).unwrap(), pan, yymm, "101", 3).unwrap()
}

fn enrollment(pan: &str) -> Value {
    let pvv = pin::visa_pvv(&TdesKey::from_hex(TEST_KEY).unwrap(), 1, "4524", pan).unwrap();
    json!({"number": pan, "expiry": "2029-12", "cardholder_id": "ch-1001",
     "product": "gold", "status": "active", "service_code": "101",
     "csc": {"method": "cvv-3des", "key_id": "cvk-1"},
     "pin": {"method": "visa-pvv", "key_id": "pvk-1", "pvki": 1, "pvv": pvv},
     "contact": {"email": "hanako@example.jp", "phone": "+819012345678", "language": "ja"},
     "notifications": {"usage_threshold": {"value": 5000, "currency": "JPY"}, "channels": ["email"]},
     "home": {"country": "JP", "city": "Tokyo", "lat": 35.68, "lon": 139.76}})
}

fn authorization(id: &str, at: &str, city: (&str, &str, f64, f64)) -> Value {
    json!({"id": id, "timestamp": at,
     "card": {"number": PAN, "expiry": "2029-12", "csc": cvv_of(PAN, "2912")},
     "amount": {"value": 12800, "currency": "JPY"},
     "merchant": {"id": "m-42", "terminal_id": "t-7", "name": "BIC CAMERA", "mcc": "5732",
                  "country": city.0, "city": city.1, "lat": city.2, "lon": city.3},
     "channel": "card_present", "type": "purchase",
     "device": {"id": "d-9", "ip": "203.0.113.7", "user_agent": "test"}})
}

const NY: (&str, &str, f64, f64) = ("US", "New York", 40.71, -74.01);
const LA: (&str, &str, f64, f64) = ("US", "Los Angeles", 34.05, -118.24);

async fn authorizations_count(admin: &mut Client) -> u64 {
    let (s, v) = admin.get("/v1/stats").await.unwrap();
    assert_eq!(s, 200);
    v["engine"]["authorizations"].as_u64().unwrap()
}

#[tokio::test]
async fn contract_example_enroll_then_authorize() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), "").await;
    let mut admin = srv.client(ADMIN).await;
    let (s, v) = admin.post("/v1/cards", &enrollment(PAN)).await.unwrap();
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["last4"], "2349");
    let token = v["card_token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32);
    // Enrolling again updates: 200.
    let (s, _) = admin.post("/v1/cards", &enrollment(PAN)).await.unwrap();
    assert_eq!(s, 200);

    let mut acq = srv.client(ACQUIRER).await;
    let (s, v) = acq
        .post(
            "/v1/authorizations",
            &authorization("acq-000001", "2026-11-21T10:00:00-05:00", NY),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["decision"], "approve");
    assert_eq!(v["response_code"], "00");
    assert_eq!(v["card_token"], token.as_str());
    assert!(v["risk_score"].as_u64().unwrap() <= 100);
    assert!(v["reasons"].as_array().unwrap().is_empty());
    assert!(v["authorization_id"].as_str().unwrap().starts_with("au_"));
    // Nothing in the answer carries the card number.
    assert!(!v.to_string().contains(PAN));

    // New York at 10:00, Los Angeles at 10:05: held at once.
    let (s, v) = acq
        .post(
            "/v1/authorizations",
            &authorization("acq-000002", "2026-11-21T10:05:00-05:00", LA),
        )
        .await
        .unwrap();
    assert_eq!(s, 200);
    assert_eq!(
        (v["decision"].as_str(), v["response_code"].as_str()),
        (Some("hold"), Some("01")),
        "{v}"
    );
    let r = &v["reasons"][0];
    assert_eq!(r["code"], "IMPOSSIBLE_TRAVEL");
    assert!(r["detail"].as_str().unwrap().contains("5 minutes"), "{r}");

    // A wrong CVV2 answers N7.
    let mut bad = authorization("acq-000003", "2026-11-21T18:00:00-05:00", NY);
    let right = bad["card"]["csc"].as_str().unwrap().to_owned();
    let wrong = format!("{:03}", (right.parse::<u32>().unwrap() + 1) % 1000);
    bad["card"]["csc"] = json!(wrong);
    let (_, v) = acq.post("/v1/authorizations", &bad).await.unwrap();
    assert_eq!(v["response_code"], "N7", "{v}");

    // The phishing analyzer takes a raw message.
    let phish = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../phish/tests/fixtures/ebay-ip-form-phish.eml"
    ))
    .unwrap();
    let (s, v) = admin
        .post_raw("/v1/mail/scan", phish.clone())
        .await
        .unwrap();
    assert_eq!(
        (s, v["verdict"].as_str(), v["brand"].as_str()),
        (200, Some("phishing"), Some("eBay")),
        "{v}"
    );
    let (s, _) = acq.post_raw("/v1/mail/scan", phish).await.unwrap();
    assert_eq!(s, 403);

    // The metrics count what happened, and the refusals too.
    let (_, _) = acq
        .post_raw("/v1/authorizations", b"{}".to_vec())
        .await
        .unwrap();
    let (s, text) = admin.get_raw("/metrics").await.unwrap();
    assert_eq!(s, 200);
    let text = String::from_utf8(text.to_vec()).unwrap();
    for line in [
        "cardguard_authorizations_total{decision=\"approve\"} 1",
        "cardguard_authorizations_total{decision=\"hold\"} 1",
        "cardguard_response_codes_total{code=\"N7\"} 1",
        "cardguard_authorization_seconds_count 3",
        "# TYPE cardguard_engine_lock_wait_seconds histogram",
        "cardguard_refused_requests_total{class=\"4xx\"} 2",
        "cardguard_state{part=\"cards\"} 1",
        "cardguard_state{part=\"cards_enrolled\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from\n{text}"
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn mail_scan_verifies_the_sender_against_the_configured_zone() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone.txt");
    std::fs::write(
        &zone,
        "paypal.com TXT \"v=spf1 ip4:173.0.80.0/20 -all\"\n\
         _dmarc.paypal.com TXT \"v=DMARC1; p=reject\"\n",
    )
    .unwrap();
    let extra = format!("[mail]\ndns_zone = {:?}\n", zone.display().to_string());
    let srv = Server::start(dir.path(), &extra).await;
    let mut admin = srv.client(ADMIN).await;
    // A receipt that names nothing suspicious: only its sender authentication gives it away.
    let spoof = "Received: from mx.forger.example (mx.forger.example [198.51.100.77])\r\n\
                 \tby mx.issuer.example; Mon, 2 Nov 2026 10:00:00 +0900\r\n\
                 Return-Path: <service@paypal.com>\r\n\
                 From: PayPal <service@paypal.com>\r\n\
                 Subject: Receipt\r\n\r\nThanks for your payment.\r\n";
    let (s, v) = admin
        .post_raw("/v1/mail/scan", spoof.as_bytes().to_vec())
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    let codes: Vec<&str> = v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["code"].as_str())
        .collect();
    assert!(
        codes.contains(&"SPF_FAIL") && codes.contains(&"DMARC_FAIL"),
        "{v}"
    );
    assert_eq!(v["verdict"], "phishing", "{v}");
    srv.stop().await;
}

#[tokio::test]
async fn the_brands_file_reloads_live_and_a_bad_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let brands = dir.path().join("brands.toml");
    std::fs::write(&brands, "").unwrap();
    let extra = format!("[mail]\nbrands_file = {:?}\n", brands.display().to_string());
    let srv = Server::start(dir.path(), &extra).await;
    let mut admin = srv.client(ADMIN).await;
    let mut acq = srv.client(ACQUIRER).await;
    let mail = "From: Kumo Card <info@kumo-card-notice.top>\r\nSubject: Kumo Card statement\r\n\r\n\
                Your Kumo Card statement: http://kumo-card-notice.top/login\r\n";
    let brand_of = |v: &Value| v["brand"].as_str().map(str::to_owned);
    let (_, v) = admin
        .post_raw("/v1/mail/scan", mail.as_bytes().to_vec())
        .await
        .unwrap();
    assert_eq!(brand_of(&v), None, "{v}");
    let (_, before) = admin
        .post_raw("/v1/mail/brands/reload", Vec::new())
        .await
        .unwrap();
    let n0 = before["brands"].as_u64().unwrap();

    std::fs::write(
        &brands,
        "[kumo_card]\nnames = [\"Kumo Card\"]\nmail_domains = [\"kumocard.example\"]\n\
         web_domains = [\"kumocard.example\"]\n",
    )
    .unwrap();
    let (s, v) = acq
        .post_raw("/v1/mail/brands/reload", Vec::new())
        .await
        .unwrap();
    assert_eq!(s, 403, "{v}");
    let (s, v) = admin
        .post_raw("/v1/mail/brands/reload", Vec::new())
        .await
        .unwrap();
    assert_eq!((s, v["brands"].as_u64()), (200, Some(n0 + 1)), "{v}");
    let (_, v) = admin
        .post_raw("/v1/mail/scan", mail.as_bytes().to_vec())
        .await
        .unwrap();
    assert_eq!(brand_of(&v).as_deref(), Some("Kumo Card"), "{v}");
    assert_ne!(v["verdict"], "clean", "{v}");

    std::fs::write(&brands, "[broken\n").unwrap();
    let (s, v) = admin
        .post_raw("/v1/mail/brands/reload", Vec::new())
        .await
        .unwrap();
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_brands")),
        "{v}"
    );
    let (_, v) = admin
        .post_raw("/v1/mail/scan", mail.as_bytes().to_vec())
        .await
        .unwrap();
    assert_eq!(
        brand_of(&v).as_deref(),
        Some("Kumo Card"),
        "the old registry stays: {v}"
    );
    srv.stop().await;
}

/// A one-split model on the amount: above `at` JPY the fraud margin is +5, below -5.
fn amount_model(at: f32) -> String {
    use cardguard_engine::model_file::{Comparison, Model, StumpLeaf, Tree};
    let leaf = |value, cover| StumpLeaf { value, cover };
    let tree = Tree::stump(0, at, leaf(-5.0, 90.0), leaf(5.0, 10.0));
    Model::new(
        vec!["amount".into()],
        Comparison::Le,
        0.0,
        vec![tree],
        json!({}),
        "gbdt-amount",
    )
    .unwrap()
    .to_json()
    .unwrap()
}

#[tokio::test]
async fn a_model_file_scores_and_a_new_one_swaps_in_live() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.json");
    std::fs::write(&model, amount_model(100_000.0)).unwrap();
    let extra = format!("[engine]\nmodel_file = {:?}\n", model.display().to_string());
    let srv = Server::start(dir.path(), &extra).await;
    let mut admin = srv.client(ADMIN).await;
    let (s, _) = admin.post("/v1/cards", &enrollment(PAN)).await.unwrap();
    assert_eq!(s, 201);
    let mut acq = srv.client(ACQUIRER).await;
    let (_, v) = acq
        .post(
            "/v1/authorizations",
            &authorization("m-1", "2026-11-21T10:00:00-05:00", NY),
        )
        .await
        .unwrap();
    let first = v["model"].as_str().unwrap().to_owned();
    assert!(first.starts_with("gbdt-amount-"), "{v}");
    assert_eq!(
        (v["decision"].as_str(), v["risk_score"].as_u64()),
        (Some("approve"), Some(1)),
        "{v}"
    );

    // The same amount is now above the split: the new model declines it, with its reasons.
    std::fs::write(&model, amount_model(10_000.0)).unwrap();
    let (s, r) = admin
        .post_raw("/v1/model/reload", Vec::new())
        .await
        .unwrap();
    assert_eq!(s, 200, "{r}");
    let second = r["model"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let (_, v) = acq
        .post(
            "/v1/authorizations",
            &authorization("m-2", "2026-11-21T10:30:00-05:00", NY),
        )
        .await
        .unwrap();
    assert_eq!(v["model"], second.as_str(), "{v}");
    assert_eq!(
        (v["decision"].as_str(), v["risk_score"].as_u64()),
        (Some("decline"), Some(99)),
        "{v}"
    );
    let reasons = v["reasons"].as_array().unwrap();
    assert!(
        reasons.iter().any(|r| r["code"] == "MODEL_CONTRIBUTION"
            && r["detail"].as_str().unwrap().starts_with("amount = 12800")),
        "{v}"
    );
    let (_, st) = admin.get("/v1/stats").await.unwrap();
    assert_eq!(st["model"], second.as_str());

    // A damaged file is refused and the model in use stays.
    std::fs::write(&model, amount_model(1.0).replace("\"v\":5.0", "\"v\":50.0")).unwrap();
    let (s, r) = admin
        .post_raw("/v1/model/reload", Vec::new())
        .await
        .unwrap();
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (400, Some("invalid_model")),
        "{r}"
    );
    let (_, st) = admin.get("/v1/stats").await.unwrap();
    assert_eq!(st["model"], second.as_str());
    let (s, _) = acq.post_raw("/v1/model/reload", Vec::new()).await.unwrap();
    assert_eq!(s, 403);
    srv.stop().await;
}

#[tokio::test]
async fn credentials_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), "").await;
    let body = authorization("x-1", "2026-11-21T10:00:00Z", NY);
    let mut nobody = srv.client("not-a-key").await;
    let (s, v) = nobody.post("/v1/authorizations", &body).await.unwrap();
    assert_eq!(s, 401);
    assert_eq!(v["error"]["code"], "unauthorized");
    let (s, _) = nobody.get("/v1/stats").await.unwrap();
    assert_eq!(s, 401);
    let mut acq = srv.client(ACQUIRER).await;
    let (s, v) = acq.post("/v1/cards", &enrollment(PAN)).await.unwrap();
    assert_eq!(s, 403, "{v}");
    let (s, _) = acq
        .post(
            "/v1/labels",
            &json!({"authorization_id": "au_000000000000", "fraud": true}),
        )
        .await
        .unwrap();
    assert_eq!(s, 403);
    let mut admin = srv.client(ADMIN).await;
    let (s, _) = admin.post("/v1/authorizations", &body).await.unwrap();
    assert_eq!(s, 403);
    // Health is public; nothing else is.
    let (s, _) = nobody.get("/v1/health").await.unwrap();
    assert_eq!(s, 200);
    let (s, doc) = nobody.get("/openapi.json").await.unwrap();
    assert_eq!((s, doc["openapi"].as_str()), (200, Some("3.1.0")));
    let (s, _) = nobody.get_raw("/metrics").await.unwrap();
    assert_eq!(s, 401);
    let (s, _) = acq.get_raw("/metrics").await.unwrap();
    assert_eq!(s, 403);
    srv.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_field_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), "").await;
    let mut admin = srv.client(ADMIN).await;
    admin.post("/v1/cards", &enrollment(PAN)).await.unwrap();
    let mut acq = srv.client(ACQUIRER).await;
    let ok = authorization("v-1", "2026-11-21T10:00:00Z", NY);
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "unknown field",
            Box::new(|v| v["extra"] = json!(1)),
            "extra",
        ),
        (
            "unknown nested field",
            Box::new(|v| v["card"]["cvv"] = json!("123")),
            "card.cvv",
        ),
        (
            "missing id",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("id");
            }),
            "id",
        ),
        (
            "non-digit PAN",
            Box::new(|v| v["card"]["number"] = json!("4123-4567")),
            "card.number",
        ),
        (
            "short PAN",
            Box::new(|v| v["card"]["number"] = json!("41234")),
            "card.number",
        ),
        (
            "expiry form",
            Box::new(|v| v["card"]["expiry"] = json!("12/29")),
            "card.expiry",
        ),
        (
            "csc form",
            Box::new(|v| v["card"]["csc"] = json!("12")),
            "card.csc",
        ),
        (
            "pin block",
            Box::new(|v| v["card"]["pin_block"] = json!("XYZ")),
            "card.pin_block",
        ),
        (
            "negative amount",
            Box::new(|v| v["amount"]["value"] = json!(-5)),
            "amount.value",
        ),
        (
            "zero amount",
            Box::new(|v| v["amount"]["value"] = json!(0)),
            "amount.value",
        ),
        (
            "fractional amount",
            Box::new(|v| v["amount"]["value"] = json!(1.5)),
            "amount.value",
        ),
        (
            "currency",
            Box::new(|v| v["amount"]["currency"] = json!("YEN")),
            "amount.currency",
        ),
        (
            "mcc",
            Box::new(|v| v["merchant"]["mcc"] = json!("57")),
            "merchant.mcc",
        ),
        (
            "country",
            Box::new(|v| v["merchant"]["country"] = json!("XX")),
            "merchant.country",
        ),
        (
            "latitude",
            Box::new(|v| v["merchant"]["lat"] = json!(95.0)),
            "merchant.lat",
        ),
        (
            "lon without lat",
            Box::new(|v| {
                v["merchant"].as_object_mut().unwrap().remove("lat");
            }),
            "merchant.lat",
        ),
        (
            "channel",
            Box::new(|v| v["channel"] = json!("telepathy")),
            "channel",
        ),
        ("type", Box::new(|v| v["type"] = json!("gift")), "type"),
        (
            "timestamp",
            Box::new(|v| v["timestamp"] = json!("yesterday")),
            "timestamp",
        ),
        (
            "device ip",
            Box::new(|v| v["device"]["ip"] = json!("999.1.1.1")),
            "device.ip",
        ),
        ("id characters", Box::new(|v| v["id"] = json!("a b")), "id"),
        (
            "merchant name",
            Box::new(|v| v["merchant"]["name"] = json!("")),
            "merchant.name",
        ),
    ];
    for (what, mutate, field) in &cases {
        let mut body = ok.clone();
        mutate(&mut body);
        let (s, v) = acq.post("/v1/authorizations", &body).await.unwrap();
        assert_eq!(s, 400, "{what}: {v}");
        assert_eq!(v["error"]["field"], *field, "{what}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        assert!(
            !v.to_string().contains(PAN),
            "{what}: the error echoes the PAN"
        );
    }
    let (s, v) = acq
        .post_raw("/v1/authorizations", b"{not json".to_vec())
        .await
        .unwrap();
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let (s, v) = acq
        .post_raw("/v1/authorizations", vec![b' '; 20_000])
        .await
        .unwrap();
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    assert_eq!(
        authorizations_count(&mut admin).await,
        0,
        "no bad request changed state"
    );

    // Enrollment is checked field by field too.
    let enroll_cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|v| v["number"] = json!("4123456789012345")),
            "number",
        ),
        (
            Box::new(|v| v["csc"]["key_id"] = json!("nope")),
            "csc.key_id",
        ),
        (Box::new(|v| v["status"] = json!("sleeping")), "status"),
        (
            Box::new(|v| v["contact"]["language"] = json!("fr")),
            "contact.language",
        ),
        (
            Box::new(|v| v["contact"]["phone"] = json!("0901234")),
            "contact.phone",
        ),
        (Box::new(|v| v["pin"]["pvv"] = json!("12")), "pin.pvv"),
        (
            Box::new(|v| v["home"]["country"] = json!("ZZ")),
            "home.country",
        ),
        (
            Box::new(|v| v["notifications"]["channels"] = json!(["fax"])),
            "notifications.channels[0]",
        ),
    ];
    for (mutate, field) in &enroll_cases {
        let mut body = enrollment("5555555555554444");
        mutate(&mut body);
        let (s, v) = admin.post("/v1/cards", &body).await.unwrap();
        assert_eq!(
            (s, v["error"]["field"].as_str()),
            (400, Some(*field)),
            "{v}"
        );
    }
    let (_, v) = admin.get("/v1/stats").await.unwrap();
    assert_eq!(v["cards_enrolled"], 1);
    srv.stop().await;
}

#[tokio::test]
async fn the_same_id_twice_gives_the_same_answer_and_changes_state_once() {
    let dir = tempfile::tempdir().unwrap();
    let other_acquirer = "second-acquirer-key-0123456789";
    let srv = Server::start(
        dir.path(),
        &format!("[[auth.api_keys]]\nkey = \"{other_acquirer}\"\nscopes = [\"authorize\"]\n"),
    )
    .await;
    let mut admin = srv.client(ADMIN).await;
    admin.post("/v1/cards", &enrollment(PAN)).await.unwrap();
    let mut acq = srv.client(ACQUIRER).await;
    let body = authorization("idem-1", "2026-11-21T10:00:00Z", NY);
    let (_, first) = acq.post("/v1/authorizations", &body).await.unwrap();
    // The same request written another way (its keys in another order) is the same
    // request: its answer again.
    let mut reordered: serde_json::Map<String, Value> = serde_json::Map::new();
    let obj = body.as_object().unwrap();
    for k in obj.keys().rev() {
        reordered.insert(k.clone(), obj[k].clone());
    }
    let same = Value::Object(reordered);
    let (s, second) = acq.post("/v1/authorizations", &same).await.unwrap();
    assert_eq!((s, &first), (200, &second));
    // The same id for another request is a conflict, named, and changes nothing.
    let mut other_merchant = body.clone();
    other_merchant["merchant"] = authorization("x", "2026-11-21T10:00:00Z", LA)["merchant"].clone();
    let mut other_amount = body.clone();
    other_amount["amount"]["value"] = json!(99_999);
    let mut other_csc = body.clone();
    other_csc["card"]["csc"] = json!("000");
    for (changed, named) in [
        (&other_merchant, "merchant"),
        (&other_amount, "amount"),
        (&other_csc, "security code"),
    ] {
        let (s, v) = acq.post("/v1/authorizations", changed).await.unwrap();
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (409, Some("conflict")),
            "{v}"
        );
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains("idem-1") && m.contains(named), "{m}");
        assert!(!m.contains(PAN) && !m.contains("99999"), "{m}");
    }
    assert_eq!(authorizations_count(&mut admin).await, 1);
    // Ids belong to their client: another acquirer's "idem-1" is its own request, and it
    // does not get the first acquirer's answer.
    let mut other = srv.client(other_acquirer).await;
    let (s, theirs) = other
        .post("/v1/authorizations", &other_amount)
        .await
        .unwrap();
    assert_eq!(s, 200, "{theirs}");
    assert_ne!(theirs["authorization_id"], first["authorization_id"]);
    assert_eq!(authorizations_count(&mut admin).await, 2);
    srv.stop().await;
}

/// A PIN set from a PIN block: easy ones refused with their reason (nothing changes), a good
/// one stored as a new PVV, so that the new PIN is right and the old one wrong; the password
/// policy answers without composition rules.
#[tokio::test]
async fn a_pin_is_set_and_easy_ones_are_refused_and_passwords_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(dir.path(), "", &[common::RECORDED_TIMES]).await;
    let mut admin = srv.client(ADMIN).await;
    let (_, v) = admin.post("/v1/cards", &enrollment(PAN)).await.unwrap();
    let token = v["card_token"].as_str().unwrap().to_owned();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
    let block = |p: &str| hex(&pinblock::encode_iso0(p, PAN).unwrap());
    let path = format!("/v1/cards/{token}/pin");
    for (pin, why) in [
        ("1234", "consecutive"),
        ("7777", "repeats"),
        ("2580", "commonly chosen"),
        ("0314", "birth date"),
        ("1901", "phone number"),
    ] {
        let (s, e) = admin
            .post(
                &path,
                &json!({"pin_block": block(pin), "birth_date": "1987-03-14"}),
            )
            .await
            .unwrap();
        assert_eq!(s, 400, "{pin}: {e}");
        let m = e["error"]["message"].as_str().unwrap();
        assert!(m.contains(why) && !m.contains(pin), "{pin}: {m}");
    }
    let (s, e) = admin
        .post(
            &path,
            &json!({"pin_block": block("2756"), "birth_date": "14/03/1987"}),
        )
        .await
        .unwrap();
    assert_eq!((s, e["error"]["field"].as_str()), (400, Some("birth_date")));
    let (s, _) = admin
        .post(
            "/v1/cards/00000000000000000000000000000000/pin",
            &json!({"pin_block": block("2756")}),
        )
        .await
        .unwrap();
    assert_eq!(s, 404);
    let mut acq = srv.client(ACQUIRER).await;
    let (s, _) = acq
        .post(&path, &json!({"pin_block": block("2756")}))
        .await
        .unwrap();
    assert_eq!(s, 403, "the issuer's only");
    let (s, e) = admin
        .post(
            &path,
            &json!({"pin_block": block("2756"), "birth_date": "1987-03-14"}),
        )
        .await
        .unwrap();
    assert_eq!(s, 204, "{e}");
    for (i, (pin, code)) in [("4524", "55"), ("2756", "00")].iter().enumerate() {
        let mut body = authorization(&format!("np-{i}"), &format!("2026-11-21T10:0{i}:00Z"), NY);
        body["channel"] = json!("atm");
        body["type"] = json!("cash_advance");
        body["card"]["pin_block"] = json!(block(pin));
        let (_, v) = acq.post("/v1/authorizations", &body).await.unwrap();
        assert_eq!(v["response_code"], *code, "{pin}: {v}");
    }

    let check = |pw: &str| json!({"password": pw, "context": ["cardguard", "hanako@example.jp"]});
    let (s, v) = admin
        .post(
            "/v1/passwords/check",
            &check("correct horse battery staple"),
        )
        .await
        .unwrap();
    assert_eq!(s, 200);
    assert_eq!(v, json!({"acceptable": true, "problems": []}));
    let (_, v) = admin
        .post("/v1/passwords/check", &check("baseball"))
        .await
        .unwrap();
    assert_eq!(v["acceptable"], false);
    let problems = v["problems"].to_string();
    assert!(
        problems.contains("at least 15") && problems.contains("commonly used"),
        "{v}"
    );
    let (s, _) = acq.post("/v1/passwords/check", &check("x")).await.unwrap();
    assert_eq!(s, 403);
    srv.stop().await;
}

#[tokio::test]
async fn wrong_pins_then_75_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), "").await;
    let mut admin = srv.client(ADMIN).await;
    admin.post("/v1/cards", &enrollment(PAN)).await.unwrap();
    let mut acq = srv.client(ACQUIRER).await;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
    let mut codes = Vec::new();
    let mut ids = Vec::new();
    for (i, p) in ["1111", "2222", "3333", "4524"].iter().enumerate() {
        let mut body = authorization(&format!("pin-{i}"), &format!("2026-11-21T10:0{i}:00Z"), NY);
        body["channel"] = json!("atm");
        body["card"]["pin_block"] = json!(hex(&pinblock::encode_iso0(p, PAN).unwrap()));
        let (s, v) = acq.post("/v1/authorizations", &body).await.unwrap();
        assert_eq!(s, 200, "{v}");
        codes.push(v["response_code"].as_str().unwrap().to_owned());
        ids.push(v["authorization_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(codes, ["55", "55", "75", "75"]);
    // The right PIN in a request dated a day later: still locked, for the lock goes by the
    // server's clock, not the request's.
    let mut body = authorization("pin-ok", "2026-11-22T11:00:00Z", NY);
    body["card"]["pin_block"] = json!(hex(&pinblock::encode_iso0("4524", PAN).unwrap()));
    let (_, v) = acq.post("/v1/authorizations", &body).await.unwrap();
    assert_eq!(v["response_code"], "75", "{v}");

    let (s, v) = admin
        .post(
            "/v1/labels",
            &json!({"authorization_id": ids[0], "fraud": true, "source": "analyst"}),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["fraud"], true);
    let (s, v) = admin
        .post(
            "/v1/labels",
            &json!({"authorization_id": "au_999999999999", "fraud": true}),
        )
        .await
        .unwrap();
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));
    let (s, _) = admin
        .post(
            "/v1/labels",
            &json!({"authorization_id": ids[0], "fraud": "yes"}),
        )
        .await
        .unwrap();
    assert_eq!(s, 400);
    srv.stop().await;
}

#[tokio::test]
async fn state_survives_a_restart_with_and_without_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), "").await;
    let mut admin = srv.client(ADMIN).await;
    admin.post("/v1/cards", &enrollment(PAN)).await.unwrap();
    let mut acq = srv.client(ACQUIRER).await;
    let mut answers = Vec::new();
    for i in 0..120 {
        let at = format!(
            "2026-11-{:02}T{:02}:{:02}:00Z",
            1 + i / 24,
            i % 24,
            (i * 7) % 60
        );
        let (_, v) = acq
            .post(
                "/v1/authorizations",
                &authorization(&format!("r-{i}"), &at, NY),
            )
            .await
            .unwrap();
        answers.push(v);
    }
    srv.stop().await;
    // The snapshot as written; one whose body this version cannot read (the state's layout
    // changed), which must be passed over for a full replay; none at all.
    for (k, snapshot) in ["kept", "unreadable", "dropped"].into_iter().enumerate() {
        let data = dir.path().join("data");
        match snapshot {
            "unreadable" => {
                cardguard_store::remove_snapshots(&data).unwrap();
                cardguard_store::write_segment(&data, 0, 0, None, 0..16, |w| {
                    w.write_all(b"an older layout")
                })
                .unwrap();
            }
            "dropped" => {
                assert!(cardguard_store::snapshot_offset(&data).unwrap().is_some());
                cardguard_store::remove_snapshots(&data).unwrap();
            }
            _ => {}
        }
        let srv = Server::start(dir.path(), "").await;
        let mut admin = srv.client(ADMIN).await;
        // Each round below adds one authorization.
        let expected = 120 + k as u64;
        assert_eq!(authorizations_count(&mut admin).await, expected);
        let mut acq = srv.client(ACQUIRER).await;
        for (i, a) in answers.iter().enumerate().step_by(17) {
            let at = format!(
                "2026-11-{:02}T{:02}:{:02}:00Z",
                1 + i / 24,
                i % 24,
                (i * 7) % 60
            );
            let (_, v) = acq
                .post(
                    "/v1/authorizations",
                    &authorization(&format!("r-{i}"), &at, NY),
                )
                .await
                .unwrap();
            assert_eq!(&v, a, "request r-{i} after restart (snapshot {snapshot})");
        }
        // The card's state came back: Los Angeles right after New York is still held.
        let (_, v) = acq
            .post(
                "/v1/authorizations",
                &authorization(&format!("la-{snapshot}"), "2026-11-05T23:55:00Z", LA),
            )
            .await
            .unwrap();
        assert_eq!(v["decision"], "hold", "{v}");
        srv.stop().await;
    }
}

#[tokio::test]
async fn a_batch_enrolls_the_good_cards_and_names_the_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), "").await;
    let mut admin = srv.client(ADMIN).await;
    let mut bad_luhn = enrollment("4123456789012340");
    bad_luhn["cardholder_id"] = json!("ch-2");
    let mut no_key = enrollment("5555555555554444");
    no_key["csc"]["key_id"] = json!("cvk-9");
    let body =
        json!({"cards": [enrollment(PAN), bad_luhn, no_key, enrollment("4012888888881881")]});
    let (s, v) = admin.post("/v1/cards:batch", &body).await.unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (
            v["created"].as_u64(),
            v["updated"].as_u64(),
            v["failed"].as_u64()
        ),
        (Some(2), Some(0), Some(2)),
        "{v}"
    );
    let r = &v["results"];
    assert_eq!(r[0]["last4"], "2349");
    assert_eq!(r[1]["error"]["field"], "number");
    assert_eq!(r[2]["error"]["field"], "csc.key_id");
    assert_eq!(r[3]["last4"], "1881");
    assert!(
        !v.to_string().contains("4123456789012340"),
        "no card number echoed"
    );
    // The same batch again updates.
    let (_, v) = admin.post("/v1/cards:batch", &body).await.unwrap();
    assert_eq!(v["updated"], 2);
    // An enrolled card authorizes.
    let mut acq = srv.client(ACQUIRER).await;
    let (s, v) = acq
        .post(
            "/v1/authorizations",
            &authorization("b-1", "2026-11-21T10:00:00-05:00", NY),
        )
        .await
        .unwrap();
    assert_eq!((s, v["response_code"].as_str()), (200, Some("00")), "{v}");
    // Empty batches and non-admin keys are refused.
    let (s, v) = admin
        .post("/v1/cards:batch", &json!({"cards": []}))
        .await
        .unwrap();
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("cards")));
    let (s, _) = acq.post("/v1/cards:batch", &body).await.unwrap();
    assert_eq!(s, 403);
    srv.stop().await;
}

#[tokio::test]
async fn a_new_request_is_dated_near_the_servers_clock() {
    let dir = tempfile::tempdir().unwrap();
    // The default: 300 seconds either way.
    let srv = Server::start_with(dir.path(), "", &[]).await;
    let mut admin = srv.client(ADMIN).await;
    admin.post("/v1/cards", &enrollment(PAN)).await.unwrap();
    let mut acq = srv.client(ACQUIRER).await;
    let now = cardguard_core::Clock::now(&SystemClock);
    let (s, v) = acq
        .post(
            "/v1/authorizations",
            &authorization("t-now", &now.to_rfc3339(), NY),
        )
        .await
        .unwrap();
    assert_eq!((s, v["response_code"].as_str()), (200, Some("00")), "{v}");
    // A request dated 2099 (which would age every earlier authorization out of the index)
    // and one from last year are refused, naming the field, and change nothing.
    for (id, at) in [
        ("t-2099", "2099-01-01T00:00:00Z"),
        ("t-old", "2025-11-21T10:00:00Z"),
    ] {
        let (s, v) = acq
            .post("/v1/authorizations", &authorization(id, at, NY))
            .await
            .unwrap();
        assert_eq!(
            (s, v["error"]["field"].as_str()),
            (400, Some("timestamp")),
            "{v}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("300 seconds"),
            "{v}"
        );
    }
    assert_eq!(authorizations_count(&mut admin).await, 1);
    // The answered request's retry still gets its answer, whenever it comes.
    let (s, v) = acq
        .post(
            "/v1/authorizations",
            &authorization("t-now", &now.to_rfc3339(), NY),
        )
        .await
        .unwrap();
    assert_eq!((s, v["response_code"].as_str()), (200, Some("00")), "{v}");
    srv.stop().await;
}

#[tokio::test]
async fn with_the_check_off_a_request_dated_2099_forgets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), "").await;
    let mut admin = srv.client(ADMIN).await;
    admin.post("/v1/cards", &enrollment(PAN)).await.unwrap();
    let mut acq = srv.client(ACQUIRER).await;
    let now = cardguard_core::Clock::now(&SystemClock).to_rfc3339();
    let answered = authorization("answered", &now, NY);
    let (_, first) = acq.post("/v1/authorizations", &answered).await.unwrap();
    assert_eq!(first["response_code"], "00", "{first}");
    // An unknown card dated 2099 (declined 14) used to age every earlier authorization out.
    let mut future = authorization("from-2099", "2099-01-01T00:00:00Z", NY);
    future["card"]["number"] = json!("4000000000000002");
    let (s, v) = acq.post("/v1/authorizations", &future).await.unwrap();
    assert_eq!((s, v["response_code"].as_str()), (200, Some("14")), "{v}");
    async fn check(acq: &mut Client, admin: &mut Client, answered: &Value, first: &Value) {
        let (_, again) = acq.post("/v1/authorizations", answered).await.unwrap();
        assert_eq!(&again, first, "the retry was decided again");
        let label = json!({"authorization_id": first["authorization_id"], "fraud": true});
        let (s, v) = admin.post("/v1/labels", &label).await.unwrap();
        assert_eq!(s, 200, "{v}");
        assert_eq!(authorizations_count(admin).await, 2);
    }
    check(&mut acq, &mut admin, &answered, &first).await;
    srv.stop().await;
    let srv = Server::start(dir.path(), "").await;
    let (mut acq, mut admin) = (srv.client(ACQUIRER).await, srv.client(ADMIN).await);
    check(&mut acq, &mut admin, &answered, &first).await;
    srv.stop().await;
}

#[tokio::test]
async fn a_reversal_by_request_id_or_authorization_id_once_and_only_by_its_client() {
    let dir = tempfile::tempdir().unwrap();
    let other_acquirer = "second-acquirer-key-0123456789";
    let extra =
        format!("[[auth.api_keys]]\nkey = \"{other_acquirer}\"\nscopes = [\"authorize\"]\n");
    let srv = Server::start(dir.path(), &extra).await;
    let mut admin = srv.client(ADMIN).await;
    admin.post("/v1/cards", &enrollment(PAN)).await.unwrap();
    let mut acq = srv.client(ACQUIRER).await;
    let (_, first) = acq
        .post(
            "/v1/authorizations",
            &authorization("rev-1", "2026-11-21T10:00:00Z", NY),
        )
        .await
        .unwrap();
    let au = first["authorization_id"].as_str().unwrap().to_owned();
    // Another client cannot reverse it, by its request id or by cardguard's id.
    let mut other = srv.client(other_acquirer).await;
    for body in [json!({"id": "rev-1"}), json!({"authorization_id": au})] {
        let (s, v) = other.post("/v1/reversals", &body).await.unwrap();
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{v}"
        );
    }
    // The admin key has no authorize scope.
    let (s, _) = admin
        .post("/v1/reversals", &json!({"id": "rev-1"}))
        .await
        .unwrap();
    assert_eq!(s, 403);
    // Bad requests change nothing.
    for (body, status) in [
        (json!({"id": "rev-1", "authorization_id": au}), 400),
        (json!({}), 400),
        (
            json!({"id": "rev-1", "amount": {"value": 1, "currency": "JPY"}}),
            409,
        ),
        (json!({"id": "no-such-request"}), 404),
    ] {
        let (s, v) = acq.post("/v1/reversals", &body).await.unwrap();
        assert_eq!(s, status, "{body}: {v}");
    }
    let body =
        json!({"id": "rev-1", "amount": {"value": 12800, "currency": "JPY"}, "reference": "r-9"});
    let (s, v) = acq.post("/v1/reversals", &body).await.unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!({"authorization_id": au, "reversed": true, "first": true})
    );
    let (s, v) = acq
        .post("/v1/reversals", &json!({"authorization_id": au}))
        .await
        .unwrap();
    assert_eq!((s, &v["first"]), (200, &json!(false)), "{v}");
    srv.stop().await;
    // After a restart (the log replayed) it is still reversed.
    let srv = Server::start(dir.path(), &extra).await;
    let mut acq = srv.client(ACQUIRER).await;
    let (s, v) = acq
        .post("/v1/reversals", &json!({"id": "rev-1"}))
        .await
        .unwrap();
    assert_eq!((s, &v["first"]), (200, &json!(false)), "{v}");
    srv.stop().await;
}
