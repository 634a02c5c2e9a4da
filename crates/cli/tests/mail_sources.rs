//! `cardguard mail scan` reads a single message, an mbox, a Maildir and a folder holding all of
//! them, telling each file apart by its content.

use std::process::Command;

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

    let out = Command::new(env!("CARGO_BIN_EXE_cardguard"))
        .args(["mail", "scan", "--json"])
        .arg(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
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
    let out = Command::new(env!("CARGO_BIN_EXE_cardguard"))
        .args(["mail", "scan"])
        .arg(root)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.trim_end()
            .ends_with("5 messages: 3 phishing, 0 suspicious, 2 clean, 0 unreadable"),
        "{text}"
    );
}
