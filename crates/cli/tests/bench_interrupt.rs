//! An interrupted benchmark leaves nothing behind: `cardguard bench http` (or `iso8583`)
//! stopped with SIGINT (Ctrl-C) or SIGTERM in the middle of its load kills the server it
//! started and removes that server's data directory (gigabytes after a million-card run);
//! `cardguard bench cases` removes its store's temporary directory.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How the bench ended, within a minute of its signal (killed and failed otherwise).
fn exit_of(bench: &mut std::process::Child) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(s) = bench.try_wait().expect("wait") {
            return s;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = bench.kill();
            panic!("the bench did not stop");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a child wrote to `file`.
fn text_of(file: &tempfile::NamedTempFile) -> String {
    let mut text = String::new();
    file.reopen()
        .expect("stderr file")
        .read_to_string(&mut text)
        .expect("stderr read");
    text
}

fn interrupted_by(bench: &str, signal: i32) {
    // Its errors in a file: a server left running would hold a pipe open.
    let errors = tempfile::NamedTempFile::new().expect("a file for stderr");
    let mut bench = Command::new(env!("CARGO_BIN_EXE_cardguard"))
        .args([
            "bench",
            bench,
            "--cards",
            "200",
            "--rate",
            "50",
            "--duration",
            "600",
        ])
        .stdout(Stdio::piped())
        .stderr(errors.reopen().expect("stderr file"))
        .spawn()
        .expect("the bench starts");
    let mut lines = BufReader::new(bench.stdout.take().expect("stdout")).lines();
    let mut next = || {
        lines
            .next()
            .expect("the bench goes on")
            .expect("a line of output")
    };
    // "server: http://ADDR (pid N, started for this run)"
    let pid: u32 = loop {
        if let Some(rest) = next().split("(pid ").nth(1) {
            break rest
                .split(',')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("the server's pid");
        }
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("the server runs");
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let data = args
        .iter()
        .position(|a| a == "--data-dir")
        .map(|i| PathBuf::from(&args[i + 1]))
        .expect("the server's --data-dir");
    let run_dir = data.parent().expect("a temporary directory").to_path_buf();
    while !next().starts_with("enrolled") {}
    // The load is running.
    std::thread::sleep(Duration::from_millis(500));
    assert!(data.exists(), "the server has its data directory");
    // SAFETY: kill reads no memory; the pid is our child's.
    assert_eq!(unsafe { libc::kill(bench.id() as i32, signal) }, 0);
    let status = exit_of(&mut bench);
    let server_left = Path::new(&format!("/proc/{pid}")).exists();
    if server_left {
        // SAFETY: as above; the server the bench left is stopped before the test fails.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let err = text_of(&errors);
    assert!(!status.success());
    assert!(
        err.contains("the benchmark's server and its data are removed"),
        "{err}"
    );
    assert!(!server_left, "the server still ran");
    let left = run_dir.exists();
    if left {
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    assert!(!left, "the data directory was left: {}", run_dir.display());
}

#[test]
fn a_bench_interrupted_with_ctrl_c_removes_its_server_and_data() {
    interrupted_by("http", libc::SIGINT);
}

#[test]
fn a_bench_terminated_removes_its_server_and_data() {
    interrupted_by("http", libc::SIGTERM);
}

#[test]
fn an_iso8583_bench_interrupted_removes_its_server_and_data() {
    interrupted_by("iso8583", libc::SIGINT);
}

#[test]
fn a_cases_bench_interrupted_in_its_load_removes_its_store() {
    let tmp = tempfile::tempdir().expect("a directory for the bench's temporary files");
    let errors = tempfile::NamedTempFile::new().expect("a file for stderr");
    let mut bench = Command::new(env!("CARGO_BIN_EXE_cardguard"))
        .args([
            "bench",
            "cases",
            "--authorizations",
            "50000000",
            "--cases",
            "10",
            "--reads",
            "10",
            "--disputes",
            "0",
        ])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(errors.reopen().expect("stderr file"))
        .spawn()
        .expect("the bench starts");
    let mut lines = BufReader::new(bench.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("a line of output");
    assert_eq!(first, "store: sqlite");
    // The load is running (fifty million rows take minutes).
    std::thread::sleep(Duration::from_millis(1000));
    let entries = || {
        std::fs::read_dir(tmp.path())
            .expect("the directory")
            .count()
    };
    assert_eq!(entries(), 1, "the store's temporary directory is there");
    // SAFETY: kill reads no memory; the pid is our child's.
    assert_eq!(unsafe { libc::kill(bench.id() as i32, libc::SIGINT) }, 0);
    let status = exit_of(&mut bench);
    let err = text_of(&errors);
    assert!(!status.success());
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(entries(), 0, "the store's directory was left");
}
