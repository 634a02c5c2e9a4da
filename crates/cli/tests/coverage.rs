//! What the cardholder pays after fraud, end to end: a dispute withheld, then resolved as
//! fraud: compensated as the card product's policy says (window, deductible, gross
//! negligence), every posting in a double-entry ledger that balances and names its case,
//! the statement's amount due following; the acquirer's answer to a chargeback; shopping
//! protection claims within 90 days and the annual cap, with their documents checked; and
//! the cardholder told each decision (when the SMTP sink can run).

mod common;

use cardguard_server::client::{Client, Method};
use serde_json::{Value, json};
use std::time::Duration;

const ADMIN: &str = "coverage-admin-key-0123456789abcd";
const ANALYST: &str = "coverage-analyst-key-0123456789ab";
const PAN: &str = "4123456789012349";

fn config() -> String {
    format!(
        r#"[[auth.api_keys]]
key = "{ADMIN}"
scopes = ["admin", "authorize", "label"]
[[auth.api_keys]]
key = "{ANALYST}"
scopes = ["analyst"]
[engine]
max_clock_skew_secs = 0
[cases]
claim_document_max_bytes = 4096
claim_documents = 2
[cases.products.gold]
compensation_deductible = 1000
protection_annual_cap = 2000000
"#
    )
}

/// The next message to the sink whose subject contains `what`.
fn notice(sink: &common::Sink, what: &str) -> Value {
    for _ in 0..20 {
        let m = sink
            .next(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no notice {what}"));
        if m["subject"].as_str().unwrap_or("").contains(what) {
            return m;
        }
    }
    panic!("no notice {what}")
}

async fn wait_for_case(c: &mut Client, authorization_id: &str) -> i64 {
    for _ in 0..common::CASES_POLLS {
        let (_, v) = c.get("/v1/cases").await.unwrap();
        if let Some(x) = v
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["authorization_id"] == authorization_id)
        {
            return x["id"].as_i64().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no case for {authorization_id}")
}

#[tokio::test]
async fn fraud_is_compensated_in_the_ledger_and_claims_pay_within_the_cap() {
    scenario("").await;
}

/// The same on PostgreSQL, its schema made by `cardguard migrate` (a server refuses the
/// database before).
#[tokio::test]
async fn the_same_on_postgres_after_cardguard_migrate() {
    let Some(admin_url) = std::env::var("CARDGUARD_TEST_DATABASE_URL").ok() else {
        assert!(
            std::env::var_os("CARDGUARD_REQUIRE_POSTGRES").is_none(),
            "CARDGUARD_TEST_DATABASE_URL is not set: PostgreSQL is required"
        );
        eprintln!("CARDGUARD_TEST_DATABASE_URL is not set (scripts/postgres.sh): not tested");
        return;
    };
    let name = format!("cg_coverage_{}", std::process::id());
    let url = cardguard_store::sql::create_empty_database(&admin_url, &name).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = ("CARDGUARD__STORAGE__DATABASE_URL", url.as_str());
    // Before the migration: refused, with the way out.
    let refused = common::cardguard()
        .args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env(env.0, env.1)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{out}");
    assert!(out.contains("run `cardguard migrate`"), "{out}");
    assert!(
        !out.contains("postgres://"),
        "no database URL in errors: {out}"
    );
    let out = common::ok(common::cardguard().arg("migrate").env(env.0, env.1));
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("applied migration(s) 1"), "{out}");
    let out = common::ok(common::cardguard().arg("migrate").env(env.0, env.1));
    assert!(String::from_utf8_lossy(&out).contains("the schema is current"));
    scenario(&format!("[storage]\ndatabase_url = {url:?}\n")).await;
    cardguard_store::sql::drop_database(&admin_url, &name).unwrap();
}

async fn scenario(extra: &str) {
    let sink = common::Sink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config() + extra;
    if let Some(s) = &sink {
        cfg += &common::smtp_section(s.port);
    }
    let (child, addr) = common::serve(dir.path(), &cfg);
    let _server = common::Running(child);
    let mut admin = Client::connect(addr, ADMIN).await.unwrap();
    let mut analyst = Client::connect(addr, ANALYST).await.unwrap();
    let token = common::enroll_tokyo(&mut admin, PAN).await;
    let ids = common::approved_purchases(
        &mut admin,
        PAN,
        "c",
        &[
            (common::tokyo_time(5, 0), 3000),
            (common::tokyo_time(4, 0), 5000),
            (common::tokyo_time(3, 0), 700),
            (common::tokyo_time(100, 0), 1000),
            (common::tokyo_time(2, 0), 300_000),
            (common::tokyo_time(2, 60), 1_900_000),
        ],
    )
    .await;
    let transactions = format!("/v1/cards/{token}/transactions?days=400");
    let tx = common::indexed_transactions(&mut analyst, &token, 6).await;
    let billing_of = |tx: &Value, id: &str| -> String {
        tx.as_array()
            .unwrap()
            .iter()
            .find(|t| t["authorization_id"] == id)
            .map(|t| t["billing"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(billing_of(&tx, &ids[0]), "billable");

    // A dispute of the first two, resolved as fraud: the product's deductible (1,000 JPY)
    // is billed from the first, the rest credited.
    let (s, d) = admin
        .post(
            &format!("/v1/cards/{token}/disputes"),
            &json!({"authorization_ids": [ids[0], ids[1]], "reason": "not_me"}),
        )
        .await
        .unwrap();
    assert_eq!(s, 201, "{d}");
    let case = d["case"]["id"].as_i64().unwrap();
    let act = format!("/v1/cases/{case}/actions");
    let (s, e) = analyst
        .post(
            &act,
            &json!({"action": "resolve", "outcome": "fraud", "findings": ["pin_on_a_post_it"]}),
        )
        .await
        .unwrap();
    assert_eq!(s, 400, "an unknown finding: {e}");
    let (s, r) = analyst
        .post(&act, &json!({"action": "resolve", "outcome": "fraud"}))
        .await
        .unwrap();
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["status"], "resolved_fraud");
    let c = &r["compensation"];
    assert_eq!(c["covered"], true, "{r}");
    let codes: Vec<&str> = c["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["within_window", "deductible"], "{c}");
    let credited: Vec<u64> = c["charges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["credited"]["value"].as_u64().unwrap())
        .collect();
    assert_eq!(credited, [2000, 5000], "{c}");
    let (s, e) = analyst
        .post(&act, &json!({"action": "resolve", "outcome": "genuine"}))
        .await
        .unwrap();
    assert_eq!(s, 409, "resolved already: {e}");
    let (_, v) = analyst.get(&format!("/v1/cases/{case}")).await.unwrap();
    let kinds: Vec<&str> = v["postings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "withhold",
            "withhold",
            "deductible",
            "compensate",
            "compensate"
        ],
        "every posting of the case names it: {v}"
    );
    let tx = analyst.get(&transactions).await.unwrap().1;
    assert_eq!(
        (billing_of(&tx, &ids[0]), billing_of(&tx, &ids[1])),
        ("credited".into(), "credited".into())
    );

    // The acquirer accepts the first chargeback: charged back, once.
    let cb = format!("/v1/chargebacks/{}", ids[0]);
    let (s, e) = analyst
        .post(&cb, &json!({"outcome": "maybe"}))
        .await
        .unwrap();
    assert_eq!(s, 400, "{e}");
    let (s, r) = analyst
        .post(&cb, &json!({"outcome": "accepted"}))
        .await
        .unwrap();
    assert_eq!((s, r["status"].as_str()), (200, Some("accepted")), "{r}");
    let (s, _) = analyst
        .post(&cb, &json!({"outcome": "accepted"}))
        .await
        .unwrap();
    assert_eq!(s, 409, "answered once");
    let tx = analyst.get(&transactions).await.unwrap().1;
    assert_eq!(billing_of(&tx, &ids[0]), "charged_back");

    // A fraud label on the 700 JPY charge opens a case; the investigation finds the PIN was
    // written on the card (gross negligence for this product): billed after all. The
    // September charge, labelled too, is outside the 60-day window: billed.
    for id in [&ids[2], &ids[3]] {
        let (s, l) = admin
            .post(
                "/v1/labels",
                &json!({"authorization_id": id, "fraud": true}),
            )
            .await
            .unwrap();
        assert!(s == 200 || s == 201, "{l}");
    }
    let negligent = wait_for_case(&mut analyst, &ids[2]).await;
    let (_, r) = analyst
        .post(
            &format!("/v1/cases/{negligent}/actions"),
            &json!({"action": "resolve", "outcome": "fraud", "findings": ["pin_written_on_card"]}),
        )
        .await
        .unwrap();
    assert_eq!(r["compensation"]["covered"], false, "{r}");
    assert_eq!(r["compensation"]["reasons"][0]["code"], "gross_negligence");
    let old = wait_for_case(&mut analyst, &ids[3]).await;
    let (_, r) = analyst
        .post(
            &format!("/v1/cases/{old}/actions"),
            &json!({"action": "resolve", "outcome": "fraud"}),
        )
        .await
        .unwrap();
    assert_eq!(
        r["compensation"]["reasons"][0]["code"], "outside_window",
        "{r}"
    );
    let tx = analyst.get(&transactions).await.unwrap().1;
    assert_eq!(
        (billing_of(&tx, &ids[2]), billing_of(&tx, &ids[3])),
        ("billable".into(), "billable".into())
    );

    // The statements of the last days' months: what their postings leave due.
    // 3,000 + 5,000 + 700 + 300,000 + 1,900,000 charged; 8,000 withheld; 1,000 deductible,
    // refunded by the chargeback; 700 and the old 1,000 withheld and billed again.
    let mut months = vec![common::tokyo_month(5), common::tokyo_month(0)];
    months.dedup();
    let mut due = 0;
    for m in &months {
        let (_, st) = analyst
            .get(&format!("/v1/cards/{token}/statement?month={m}"))
            .await
            .unwrap();
        due += st["due"]["JPY"].as_i64().unwrap_or(0);
    }
    assert_eq!(due, 2_200_700, "{months:?}");
    // The ledger balances: every currency's debits are its credits.
    let (_, l) = analyst
        .get(&format!("/v1/ledger?card_token={token}"))
        .await
        .unwrap();
    let accounts = l["accounts"].as_array().unwrap();
    let total: i64 = accounts
        .iter()
        .map(|a| a["balance"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 0, "{l}");
    let balance = |name: &str| {
        accounts
            .iter()
            .find(|a| a["account"] == name)
            .map_or(0, |a| a["balance"].as_i64().unwrap())
    };
    assert_eq!(balance("cardholder"), 2_200_700 + 1000, "{l}");
    assert_eq!(
        balance("fraud_losses"),
        5000,
        "the first charge's loss recovered: {l}"
    );
    assert_eq!(balance("disputed"), 0, "{l}");

    if let Some(sink) = &sink {
        // Three decisions, delivered concurrently: in any order.
        let got: Vec<Value> = (0..3)
            .map(|_| notice(sink, "不正利用のお申し出の調査結果"))
            .collect();
        let body = |m: &Value| m["body"].as_str().unwrap().to_owned();
        for m in &got {
            assert!(!body(m).contains(PAN));
            common::assert_clean(m);
        }
        let has = |what: &[&str]| got.iter().any(|m| what.iter().all(|w| body(m).contains(w)));
        assert!(has(&["¥7,000", "¥1,000"]), "{got:?}");
        assert!(has(&["¥700", "重大な過失"]), "{got:?}");
        assert!(has(&["¥1,000", "60日"]), "{got:?}");
    }

    // Shopping protection: the 300,000 JPY purchase damaged the day after.
    let claim = |id: &str, yen: u64, at: &String| {
        json!({"card_token": token, "authorization_id": id, "kind": "damage",
               "amount": {"value": yen, "currency": "JPY"}, "occurred_at": at})
    };
    for (body, status, why) in [
        (
            claim(&ids[3], 1000, &common::tokyo_time(1, 0)),
            400,
            "shopping protection covers 90 days",
        ),
        (
            claim(&ids[1], 5000, &common::tokyo_time(1, 0)),
            400,
            "disputed as fraud",
        ),
        (
            claim(&ids[4], 400_000, &common::tokyo_time(1, 0)),
            400,
            "at most the purchase's",
        ),
        (
            claim(&ids[4], 3000, &common::tokyo_time(1, 0)),
            400,
            "deductible",
        ),
        (
            claim(&ids[4], 1000, &common::tokyo_time(3, 0)),
            400,
            "before the purchase",
        ),
        (
            claim(&ids[4], 1000, &common::tokyo_time(-3, 0)),
            400,
            "in the future",
        ),
    ] {
        let (s, e) = admin.post("/v1/claims", &body).await.unwrap();
        assert_eq!(s, status, "{body}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap_or("").contains(why),
            "{why}: {e}"
        );
    }
    let (s, c1) = admin
        .post(
            "/v1/claims",
            &claim(&ids[4], 300_000, &common::tokyo_time(1, 0)),
        )
        .await
        .unwrap();
    assert_eq!(s, 201, "{c1}");
    assert_eq!(c1["status"], "awaiting_documents");
    assert_eq!(
        c1["covered"]["value"], 297_000,
        "the 3,000 JPY deductible: {c1}"
    );
    assert_eq!(
        c1["cap_remaining"]["value"], 1_703_000,
        "held against the cap: {c1}"
    );
    let (s, e) = admin
        .post(
            "/v1/claims",
            &claim(&ids[4], 10_000, &common::tokyo_time(1, 0)),
        )
        .await
        .unwrap();
    assert_eq!(s, 409, "one claim per purchase: {e}");
    let (s, e) = admin
        .post(
            "/v1/claims",
            &claim(&ids[5], 1_900_000, &common::tokyo_time(1, 0)),
        )
        .await
        .unwrap();
    assert_eq!(s, 400, "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("over the annual cap") && msg.contains("¥1,703,000 left"),
        "{msg}"
    );
    let id = c1["id"].as_i64().unwrap();
    let decision = format!("/v1/claims/{id}/decision");
    let (s, e) = analyst
        .post(&decision, &json!({"approve": true}))
        .await
        .unwrap();
    assert_eq!(s, 409, "no document yet: {e}");

    // Documents: the type named and the bytes agreeing, within the size limit.
    let docs = format!("/v1/claims/{id}/documents");
    let send = |ct: &'static str, body: Vec<u8>| {
        let docs = docs.clone();
        async move {
            let mut c = Client::connect(addr, ANALYST).await.unwrap();
            let (s, b) = c
                .request(Method::POST, &docs, Some((ct, body)))
                .await
                .unwrap();
            (
                s,
                serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null),
            )
        }
    };
    let pdf = b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF\n".to_vec();
    let png = [
        &[0x89u8, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A][..],
        &[0u8; 32],
    ]
    .concat();
    assert_eq!(send("text/plain", b"receipt".to_vec()).await.0, 400);
    let (s, e) = send("application/pdf", png.clone()).await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("first bytes")
    );
    assert_eq!(send("application/pdf", vec![b'%'; 5000]).await.0, 413);
    let (s, d1) = send("application/pdf", pdf.clone()).await;
    assert_eq!(s, 201, "{d1}");
    let (s, _) = send("image/png", png.clone()).await;
    assert_eq!(s, 201);
    assert_eq!(send("image/png", png).await.0, 409, "at most 2 documents");
    let stored = dir
        .path()
        .join("data")
        .join("claims")
        .join(format!("{id}-{}.pdf", d1["sha256"].as_str().unwrap()));
    assert_eq!(std::fs::read(&stored).unwrap(), pdf);

    let (s, e) = analyst
        .post(&decision, &json!({"approve": false}))
        .await
        .unwrap();
    assert_eq!(s, 400, "a decline says why: {e}");
    let (s, c) = analyst
        .post(
            &decision,
            &json!({"approve": true, "note": "repair estimate checked"}),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{c}");
    assert_eq!(
        (c["status"].as_str(), c["payout"]["value"].as_i64()),
        (Some("approved"), Some(297_000))
    );
    assert_eq!(c["postings"][0]["kind"], "claim");
    assert_eq!(c["cap_remaining"]["value"], 1_703_000);
    let (s, _) = analyst
        .post(&decision, &json!({"approve": true}))
        .await
        .unwrap();
    assert_eq!(s, 409, "decided once");
    let (_, again) = analyst.get(&format!("/v1/claims/{id}")).await.unwrap();
    assert_eq!(again["documents"].as_array().unwrap().len(), 2);
    let (_, l) = analyst.get("/v1/ledger").await.unwrap();
    let total: i64 = l["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["balance"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 0, "{l}");
    if let Some(sink) = &sink {
        let m = notice(sink, "ショッピング保険");
        assert!(m["body"].as_str().unwrap().contains("¥297,000"), "{m}");
        common::assert_clean(&m);
    }
    // Without credentials: refused.
    let mut nobody = Client::connect(addr, "not-a-key-0123456789abcdef0123")
        .await
        .unwrap();
    assert_eq!(
        nobody.get(&format!("/v1/claims/{id}")).await.unwrap().0,
        401
    );
}
