//! The rules language through the server: the default ruleset in force from the first start;
//! a ruleset that does not compile refused whole with every error at its line and column
//! (the one in force stays); a new version decides the next authorization, with its rule's
//! id in the reasons and in the decision record, which replays to the same rules; lists that
//! take effect at once, refuse items of the wrong kind, and expire; rollback; versions and
//! lists that survive a restart; a watched rules file; `cardguard rules check`.

mod common;

use cardguard_server::client::Client;
use cardguard_server::client::Method;
use common::{Running, cardguard, exits, serve};
use serde_json::{Value, json};
use std::time::Duration;

const KEY: &str = "rules-test-key-0123456789abcdef";
const PAN: &str = "4123456789012349";

fn config(extra: &str) -> String {
    format!(
        r#"[[auth.api_keys]]
key = "{KEY}"
scopes = ["admin", "authorize"]
[engine]
max_clock_skew_secs = 0
{extra}"#
    )
}

fn authorization(id: &str, merchant: &str, minute: u32, ip: &str) -> Value {
    json!({"id": id, "timestamp": format!("2026-11-21T10:{minute:02}:00+09:00"),
     "card": {"number": PAN, "expiry": "2029-12"},
     "amount": {"value": 3000, "currency": "JPY"},
     "merchant": {"id": merchant, "terminal_id": "t-1", "name": "SHOP", "mcc": "5732",
                  "country": "JP", "city": "Tokyo", "lat": 35.68, "lon": 139.76},
     "channel": "ecommerce", "type": "purchase",
     "device": {"id": "d-1", "ip": ip, "ip_country": "JP"},
     "email": "Hanako@Example.JP"})
}

async fn put_rules(c: &mut Client, text: &str) -> (u16, Value) {
    c.send_json(
        Method::PUT,
        "/v1/rules",
        Some(("application/toml", text.as_bytes().to_vec())),
    )
    .await
    .unwrap()
}

async fn decide(c: &mut Client, id: &str, merchant: &str, minute: u32, ip: &str) -> Value {
    let (s, v) = c
        .post(
            "/v1/authorizations",
            &authorization(id, merchant, minute, ip),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    v
}

const BLOCKING: &str = r#"
[[rules]]
id = "blocked_merchant"
description = "a merchant the analysts blocked"
rule = "decline if :merchant_id: in @blocked_merchants"

[[rules]]
id = "blocked_network"
description = "an IP range the analysts blocked"
rule = "hold if :ip: in @blocked_ips and :email_domain: = 'example.jp' and :ip_country: = 'JP'"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysts_change_decisions_live_and_every_decision_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = serve(dir.path(), &config(""));
    let server = Running(child);
    let mut c = Client::connect(addr, KEY).await.unwrap();

    // Credentials are needed for every analyst route.
    let mut anon = Client::connect(addr, "not-a-key-0123456789abcdef")
        .await
        .unwrap();
    for path in ["/v1/rules", "/v1/lists", "/v1/rules/versions"] {
        assert_eq!(anon.get(path).await.unwrap().0, 401, "{path}");
    }

    // The default ruleset is version 1.
    let (s, v) = c.get("/v1/rules").await.unwrap();
    assert_eq!(s, 200);
    assert_eq!(
        (v["version"].as_u64(), v["note"].as_str()),
        (Some(1), Some("default"))
    );
    let ids: Vec<&str> = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"impossible_travel") && ids.contains(&"card_testing"),
        "{ids:?}"
    );

    let card = common::tokyo_card(PAN);
    let (s, v) = c.post("/v1/cards", &card).await.unwrap();
    assert!(s == 200 || s == 201, "{v}");

    let first = decide(&mut c, "r-1", "m-evil", 0, "203.0.113.9").await;
    assert_eq!(first["decision"], "approve", "{first}");
    assert_eq!(first["ruleset_version"], 1);

    // A ruleset with errors is refused whole, each error at its place; nothing changes.
    let bad = "[[rules]]\nid = \"a\"\nrule = \"decline if :amount: > 'big'\"\n\n[[rules]]\nid = \"b\"\nrule = \"hold if :merchant_id: in @blocked_ips\"\n\n[[rules]]\nid = \"c\"\nrule = \"hold when :amount: > 1\"\n";
    let (s, v) = put_rules(&mut c, bad).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "invalid_ruleset");
    let errors = v["error"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3, "{v}");
    assert_eq!(
        (errors[0]["line"].as_u64(), errors[0]["column"].as_u64()),
        (Some(3), Some(31))
    );
    assert_eq!(errors[0]["rule"], "a");
    assert!(
        errors[1]["message"]
            .as_str()
            .unwrap()
            .contains("not :merchant_id:")
    );
    assert_eq!(errors[2]["line"], 11);
    assert!(
        errors[2]["message"]
            .as_str()
            .unwrap()
            .starts_with("expected"),
        "{v}"
    );
    assert_eq!(c.get("/v1/rules").await.unwrap().1["version"], 1);

    // A new version with list rules; the lists take effect on the next authorization.
    let (s, v) = put_rules(&mut c, BLOCKING).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 2, "{v}");
    assert!(
        v["author"].as_str().unwrap().starts_with('k'),
        "the key's id: {v}"
    );
    assert_eq!(
        decide(&mut c, "r-2", "m-evil", 1, "203.0.113.9").await["decision"],
        "approve"
    );

    let add = |list: &str, value: &str, expires: Option<&str>| {
        let mut body = json!({"value": value});
        if let Some(e) = expires {
            body["expires_at"] = json!(e);
        }
        (format!("/v1/lists/{list}/items"), body)
    };
    let (path, body) = add("blocked_merchants", "m-evil", None);
    let (s, v) = c.post(&path, &body).await.unwrap();
    assert_eq!(s, 201, "{v}");
    let declined = decide(&mut c, "r-3", "m-evil", 2, "198.51.100.1").await;
    assert_eq!(declined["decision"], "decline", "{declined}");
    assert_eq!(declined["response_code"], "59");
    assert_eq!(
        declined["reasons"][0]["rule"], "blocked_merchant",
        "{declined}"
    );
    assert_eq!(declined["matched_rules"], json!(["blocked_merchant"]));

    // The decision record: version, model, matched rules, what it saw; replayed, it agrees.
    let id = declined["authorization_id"].as_str().unwrap();
    let (s, rec) = c.get(&format!("/v1/authorizations/{id}")).await.unwrap();
    assert_eq!(s, 200, "{rec}");
    assert_eq!(rec["ruleset_version"], 2);
    assert_eq!(rec["matched_rules"], json!(["blocked_merchant"]));
    assert_eq!(
        rec["list_hits"],
        json!([{"list": "blocked_merchants", "value": "m-evil"}])
    );
    assert!(
        rec["features"]["card_count_1h"].as_f64().unwrap() >= 2.0,
        "{rec}"
    );
    assert_eq!(
        rec["replay"],
        json!({"matched_rules": ["blocked_merchant"], "agrees": true})
    );
    assert!(!rec["model"].as_str().unwrap().is_empty());
    assert_eq!(
        c.get("/v1/authorizations/au_999999999999").await.unwrap().0,
        404
    );

    // Items of the wrong kind are refused, naming what they should be.
    for (list, value, what) in [
        ("blocked_ips", "300.1.2.3/8", "IP address or range"),
        ("blocked_countries", "XX", "ISO 3166"),
        ("blocked_things", "x", "ending in what it holds"),
    ] {
        let (path, body) = add(list, value, None);
        let (s, v) = c.post(&path, &body).await.unwrap();
        assert_eq!(s, 400, "{list}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(what),
            "{v}"
        );
    }
    let (path, body) = add(
        "blocked_ips",
        "203.0.113.0/24",
        Some("2020-01-01T00:00:00Z"),
    );
    assert_eq!(
        c.post(&path, &body).await.unwrap().0,
        400,
        "an expiry in the past"
    );

    // An IP range with an expiry: held now, approved once it has expired.
    let soon = cardguard_core::Timestamp(
        cardguard_core::Clock::now(&cardguard_core::SystemClock).0 + 2_000,
    )
    .to_rfc3339();
    let (path, body) = add("blocked_ips", "203.0.113.0/24", Some(&soon));
    let (s, v) = c.post(&path, &body).await.unwrap();
    assert_eq!(
        (s, v["value"].as_str()),
        (201, Some("203.0.113.0/24")),
        "{v}"
    );
    let held = decide(&mut c, "r-4", "m-good", 3, "203.0.113.77").await;
    assert_eq!(held["decision"], "hold", "{held}");
    assert_eq!(held["reasons"][0]["rule"], "blocked_network");
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    assert_eq!(
        decide(&mut c, "r-5", "m-good", 4, "203.0.113.78").await["decision"],
        "approve"
    );

    // Removing an item: the next authorization no longer sees it.
    let (s, _) = c
        .request(
            Method::DELETE,
            "/v1/lists/blocked_merchants/items/m-evil",
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, 204);
    let (s, _) = c
        .request(
            Method::DELETE,
            "/v1/lists/blocked_merchants/items/m-evil",
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, 404);
    assert_eq!(
        decide(&mut c, "r-6", "m-evil", 5, "198.51.100.1").await["decision"],
        "approve"
    );
    let (path, body) = add("blocked_merchants", "m-evil", None);
    assert_eq!(c.post(&path, &body).await.unwrap().0, 201);

    // Rollback to the default: a new version with version 1's rules.
    let (s, v) = c
        .send_json(Method::POST, "/v1/rules/versions/1/rollback", None)
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["version"].as_u64(), v["note"].as_str()),
        (Some(3), Some("rollback to 1"))
    );
    assert_eq!(
        decide(&mut c, "r-7", "m-evil", 6, "198.51.100.1").await["decision"],
        "approve"
    );
    let (_, versions) = c.get("/v1/rules/versions").await.unwrap();
    let numbers: Vec<u64> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 2, 1]);
    assert_eq!(c.get("/v1/rules/versions/9").await.unwrap().0, 404);

    // Versions and lists survive a restart; the newest version is in force.
    drop(c);
    drop(server);
    let (child, addr) = common::serve(dir.path(), &config(""));
    let _server = Running(child);
    let mut c = Client::connect(addr, KEY).await.unwrap();
    assert_eq!(c.get("/v1/rules").await.unwrap().1["version"], 3);
    let (_, items) = c.get("/v1/lists/blocked_merchants").await.unwrap();
    assert_eq!(items[0]["value"], "m-evil", "{items}");
    let (_, lists) = c.get("/v1/lists").await.unwrap();
    assert!(
        lists
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == "blocked_ips" && l["kind"] == "ips"),
        "{lists}"
    );
    let (_, v) = c
        .send_json(Method::POST, "/v1/rules/versions/2/rollback", None)
        .await
        .unwrap();
    assert_eq!(v["version"], 4);
    assert_eq!(
        decide(&mut c, "r-8", "m-evil", 7, "198.51.100.1").await["decision"],
        "decline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_rules_file_is_put_in_force_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.toml");
    std::fs::write(&file, BLOCKING).unwrap();
    let extra = format!("[rules]\nfile = \"{}\"\nwatch_secs = 1\n", file.display());
    let (child, addr) = serve(dir.path(), &config(&extra));
    let _server = Running(child);
    let mut c = Client::connect(addr, KEY).await.unwrap();
    let (_, v) = c.get("/v1/rules").await.unwrap();
    assert_eq!(v["version"], 2, "the file's rules, after the default: {v}");
    assert!(v["note"].as_str().unwrap().starts_with("file "));

    // A change that does not compile is logged; the rules in force stay.
    std::fs::write(&file, "[[rules]]\nid = \"x\"\nrule = \"decline if\"\n").unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(c.get("/v1/rules").await.unwrap().1["version"], 2);

    std::fs::write(
        &file,
        "[[rules]]\nid = \"big\"\nrule = \"decline if :amount: > 100000\"\n",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = c.get("/v1/rules").await.unwrap();
        if v["version"] == 3 {
            assert_eq!(v["rules"][0]["id"], "big");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the change was not taken: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn rules_check_validates_offline_with_the_same_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, BLOCKING).unwrap();
    let (_, out) = exits(cardguard().args(["rules", "check"]).arg(&good), &[0]);
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("2 rules, ok (lists: @blocked_merchants, @blocked_ips)"),
        "{out}"
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[rules]]\nid = \"a\"\nrule = \"decline if :amont: > 1\"\n",
    )
    .unwrap();
    let (_, out) = exits(cardguard().args(["rules", "check"]).arg(&bad), &[1]);
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("bad.toml:3:20: rule a: unknown attribute :amont:"),
        "{out}"
    );
    let (_, out) = exits(cardguard().args(["rules", "default"]), &[0]);
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("id = \"impossible_travel\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_in_shadow_mode_is_recorded_and_compared_without_acting() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = serve(dir.path(), &config(""));
    let _server = Running(child);
    let mut c = Client::connect(addr, KEY).await.unwrap();
    let card = common::tokyo_card(PAN);
    assert_eq!(c.post("/v1/cards", &card).await.unwrap().0, 201);
    assert_eq!(c.get("/v1/rules/shadow").await.unwrap().0, 404);

    let candidate = "[[rules]]\nid = \"no_evil\"\nrule = \"decline if :merchant_id: = 'm-evil'\"\n";
    let (s, v) = c
        .send_json(
            Method::PUT,
            "/v1/rules/shadow",
            Some(("application/toml", candidate.as_bytes().to_vec())),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, v["version"].as_u64(), v["note"].as_str()),
        (200, Some(2), Some("shadow")),
        "{v}"
    );
    assert_eq!(
        c.get("/v1/rules").await.unwrap().1["version"],
        1,
        "the shadow is not in force"
    );

    let a = decide(&mut c, "s-1", "m-evil", 0, "198.51.100.1").await;
    assert_eq!(a["decision"], "approve", "the shadow does not act: {a}");
    decide(&mut c, "s-2", "m-good", 1, "198.51.100.1").await;
    let id = a["authorization_id"].as_str().unwrap();
    let (_, rec) = c.get(&format!("/v1/authorizations/{id}")).await.unwrap();
    assert_eq!(rec["shadow"]["decision"], "decline", "{rec}");
    assert_eq!(rec["shadow"]["ruleset_version"], 2);
    assert_eq!(rec["shadow"]["matched_rules"], json!(["no_evil"]));

    let (_, sh) = c.get("/v1/rules/shadow").await.unwrap();
    let cmp = &sh["comparison"];
    assert_eq!(
        (
            cmp["decisions"].as_u64(),
            cmp["agree"].as_u64(),
            cmp["would_decline"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{sh}"
    );
    assert_eq!(sh["ruleset"]["rules"][0]["id"], "no_evil");
    let (_, m) = c.get_raw("/metrics").await.unwrap();
    let m = String::from_utf8(m.to_vec()).unwrap();
    assert!(
        m.contains("cardguard_shadow_decisions_total{active=\"approve\",shadow=\"decline\"} 1"),
        "{m}"
    );

    // Promoted: in force as the next version, and shadow mode ends.
    let (s, v) = c
        .send_json(Method::POST, "/v1/rules/shadow/promote", None)
        .await
        .unwrap();
    assert_eq!((s, v["version"].as_u64()), (200, Some(3)), "{v}");
    assert_eq!(v["note"], "promoted from shadow 2");
    assert_eq!(c.get("/v1/rules/shadow").await.unwrap().0, 404);
    assert_eq!(
        decide(&mut c, "s-3", "m-evil", 2, "198.51.100.1").await["decision"],
        "decline"
    );
    let (s, _) = c
        .request(Method::DELETE, "/v1/rules/shadow", None)
        .await
        .unwrap();
    assert_eq!(s, 404);
}

#[test]
fn a_backtest_scores_every_rule_against_the_labels() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sim.csv");
    exits(
        cardguard()
            .args(["simulate", "--cards", "300", "--days", "20", "--out"])
            .arg(&data),
        &[0],
    );
    let rules = dir.path().join("rules.toml");
    let mut text = cardguard_engine::DEFAULT_RULES.to_owned();
    text.push_str(
        "\n[[rules]]\nid = \"big_online\"\nrule = \"hold if :amount: > 50000 and :channel: = 'ecommerce'\"\n",
    );
    std::fs::write(&rules, text).unwrap();
    let report = dir.path().join("report");
    let (_, out) = exits(
        cardguard()
            .args(["backtest", "--json", "--transactions"])
            .arg(&data)
            .arg("--rules")
            .arg(&rules)
            .arg("--report")
            .arg(&report),
        &[0],
    );
    let v: Value = serde_json::from_slice(&out).unwrap();
    let o = &v["overall"];
    assert!(o["transactions"].as_u64().unwrap() > 5_000, "{o}");
    assert!(o["frauds"].as_u64().unwrap() > 50, "{o}");
    let decided: u64 = o["decisions"]
        .as_object()
        .unwrap()
        .values()
        .map(|x| x.as_u64().unwrap())
        .sum();
    assert_eq!(decided, o["transactions"].as_u64().unwrap());
    let rules = v["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 8);
    let rule = |id: &str| rules.iter().find(|r| r["id"] == id).unwrap();
    // The simulator's card testing: the rule's hits are nearly all fraud.
    let ct = rule("card_testing");
    assert!(ct["fraud_hits"].as_u64().unwrap() > 10, "{ct}");
    assert!(ct["precision"].as_f64().unwrap() > 0.9, "{ct}");
    let big = rule("big_online");
    assert!(big["hits"].as_u64().unwrap() > 0, "{big}");
    let recall = |r: &Value| r["recall"].as_f64().unwrap();
    assert!(rules.iter().all(|r| (0.0..=1.0).contains(&recall(r))));
    let html = std::fs::read_to_string(report.join("backtest.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("big_online"),
        "{html}"
    );
    assert!(report.join("backtest.json").is_file());
}
