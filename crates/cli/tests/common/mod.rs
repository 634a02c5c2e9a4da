//! Helpers shared by the command's tests: run `cardguard` and insist that it succeeded.

use std::process::Command;

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
