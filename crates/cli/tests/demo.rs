//! `serve --demo` tells the truth: it says which staged frauds it caught and which it missed,
//! counts the wrong security codes of card testing consistently, shows UTC beside local
//! times, counts a retried request once, and starts from an empty demo directory each time
//! (saying so), refusing a directory that holds other data.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Runs the demo in `dir` until it says it is done (or, with `until`, until a line holding
/// it); returns its output lines.
fn demo(dir: &std::path::Path, until: &str) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cardguard"))
        .args(["serve", "--demo", "--http", "127.0.0.1:0", "--config"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/demo.toml"
        ))
        .current_dir(dir)
        .env("CARDGUARD_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let end = line.contains(until);
        out.push(line);
        if end {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    out
}

#[test]
fn the_demo_says_what_it_caught_and_counts_honestly() {
    let dir = tempfile::tempdir().unwrap();
    let out = demo(dir.path(), "demo: done");
    let text = out.join("\n");
    assert!(
        text.contains("demo: done"),
        "the demo did not finish: {text}"
    );

    // Caught and missed, each staged fraud with how.
    let verdicts: Vec<&String> = out
        .iter()
        .filter(|l| l.starts_with("  caught ") || l.starts_with("  MISSED "))
        .collect();
    assert_eq!(verdicts.len(), 4, "{text}");
    let caught = verdicts
        .iter()
        .filter(|l| l.starts_with("  caught"))
        .count();
    assert!(
        text.contains(&format!("demo: caught {caught} of the 4 staged frauds")),
        "{text}"
    );
    for v in &verdicts {
        assert!(v.contains(": "), "a verdict without its how: {v}");
    }

    // Card testing: the counts go 1 earlier, then 3 and 4 with the current one.
    let section: Vec<&String> = out
        .iter()
        .skip_while(|l| !l.contains("-- card testing"))
        .take_while(|l| !l.contains("-- wrong PINs"))
        .filter(|l| l.contains("CARD_TESTING"))
        .collect();
    let counts: Vec<&str> = section
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(counts, ["1", "3", "4"], "{section:#?}");
    assert!(section[0].contains("earlier") && section[1].contains("this one included"));

    // Times carry UTC beside the local time.
    let cloned: Vec<&String> = out
        .iter()
        .filter(|l| l.contains("****2349"))
        .take(2)
        .collect();
    assert!(cloned.iter().all(|l| l.contains(" UTC)")), "{cloned:#?}");

    // The summary counts each authorization once: the kinds add up to the total, and the
    // retry did not add one.
    let done = out.iter().find(|l| l.starts_with("demo: done")).unwrap();
    let total: u64 = done.split_whitespace().nth(2).unwrap().parse().unwrap();
    let kinds: u64 = done
        .split(": ")
        .nth(2)
        .unwrap()
        .split(" (")
        .next()
        .unwrap()
        .split(", ")
        .map(|k| k.split(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, kinds, "{done}");
    assert!(text.contains("same authorization_id: true"), "{text}");

    // A second run starts afresh in the demo's own directory, and says so.
    let again = demo(dir.path(), "starting afresh");
    assert!(
        again[0].contains("starting afresh in cardguard-demo"),
        "{again:#?}"
    );
    // A directory with other data is refused.
    let other = dir.path().join("mine");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("events.log"), b"").unwrap();
    let out = common::cardguard()
        .args(["serve", "--demo", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds other data"));
}
