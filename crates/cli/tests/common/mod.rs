//! Helpers shared by the command's tests: run `cardguard` and insist that it succeeded, or
//! start it as a server.

#![allow(dead_code)] // each test binary uses some of them

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The `cardguard` binary under test, ready for arguments.
pub fn cardguard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cardguard"))
}

/// Runs the command, failing the test with its stderr unless it succeeds; returns stdout.
pub fn ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs the command, failing the test with its stderr unless it exits with one of `codes`;
/// returns the code and stdout.
pub fn exits(cmd: &mut Command, codes: &[i32]) -> (i32, Vec<u8>) {
    let out = cmd.output().expect("the command runs");
    let code = out.status.code().unwrap_or(-1);
    assert!(
        codes.contains(&code),
        "exit code {code}, expected one of {codes:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, out.stdout)
}

/// A child process that is killed when dropped, so that a failing test leaves no server
/// behind (holding the test's output open).
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cardguard serve` on port 0 with `config` (TOML, written to `dir/c.toml`) and the
/// data directory `dir/data`; returns the process and the address it listens on.
pub fn serve(dir: &Path, config: &str) -> (Child, SocketAddr) {
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, config).unwrap();
    start(dir, Some(&cfg))
}

/// Starts `cardguard serve` on port 0 with no config (the keys of the data directory).
pub fn serve_without_keys(dir: &Path) -> (Child, SocketAddr) {
    start(dir, None)
}

fn start(dir: &Path, config: Option<&Path>) -> (Child, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cardguard"));
    cmd.args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"));
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let mut child = cmd
        .env("CARDGUARD_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(a) = line.strip_prefix("cardguard listening on http://") {
            break a.parse().unwrap();
        }
    };
    (child, addr)
}

/// An enrollment body for a test card in Tokyo: a stored security code of 123, a Japanese
/// email contact, the expiry 2029-12.
pub fn tokyo_card(pan: &str) -> serde_json::Value {
    serde_json::json!({"number": pan, "expiry": "2029-12", "cardholder_id": "ch-1", "product": "gold",
        "status": "active", "service_code": "101", "csc": {"method": "stored", "value": "123"},
        "contact": {"email": "hanako@example.jp", "language": "ja"},
        "home": {"country": "JP", "city": "Tokyo", "lat": 35.68, "lon": 139.76}})
}
