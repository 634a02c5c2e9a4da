//! The audit trail end to end: a server records the changes its API keys make (rules, lists,
//! cards, labels; not the authorizations) and the cardholder's answers, `keys create` adds a
//! key change beside it, `cardguard audit verify` accepts the trail, and names the entry
//! that was changed, removed or moved.

mod common;

use cardguard_server::client::{Client, Method};
use serde_json::json;

const KEY: &str = "audit-test-key-0123456789abcdef";
const PAN: &str = "4123456789012349";

#[tokio::test]
async fn actions_are_chained_and_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[[auth.api_keys]]\nname = \"ops\"\nkey = \"{KEY}\"\nscopes = [\"admin\", \"authorize\"]\n[engine]\nmax_clock_skew_secs = 0\n"
    );
    let (child, addr) = common::serve(dir.path(), &cfg);
    let server = common::Running(child);
    let mut c = Client::connect(addr, KEY).await.unwrap();
    assert_eq!(
        c.post("/v1/cards", &common::tokyo_card(PAN))
            .await
            .unwrap()
            .0,
        201
    );
    let (s, _) = c
        .post("/v1/lists/blocked_cards/items", &json!({"value": PAN}))
        .await
        .unwrap();
    assert_eq!(
        s, 400,
        "a card list takes tokens, and the refusal is audited too"
    );
    let (s, _) = c
        .send_json(
            Method::PUT,
            "/v1/rules",
            Some((
                "application/toml",
                b"[[rules]]\nid = \"big\"\ndescription = \"big\"\nrule = \"hold if :amount: > 1000000\"\n".to_vec(),
            )),
        )
        .await
        .unwrap();
    assert_eq!(s, 200);
    let (_, a) = c
        .post(
            "/v1/authorizations",
            &json!({"id": "a-1", "timestamp": "2026-12-01T10:00:00+09:00",
                "card": {"number": PAN, "expiry": "2029-12"},
                "amount": {"value": 3000, "currency": "JPY"},
                "merchant": {"id": "m-1", "terminal_id": "t-1", "name": "SHOP", "mcc": "5411",
                             "country": "JP", "city": "Tokyo"},
                "channel": "card_present", "type": "purchase"}),
        )
        .await
        .unwrap();
    let id = a["authorization_id"].as_str().unwrap();
    let (s, _) = c
        .post(
            "/v1/labels",
            &json!({"authorization_id": id, "fraud": true}),
        )
        .await
        .unwrap();
    assert_eq!(s, 200);
    drop(server);
    let data = dir.path().join("data");
    common::ok(
        common::cardguard()
            .args([
                "keys",
                "create",
                "--name",
                "ops2",
                "--scopes",
                "admin",
                "--data-dir",
            ])
            .arg(&data),
    );

    let out = String::from_utf8(common::ok(
        common::cardguard().args(["audit", "verify"]).arg(&data),
    ))
    .unwrap();
    assert!(out.contains("the chain verifies"), "{out}");
    let trail = data.join("audit.log");
    let lines: Vec<String> = std::fs::read_to_string(&trail)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let text = lines.join("\n");
    assert!(!text.contains(PAN), "no card number in the trail");
    for want in [
        "data keys created",
        "POST",
        "/v1/cards",
        "/v1/lists/blocked_cards/items",
        "PUT",
        "/v1/rules",
        "/v1/labels",
        "keys create",
        "\"actor\":\"key:k",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    assert!(
        !text.contains("/v1/authorizations"),
        "traffic is not audited: {text}"
    );
    assert_eq!(lines.len(), 6, "{text}");

    let bad = |ls: &[String]| {
        std::fs::write(&trail, ls.join("\n") + "\n").unwrap();
        let (code, out) = common::exits(
            common::cardguard().args(["audit", "verify"]).arg(&data),
            &[1],
        );
        assert_eq!(code, 1);
        String::from_utf8(out).unwrap()
    };
    let mut changed = lines.clone();
    changed[3] = changed[3].replace("\"200\"", "\"403\"");
    assert!(bad(&changed).contains("entry 4 was changed"));
    let mut removed = lines.clone();
    removed.remove(2);
    assert!(bad(&removed).contains("entry 4 follows entry 2"));
    let mut moved = lines.clone();
    moved.swap(1, 2);
    assert!(bad(&moved).contains("entry 3 follows entry 1"));
}
