//! `cardguard cards import`: CSV and JSON Lines into a data directory, and through a running
//! server's batch route; a bad row names its line and field, the rest goes in.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn pan(i: usize) -> String {
    let body = format!("411111{i:09}");
    let d = cardguard_cardsec::luhn::check_digit(&body).unwrap();
    format!("{body}{d}")
}

fn import(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cardguard"))
        .args(["cards", "import"])
        .arg(file)
        .args(args)
        .env("CARDGUARD_LOG", "warn")
        .output()
        .unwrap()
}

fn csv(rows: usize, bad_at: usize) -> String {
    let mut s = String::from(
        "number,expiry,cardholder_id,product,status,service_code,csc.method,csc.value,contact.language,contact.email,notifications.channels,home.country,home.lat,home.lon\n",
    );
    for i in 0..rows {
        let number = if i == bad_at {
            "4111111111111112".to_owned()
        } else {
            pan(i)
        };
        s.push_str(&format!(
            "{number},2029-12,ch-{i},classic,active,101,stored,123,ja,c{i}@example.jp,email;push,JP,35.68,139.76\n"
        ));
    }
    s
}

fn enrolled(data: &Path) -> usize {
    let config = cardguard_app::Config::default();
    let (app, s) = cardguard_app::App::open(
        config,
        data,
        std::sync::Arc::new(cardguard_core::SystemClock),
    )
    .unwrap();
    drop(app);
    s.cards
}

#[test]
fn csv_and_json_lines_go_in_and_bad_rows_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("cards.csv");
    std::fs::write(&file, csv(25, 3)).unwrap();
    let out = import(
        &["--data-dir", data.to_str().unwrap(), "--batch", "10"],
        &file,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a refused row fails the run: {err}");
    // The header is line 1: the fourth card is on line 5.
    assert!(err.contains("line 5: number"), "{err}");
    assert!(
        err.contains("24 cards enrolled (24 new, 0 updated"),
        "{err}"
    );
    assert!(
        !err.contains("4111111111111112"),
        "no card number echoed: {err}"
    );
    assert_eq!(enrolled(&data), 24);

    // JSON Lines: one enrollment body a line; the same cards again are updates.
    let jsonl = dir.path().join("cards.jsonl");
    let mut text = String::new();
    for i in [0usize, 1, 2] {
        text.push_str(&format!(
            "{{\"number\":\"{}\",\"expiry\":\"2029-12\",\"cardholder_id\":\"ch-{i}\",\"product\":\"gold\",\"status\":\"active\",\"service_code\":\"101\",\"csc\":{{\"method\":\"stored\",\"value\":\"123\"}},\"contact\":{{\"language\":\"en\"}}}}\n\n",
            pan(i)
        ));
    }
    text.push_str("{\"number\": \"4111\"}\n");
    std::fs::write(&jsonl, text).unwrap();
    let out = import(&["--data-dir", data.to_str().unwrap()], &jsonl);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 cards enrolled (0 new, 3 updated"), "{err}");
    assert!(err.contains("line 7: expiry is required"), "{err}");
    assert_eq!(enrolled(&data), 24);

    // An unknown column stops the run before anything goes in.
    let odd = dir.path().join("odd.csv");
    std::fs::write(&odd, "number,shoe_size\n4111,9\n").unwrap();
    let out = import(&["--data-dir", data.to_str().unwrap()], &odd);
    assert!(String::from_utf8_lossy(&out.stderr).contains("shoe_size"));
}

#[test]
fn through_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let key = "import-test-key-0123456789";
    let (mut child, addr) = common::serve(
        dir.path(),
        &format!("[[auth.api_keys]]\nkey = \"{key}\"\nscopes = [\"admin\"]\n"),
    );
    let addr = addr.to_string();
    let file = dir.path().join("cards.csv");
    std::fs::write(&file, csv(30, 7)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cardguard"))
        .args(["cards", "import"])
        .arg(&file)
        .args(["--server", &addr, "--batch", "8"])
        .env("CARDGUARD_API_KEY", key)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let _ = child.kill();
    let _ = child.wait();
    assert!(err.contains("29 cards enrolled (29 new"), "{err}");
    assert!(err.contains("line 9: number"), "{err}");
}
