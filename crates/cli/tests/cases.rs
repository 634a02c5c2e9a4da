//! Cases end to end: a hold opens a case awaiting the cardholder, with the card's
//! transactions and alerts in its timeline; an analyst (the `analyst` scope) releases it or
//! blocks the card and resolves it, each step recorded and only where the status allows it;
//! a "not me" answer moves the case on, a fraud label opens one and withholds the charge
//! from billing; an analyst opens a case by hand; a hold nobody answers moves on by its timer.

mod common;

use cardguard_server::client::{Client, Method};
use common::{LA, NY, TOKYO};
use serde_json::{Value, json};
use std::time::Duration;

const ADMIN: &str = "cases-admin-key-0123456789abcdef";
const ANALYST: &str = "cases-analyst-key-0123456789abcd";
const PAN: &str = "4123456789012349";

fn config(hold_minutes: u32) -> String {
    format!(
        r#"[[auth.api_keys]]
key = "{ADMIN}"
scopes = ["admin", "authorize"]
[[auth.api_keys]]
key = "{ANALYST}"
scopes = ["analyst"]
[engine]
max_clock_skew_secs = 0
[notify]
hold_expiry_minutes = {hold_minutes}
"#
    )
}

fn authorization(id: &str, at: &str, city: common::City, yen: u64) -> Value {
    common::shop_purchase(PAN, id, at, city, yen)
}

/// The cases of `query` once there are `n` (the consumer follows the log).
async fn cases(c: &mut Client, query: &str, n: usize) -> Vec<Value> {
    for _ in 0..common::CASES_POLLS {
        let (s, v) = c.get(&format!("/v1/cases?{query}")).await.unwrap();
        assert_eq!(s, 200, "{v}");
        if v.as_array().unwrap().len() >= n {
            return v.as_array().unwrap().clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no {n} cases for {query}");
}

/// New York, then Los Angeles five minutes later: the second is held (impossible travel).
/// Its answer.
async fn held_in_la(c: &mut Client, prefix: &str) -> Value {
    c.post(
        "/v1/authorizations",
        &authorization(&format!("{prefix}-1"), &common::tokyo_time(2, 0), NY, 4000),
    )
    .await
    .unwrap();
    let (_, held) = c
        .post(
            "/v1/authorizations",
            &authorization(&format!("{prefix}-2"), &common::tokyo_time(2, 5), LA, 4000),
        )
        .await
        .unwrap();
    assert_eq!(held["decision"], "hold", "{held}");
    held
}

async fn act(c: &mut Client, id: i64, body: Value) -> (u16, Value) {
    c.post(&format!("/v1/cases/{id}/actions"), &body)
        .await
        .unwrap()
}

#[tokio::test]
async fn holds_open_cases_that_analysts_work_through_their_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = common::serve(dir.path(), &config(30));
    let _server = common::Running(child);
    let mut admin = Client::connect(addr, ADMIN).await.unwrap();
    let mut analyst = Client::connect(addr, ANALYST).await.unwrap();
    let token = common::enroll_tokyo(&mut admin, PAN).await;

    let held = held_in_la(&mut admin, "c").await;
    let held_id = held["authorization_id"].as_str().unwrap().to_owned();
    let open = cases(&mut analyst, "status=awaiting_cardholder", 1).await;
    assert_eq!(open[0]["source"], "hold");
    assert_eq!(open[0]["authorization_id"], held_id.as_str());
    assert!(
        open[0]["due_at"].is_string(),
        "the hold's expiry is its timer"
    );
    let id = open[0]["id"].as_i64().unwrap();

    // Its timeline: both authorizations (with decisions and reasons) and the opening step.
    let (s, v) = analyst.get(&format!("/v1/cases/{id}")).await.unwrap();
    assert_eq!(s, 200, "{v}");
    let kinds: Vec<&str> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "authorization").count(),
        2,
        "{v}"
    );
    let hold = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["authorization_id"] == held_id.as_str())
        .unwrap();
    assert_eq!(hold["decision"], "hold");
    assert!(
        hold["reasons"].to_string().contains("IMPOSSIBLE_TRAVEL")
            || hold["reasons"].to_string().contains("travel"),
        "{hold}"
    );
    assert!(!v.to_string().contains(PAN));

    // Not allowed in this status: nothing changes.
    let (s, e) = act(&mut analyst, id, json!({"action": "close"})).await;
    assert_eq!(s, 409, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("awaiting_cardholder")
    );
    let (s, _) = act(&mut analyst, id, json!({"action": "escalate"})).await;
    assert_eq!(s, 400);
    // Released: the same purchase again is approved; the case is resolved, then closed.
    let (s, r) = act(
        &mut analyst,
        id,
        json!({"action": "release", "note": "called the cardholder"}),
    )
    .await;
    assert_eq!(
        (s, r["status"].as_str()),
        (200, Some("resolved_genuine")),
        "{r}"
    );
    let (_, again) = admin
        .post(
            "/v1/authorizations",
            &authorization("c-3", &common::tokyo_time(2, 6), LA, 4000),
        )
        .await
        .unwrap();
    assert_eq!(again["decision"], "approve", "{again}");
    let (s, r) = act(&mut analyst, id, json!({"action": "close"})).await;
    assert_eq!((s, r["status"].as_str()), (200, Some("closed")));
    let (s, _) = act(&mut analyst, id, json!({"action": "label", "fraud": true})).await;
    assert_eq!(s, 409, "a closed case takes no action");
    let (_, v) = analyst.get(&format!("/v1/cases/{id}")).await.unwrap();
    let steps: Vec<(&str, &str)> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["action"].as_str().unwrap(), s["to"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("open", "awaiting_cardholder"),
            ("release", "resolved_genuine"),
            ("close", "closed")
        ],
        "{v}"
    );
    assert!(
        v["steps"][1]["actor"]
            .as_str()
            .unwrap()
            .starts_with("key:k")
    );

    // A second hold: the cardholder says "not me"; the case moves to investigating; the
    // analyst blocks the card and resolves it as fraud.
    admin
        .post(
            "/v1/authorizations",
            &authorization("c-4", &common::tokyo_time(2, 60), TOKYO, 4000),
        )
        .await
        .unwrap();
    let (_, held) = admin
        .post(
            "/v1/authorizations",
            &authorization("c-5", &common::tokyo_time(2, 64), NY, 4000),
        )
        .await
        .unwrap();
    assert_eq!(held["decision"], "hold", "{held}");
    let held2 = held["authorization_id"].as_str().unwrap().to_owned();
    let (s, _) = admin
        .post(
            &format!("/v1/holds/{held2}/answer"),
            &json!({"answer": "no"}),
        )
        .await
        .unwrap();
    assert_eq!(s, 200);
    let inv = cases(&mut analyst, "status=investigating", 1).await;
    let id2 = inv[0]["id"].as_i64().unwrap();
    assert_eq!(inv[0]["authorization_id"], held2.as_str());
    let (s, r) = act(&mut analyst, id2, json!({"action": "block"})).await;
    assert_eq!(
        (s, r["status"].as_str()),
        (200, Some("investigating")),
        "{r}"
    );
    let (s, r) = act(
        &mut analyst,
        id2,
        json!({"action": "resolve", "outcome": "fraud"}),
    )
    .await;
    assert_eq!((s, r["status"].as_str()), (200, Some("resolved_fraud")));
    assert!(r["due_at"].is_string(), "closes by itself later");

    // An analyst's own case; a fraud label on an approved charge opens one and withholds it.
    let (s, c) = analyst
        .post("/v1/cases", &json!({"card_token": token, "source": "phishing_report", "note": "typed the card into a flagged page"}))
        .await
        .unwrap();
    assert_eq!(
        (s, c["status"].as_str()),
        (201, Some("investigating")),
        "{c}"
    );
    let (s, _) = analyst
        .post("/v1/cases", &json!({"card_token": token, "source": "hold"}))
        .await
        .unwrap();
    assert_eq!(s, 400, "holds are opened by the system");
    let approved = again["authorization_id"].as_str().unwrap().to_owned();
    admin
        .post(
            "/v1/labels",
            &json!({"authorization_id": approved, "fraud": true, "source": "chargeback"}),
        )
        .await
        .unwrap();
    let labelled = cases(
        &mut analyst,
        &format!("card_token={token}&status=investigating"),
        2,
    )
    .await;
    assert!(
        labelled
            .iter()
            .any(|c| c["source"] == "fraud_label" && c["authorization_id"] == approved.as_str()),
        "{labelled:?}"
    );
    let (s, txs) = analyst
        .get(&format!("/v1/cards/{token}/transactions?days=400"))
        .await
        .unwrap();
    assert_eq!(s, 200, "{txs}");
    let row = txs
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["authorization_id"] == approved.as_str())
        .unwrap();
    assert_eq!(row["billing"], "withheld", "{row}");
    assert_eq!(row["merchant"]["city"], "Los Angeles");
    // The blocked card declines.
    let (_, blocked) = admin
        .post(
            "/v1/authorizations",
            &authorization("c-6", &common::tokyo_time(2, 180), TOKYO, 1000),
        )
        .await
        .unwrap();
    assert_eq!(blocked["response_code"], "62", "{blocked}");

    // Scopes: the analyst cannot authorize; no key, no cases.
    assert_eq!(
        analyst
            .post(
                "/v1/authorizations",
                &authorization("x", &common::tokyo_time(2, 180), TOKYO, 1)
            )
            .await
            .unwrap()
            .0,
        403
    );
    let mut anon = Client::connect(addr, "nobody-0123456789abcdef")
        .await
        .unwrap();
    assert_eq!(anon.get("/v1/cases").await.unwrap().0, 401);
    assert_eq!(analyst.get("/v1/cases?status=lost").await.unwrap().0, 400);
}

#[tokio::test]
async fn a_hold_nobody_answers_moves_on_by_its_timer() {
    let dir = tempfile::tempdir().unwrap();
    // Holds expire at once: the timer moves the case to investigating within a second or two.
    let (child, addr) = common::serve(dir.path(), &config(0));
    let _server = common::Running(child);
    let mut admin = Client::connect(addr, ADMIN).await.unwrap();
    common::enroll_tokyo(&mut admin, PAN).await;
    held_in_la(&mut admin, "t").await;
    let moved = cases(&mut admin, "status=investigating", 1).await;
    let (_, v) = admin
        .get(&format!("/v1/cases/{}", moved[0]["id"]))
        .await
        .unwrap();
    let last = v["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["actor"].as_str(), last["action"].as_str()),
        (Some("system"), Some("timer")),
        "{v}"
    );
}

#[tokio::test]
async fn a_dispute_withholds_labels_and_charges_back_and_the_statement_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = common::serve(dir.path(), &config(30));
    let _server = common::Running(child);
    let mut admin = Client::connect(addr, ADMIN).await.unwrap();
    let mut analyst = Client::connect(addr, ANALYST).await.unwrap();
    let token = common::enroll_tokyo(&mut admin, PAN).await;
    let other = "4000000000000002";
    let other_token = common::enroll_tokyo(&mut admin, other).await;
    let ids = common::approved_purchases(
        &mut admin,
        PAN,
        "d",
        &[
            (common::tokyo_time(5, 0), 3000),
            (common::tokyo_time(5, 10), 5000),
            (common::tokyo_time(5, 20), 700),
            (common::tokyo_time(100, 0), 1000),
        ],
    )
    .await;
    let mut expired = authorization("d-x", &common::tokyo_time(5, 30), TOKYO, 900);
    expired["card"]["expiry"] = json!("2028-01");
    let (_, declined) = admin.post("/v1/authorizations", &expired).await.unwrap();
    assert_eq!(declined["decision"], "decline");
    let declined = declined["authorization_id"].as_str().unwrap().to_owned();
    let mut theirs = authorization("d-o", &common::tokyo_time(5, 40), TOKYO, 800);
    theirs["card"]["number"] = json!(other);
    let (_, theirs) = admin.post("/v1/authorizations", &theirs).await.unwrap();
    let theirs = theirs["authorization_id"].as_str().unwrap().to_owned();
    // The transactions are indexed by the cases consumer.
    common::indexed_transactions(&mut analyst, &token, 5).await;

    let dispute = |ids: &[&str]| json!({"authorization_ids": ids, "reason": "not_me"});
    let path = format!("/v1/cards/{token}/disputes");
    // Refused, naming why, and nothing changes.
    for (body, why) in [
        (dispute(&[&ids[0], &ids[3]]), "older than the 60-day window"),
        (dispute(&[&declined]), "was not charged"),
        (dispute(&[&theirs]), "not a charge of this card"),
        (dispute(&["au_999999999999"]), "not a charge of this card"),
        (dispute(&[&ids[0], &ids[0]]), "named twice"),
        (
            json!({"authorization_ids": [ids[0]], "reason": "changed_my_mind"}),
            "not_me",
        ),
    ] {
        let (s, e) = admin.post(&path, &body).await.unwrap();
        assert_eq!(s, 400, "{body}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(why),
            "{why}: {e}"
        );
    }
    assert_eq!(
        analyst
            .get("/v1/cases")
            .await
            .unwrap()
            .1
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let t0 = std::time::Instant::now();
    let (s, d) = admin
        .post(&path, &dispute(&[&ids[0], &ids[1]]))
        .await
        .unwrap();
    eprintln!("a dispute of 2 charges took {:?}", t0.elapsed());
    assert_eq!(s, 201, "{d}");
    assert_eq!(
        (d["case"]["source"].as_str(), d["case"]["status"].as_str()),
        (Some("dispute"), Some("investigating"))
    );
    let charges = d["charges"].as_array().unwrap();
    assert_eq!(charges.len(), 2);
    assert_eq!(charges[0]["chargeback"]["reason"], "fraud_card_present");
    assert_eq!(
        charges[0]["chargeback"]["amount"],
        json!({"value": 3000, "currency": "JPY"})
    );
    let (s, e) = admin
        .post(&path, &dispute(&[&ids[2], &ids[1]]))
        .await
        .unwrap();
    assert_eq!(s, 409, "disputed twice: {e}");
    // Labelled fraud (the decision record shows it), no other case opened for them.
    let (_, rec) = admin
        .get(&format!("/v1/authorizations/{}", ids[0]))
        .await
        .unwrap();
    assert_eq!(rec["label"], "fraud", "{rec}");
    let (_, list) = analyst.get("/v1/cases").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, later) = analyst.get("/v1/cases").await.unwrap();
    assert_eq!(
        (
            list.as_array().unwrap().len(),
            later.as_array().unwrap().len()
        ),
        (1, 1),
        "{later}"
    );
    let (_, v) = analyst
        .get(&format!("/v1/cases/{}", d["case"]["id"]))
        .await
        .unwrap();
    assert_eq!(v["chargebacks"].as_array().unwrap().len(), 2, "{v}");

    // The statement of December (Tokyo time): the two disputed charges withheld, the third
    // billable; September's charge in September's.
    let (s, st) = analyst
        .get(&format!(
            "/v1/cards/{token}/statement?month={}",
            common::tokyo_month(5)
        ))
        .await
        .unwrap();
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["time_zone"], "Asia/Tokyo");
    assert_eq!(
        st["lines"].as_array().unwrap().len(),
        3,
        "declined ones are not charges: {st}"
    );
    assert_eq!(
        st["totals"]["JPY"],
        json!({"withheld": 8000, "billable": 700}),
        "{st}"
    );
    let (_, sep) = analyst
        .get(&format!(
            "/v1/cards/{token}/statement?month={}",
            common::tokyo_month(100)
        ))
        .await
        .unwrap();
    assert_eq!(sep["totals"]["JPY"], json!({"billable": 1000}));
    assert_eq!(
        analyst
            .get(&format!("/v1/cards/{token}/statement?month=2026-13"))
            .await
            .unwrap()
            .0,
        400
    );
    assert_eq!(
        analyst
            .get(&format!(
                "/v1/cards/{other_token}/statement?month={}",
                common::tokyo_month(5)
            ))
            .await
            .unwrap()
            .1["totals"]["JPY"],
        json!({"billable": 800})
    );
}

#[tokio::test]
async fn an_analysts_block_tells_the_cardholder() {
    let Some(sink) = common::Sink::start(&[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(30) + &common::smtp_section(sink.port);
    let (child, addr) = common::serve(dir.path(), &cfg);
    let _server = common::Running(child);
    let mut admin = Client::connect(addr, ADMIN).await.unwrap();
    let mut analyst = Client::connect(addr, ANALYST).await.unwrap();
    common::enroll_tokyo(&mut admin, PAN).await;
    held_in_la(&mut admin, "b").await;
    let alert = sink.next(Duration::from_secs(10)).expect("the fraud alert");
    assert!(alert["subject"].as_str().unwrap().contains("2349"));
    let open = cases(&mut analyst, "status=awaiting_cardholder", 1).await;
    let (s, r) = act(
        &mut analyst,
        open[0]["id"].as_i64().unwrap(),
        json!({"action": "block"}),
    )
    .await;
    assert_eq!(
        (s, r["status"].as_str()),
        (200, Some("investigating")),
        "{r}"
    );
    let notice = sink
        .next(Duration::from_secs(10))
        .expect("the notice of the block");
    let subject = notice["subject"].as_str().unwrap();
    assert!(
        subject.contains("カードのご利用停止") && subject.contains("2349"),
        "{notice}"
    );
    assert!(!notice["body"].as_str().unwrap().contains(PAN));
    common::assert_clean(&notice);
    // The analyst replaces the card from the case: a step says which new card.
    let id = open[0]["id"].as_i64().unwrap();
    let (s, r) = act(
        &mut analyst,
        id,
        json!({"action": "reissue", "block": "full"}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let (_, v) = analyst.get(&format!("/v1/cases/{id}")).await.unwrap();
    let last = v["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "reissue");
    assert!(
        last["note"]
            .as_str()
            .unwrap()
            .starts_with("new card ending "),
        "{last}"
    );
    let reissued = sink
        .next(Duration::from_secs(10))
        .expect("the reissue notice");
    assert!(
        reissued["subject"].as_str().unwrap().contains("再発行"),
        "{reissued}"
    );
    common::assert_clean(&reissued);
}

fn online(id: &str, at: &str, merchant: &str, yen: u64) -> Value {
    json!({"id": id, "timestamp": at,
     "card": {"number": PAN, "expiry": "2029-12", "csc": "123"},
     "amount": {"value": yen, "currency": "JPY"},
     "merchant": {"id": merchant, "terminal_id": "web", "name": merchant.to_uppercase(), "mcc": "4899",
                  "country": "JP", "city": "Tokyo"},
     "channel": "ecommerce", "type": "purchase"})
}

#[tokio::test]
async fn a_reissue_blocks_online_use_until_the_new_card_is_activated() {
    let Some(sink) = common::Sink::start(&[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(30) + &common::smtp_section(sink.port);
    let (child, addr) = common::serve(dir.path(), &cfg);
    let _server = common::Running(child);
    let mut admin = Client::connect(addr, ADMIN).await.unwrap();
    let mut analyst = Client::connect(addr, ANALYST).await.unwrap();
    let mut card = common::tokyo_card(PAN);
    card["notifications"] =
        json!({"channels": ["email"], "usage_threshold": {"value": 10_000_000, "currency": "JPY"}});
    let (_, c) = admin.post("/v1/cards", &card).await.unwrap();
    let token = c["card_token"].as_str().unwrap().to_owned();
    // A subscription charged twice, and a one-off purchase.
    for (i, (at, m)) in [
        (common::tokyo_time(62, 0), "m-video"),
        (common::tokyo_time(32, 0), "m-video"),
        (common::tokyo_time(16, 0), "m-shop"),
    ]
    .iter()
    .enumerate()
    {
        let (_, a) = admin
            .post(
                "/v1/authorizations",
                &online(&format!("r-{i}"), at, m, 1490),
            )
            .await
            .unwrap();
        assert_eq!(a["decision"], "approve", "{a}");
    }
    // The cases consumer has indexed them (its linger: half a second).
    common::indexed_transactions(&mut analyst, &token, 3).await;

    let path = format!("/v1/cards/{token}/reissue");
    let (s, e) = admin.post(&path, &json!({"block": "half"})).await.unwrap();
    assert_eq!((s, e["error"]["field"].as_str()), (400, Some("block")));
    let (s, r) = admin
        .post(&path, &json!({"block": "card_not_present"}))
        .await
        .unwrap();
    assert_eq!(s, 201, "{r}");
    let new_token = r["card_token"].as_str().unwrap().to_owned();
    let new_last4 = r["last4"].as_str().unwrap().to_owned();
    assert_ne!(new_token, token);
    // Expected in seven days.
    let expected =
        cardguard_core::Timestamp::parse_rfc3339(r["expected_delivery"].as_str().unwrap())
            .unwrap()
            .0;
    let now = cardguard_core::Clock::now(&cardguard_core::SystemClock).0;
    assert!((expected - (now + 7 * 86_400_000)).abs() < 60_000, "{r}");
    assert_eq!(r["expiry"].as_str().unwrap().len(), 7);
    let (s, _) = admin.post(&path, &json!({"block": "full"})).await.unwrap();
    assert_eq!(s, 409, "reissued once");
    // The cardholder is told, in Japanese, with the new card's last four digits.
    let notice = sink
        .next(Duration::from_secs(10))
        .expect("the reissue notice");
    let body = notice["body"].as_str().unwrap();
    assert!(
        body.contains(&new_last4) && body.contains("ICチップ"),
        "{body}"
    );
    // Until the new card is active: online declined (62), in shops approved.
    let (_, web) = admin
        .post(
            "/v1/authorizations",
            &online("r-9", &common::tokyo_time(1, 0), "m-shop", 500),
        )
        .await
        .unwrap();
    assert_eq!(web["response_code"], "62", "{web}");
    let (_, shop) = admin
        .post(
            "/v1/authorizations",
            &authorization("r-10", &common::tokyo_time(1, 60), TOKYO, 500),
        )
        .await
        .unwrap();
    assert_eq!(shop["decision"], "approve", "{shop}");
    // The merchants that charge the card again and again, and the account updater's feed.
    let (_, rec) = analyst
        .get(&format!("/v1/cards/{token}/recurring-merchants"))
        .await
        .unwrap();
    assert_eq!(rec.as_array().unwrap().len(), 1, "{rec}");
    assert_eq!(
        (rec[0]["merchant_id"].as_str(), rec[0]["charges"].as_u64()),
        (Some("m-video"), Some(2))
    );
    assert_eq!(
        admin.get("/v1/account-updater").await.unwrap().1,
        json!([]),
        "not active yet"
    );
    let (s, a) = admin
        .post(&format!("/v1/cards/{new_token}/activate"), &json!({}))
        .await
        .unwrap();
    assert_eq!(s, 200, "{a}");
    assert_eq!(
        admin
            .post(&format!("/v1/cards/{new_token}/activate"), &json!({}))
            .await
            .unwrap()
            .0,
        409
    );
    assert_eq!(
        admin
            .post(&format!("/v1/cards/{token}/activate"), &json!({}))
            .await
            .unwrap()
            .0,
        404
    );
    let (_, feed) = admin
        .get("/v1/account-updater?since=2026-01-01T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(feed[0]["old_card_token"], token.as_str());
    assert_eq!(feed[0]["card_token"], new_token.as_str());
    assert_eq!(feed[0]["last4"], new_last4.as_str());
    // The old card is closed; a closed card is not reissued.
    let (_, shop) = admin
        .post(
            "/v1/authorizations",
            &authorization("r-11", &common::tokyo_time(1, 120), TOKYO, 500),
        )
        .await
        .unwrap();
    assert_eq!(shop["decision"], "decline", "{shop}");
    let (s, e) = admin.post(&path, &json!({"block": "full"})).await.unwrap();
    assert_eq!(s, 409, "{e}");
}

#[tokio::test]
async fn a_phishing_report_opens_a_case_when_card_data_was_entered() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = common::serve(dir.path(), &config(30));
    let _server = common::Running(child);
    let mut admin = Client::connect(addr, ADMIN).await.unwrap();
    let token = common::enroll_tokyo(&mut admin, PAN).await;
    let phish = include_bytes!("../../phish/tests/fixtures/rakuten-sjis-phish.eml").to_vec();
    let genuine = include_bytes!("../../phish/tests/fixtures/paypal-genuine-receipt.eml").to_vec();
    let report = |entered: &str| format!("/v1/cards/{token}/phishing-reports?entered={entered}");
    let send = |path: String, body: Vec<u8>| async move {
        let mut c = Client::connect(addr, ANALYST).await.unwrap();
        let (s, b) = c
            .request(Method::POST, &path, Some(("message/rfc822", body)))
            .await
            .unwrap();
        (s, serde_json::from_slice::<Value>(&b).unwrap())
    };
    // Refused: an unknown entry, a body that is not a mail, another card.
    let (s, e) = send(report("card_number,mothers_maiden_name"), phish.clone()).await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("entered")),
        "{e}"
    );
    let (s, _) = send(report("card_number"), b"no headers here".to_vec()).await;
    assert_eq!(s, 400);
    let (s, _) = send(
        "/v1/cards/00000000000000000000000000000000/phishing-reports".into(),
        phish.clone(),
    )
    .await;
    assert_eq!(s, 404);
    // A genuine mail, or a phish where nothing was typed in: no case.
    let (s, r) = send(report("card_number,csc"), genuine).await;
    assert_eq!(
        (s, r["report"]["verdict"].as_str()),
        (200, Some("clean")),
        "{r}"
    );
    assert!(r["case"].is_null());
    let (s, r) = send(report(""), phish.clone()).await;
    assert_eq!(
        (s, r["report"]["verdict"].as_str()),
        (200, Some("phishing")),
        "{r}"
    );
    assert!(r["case"].is_null());
    let (_, list) = admin.get("/v1/cases").await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 0);
    // The number and the security code typed into the phishing page: a case, and a reissue
    // advised.
    let (s, r) = send(report("card_number,expiry,csc"), phish).await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(
        (r["case"]["source"].as_str(), r["case"]["status"].as_str()),
        (Some("phishing_report"), Some("investigating"))
    );
    assert!(
        r["advice"][0]
            .as_str()
            .unwrap()
            .starts_with("reissue the card"),
        "{r}"
    );
    let (_, v) = admin
        .get(&format!("/v1/cases/{}", r["case"]["id"]))
        .await
        .unwrap();
    let note = v["steps"][0]["note"].as_str().unwrap();
    assert!(
        note.contains("card_number, expiry, csc")
            && note.contains("phishing")
            && note.contains("SENDER_NOT_OFFICIAL_DOMAIN"),
        "{note}"
    );
}
