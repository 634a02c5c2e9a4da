//! `cardguard mail scan` reads a single message, an mbox, a Maildir and a folder holding all of
//! them, telling each file apart by its content, and exits as scanners do: 0 clean, 1 flagged,
//! 2 error (a file that is not a mail message is reported as such, not given a verdict).

mod common;

use common::{cardguard, exits};

const PHISH: &str = "From: eBay <aw-confirm@ebay-secure-login.com>\nSubject: Your account will be suspended\nContent-Type: text/html\n\n<p>Please verify your account within 24 hours: <a href=\"http://61.12.3.4/ebay/\">https://signin.ebay.com/</a></p>\n";
const HAM: &str = "From: Hanako <hanako@example.jp>\nSubject: lunch\n\nSee you at noon.\n";

#[test]
fn files_mboxes_maildirs_and_folders() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("one.eml"), PHISH).unwrap();
    std::fs::write(
        root.join("box.mbox"),
        format!(
            "From a@b Mon Jan  1 00:00:00 2024\n{HAM}\nFrom c@d Mon Jan  1 00:00:01 2024\n{PHISH}\n"
        ),
    )
    .unwrap();
    for sub in ["Maildir/cur", "Maildir/new", "Maildir/tmp"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::write(root.join("Maildir/cur/1700000000.1.host:2,S"), HAM).unwrap();
    std::fs::write(root.join("Maildir/new/1700000001.2.host"), PHISH).unwrap();
    std::fs::write(root.join("Maildir/tmp/partial"), "half a message").unwrap();

    let (_, stdout) = exits(cardguard().args(["mail", "scan", "--json"]).arg(root), &[1]);
    let rows: Vec<serde_json::Value> = String::from_utf8(stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // one.eml, two in the mbox, two in the Maildir; tmp/ holds messages still being written.
    assert_eq!(rows.len(), 5, "{rows:#?}");
    let flagged = rows.iter().filter(|r| r["verdict"] != "clean").count();
    assert_eq!(flagged, 3, "{rows:#?}");
    for r in rows.iter().filter(|r| r["verdict"] != "clean") {
        assert_eq!(r["brand"], "eBay");
        assert!(!r["reasons"].as_array().unwrap().is_empty());
    }
    // The table form ends with a count.
    let (_, stdout) = exits(cardguard().args(["mail", "scan"]).arg(root), &[1]);
    let text = String::from_utf8(stdout).unwrap();
    assert!(
        text.trim_end()
            .ends_with("5 messages: 3 phishing, 0 suspicious, 2 clean, 0 unreadable"),
        "{text}"
    );
}

#[test]
fn scan_verifies_senders_against_a_zone_file_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone.txt");
    std::fs::write(
        &zone,
        "example.jp TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n_dmarc.example.jp TXT \"v=DMARC1; p=quarantine\"\n",
    )
    .unwrap();
    let msg = dir.path().join("m.eml");
    std::fs::write(
        &msg,
        format!("Received: from x.example (x.example [203.0.113.5]) by mx.example.jp; Mon, 2 Nov 2026 10:00:00 +0900\nReturn-Path: <hanako@example.jp>\n{HAM}"),
    )
    .unwrap();
    let (_, stdout) = exits(
        cardguard()
            .args(["mail", "scan", "--json", "--dns-zone"])
            .arg(&zone)
            .arg(&msg),
        &[0, 1],
    );
    let v: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let auth: Vec<(&str, &str)> = v["sender_auth"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["method"].as_str().unwrap(), c["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        auth,
        [("dkim", "none"), ("spf", "fail"), ("dmarc", "fail")],
        "{v}"
    );
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

    std::fs::write(
        &zone,
        "example.jp TXT \"v=spf1 -all\"\nexample.jp A not-an-ip\n",
    )
    .unwrap();
    let out = cardguard()
        .args(["mail", "scan", "--dns-zone"])
        .arg(&zone)
        .arg(&msg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zone line 2"), "{err}");
}

#[test]
fn exit_codes_are_a_scanners_and_a_file_that_is_no_message_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.eml");
    std::fs::write(&clean, HAM).unwrap();
    let phish = dir.path().join("phish.eml");
    std::fs::write(&phish, PHISH).unwrap();
    let notes = dir.path().join("notes.md");
    std::fs::write(
        &notes,
        "# Notes\n\nVerify your account now: http://61.12.3.4:8080/login and win a prize!\n",
    )
    .unwrap();
    exits(cardguard().args(["mail", "scan"]).arg(&clean), &[0]);
    let (_, out) = exits(cardguard().args(["mail", "scan"]).arg(&phish), &[1]);
    // The table names the weightiest reasons with their weights.
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(" +"), "{text}");
    let (_, out) = exits(cardguard().args(["mail", "scan"]).arg(&notes), &[2]);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("not a mail message") && !text.contains("phishing "),
        "{text}"
    );
    // Flagged wins over unreadable, as with virus scanners.
    exits(cardguard().args(["mail", "scan"]).arg(dir.path()), &[1]);
    exits(
        cardguard()
            .args(["mail", "scan"])
            .arg(dir.path().join("missing")),
        &[2],
    );
}
