//! Side effects after validation: a start that cannot bind its address mints no API key and
//! leaves no data directory behind, so the next start that does bind shows the key; a key
//! minted later with `cardguard keys create` works at the next start. User errors print the
//! product's message without a backtrace, even with `RUST_BACKTRACE=1`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn a_start_that_cannot_bind_changes_nothing_and_the_next_one_shows_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = common::cardguard()
        .args(["serve", "--http", &addr, "--data-dir"])
        .arg(&data)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success());
    assert!(!stdout.contains("API key"), "{stdout}");
    assert!(stderr.contains(&format!("binding {addr}")), "{stderr}");
    assert!(
        !stderr.to_lowercase().contains("backtrace"),
        "a user error came with a backtrace: {stderr}"
    );
    assert!(
        !data.exists(),
        "the failed start created the data directory"
    );
    drop(taken);

    // The next start binds, creates the directory, and shows the key once.
    let mut child = Command::new(env!("CARGO_BIN_EXE_cardguard"))
        .args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("CARDGUARD_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut shown = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        shown |= line.contains("shown only this once");
        if line.starts_with("cardguard listening on") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(shown, "the first start that bound showed no key");

    // A key minted for the directory: printed once, its hash kept, taken at the next start.
    let out = common::ok(common::cardguard().args([
        "keys",
        "create",
        "--name",
        "ops",
        "--scopes",
        "admin,metrics",
        "--data-dir",
        data.to_str().unwrap(),
    ]));
    let text = String::from_utf8(out).unwrap();
    let key = text.lines().nth(1).unwrap().trim().to_owned();
    assert!(key.starts_with("cg_"), "{text}");
    let stored = std::fs::read_to_string(data.join("api-keys.toml")).unwrap();
    assert!(
        stored.contains("\"ops\"") && !stored.contains(&key),
        "{stored}"
    );
    let (mut child, addr) = common::serve_without_keys(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = cardguard_server::client::Client::connect(addr, &key)
            .await
            .unwrap();
        let (s, _) = c.get("/v1/stats").await.unwrap();
        assert_eq!(s, 200);
    });
    child.kill().unwrap();
    child.wait().unwrap();
    // The same name twice is refused; an unknown scope is named.
    let out = common::cardguard()
        .args([
            "keys",
            "create",
            "--name",
            "ops",
            "--scopes",
            "admin",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
    let out = common::cardguard()
        .args([
            "keys",
            "create",
            "--name",
            "x",
            "--scopes",
            "root",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scope \"root\""));
}
