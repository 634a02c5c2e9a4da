//! One process at a time on a data directory: a second server, and the commands that must not
//! run beside one (`log verify`, `log repair`; everything that opens the application, such as
//! `cards import --data-dir`, takes the same lock), are refused with the holder's process id;
//! once the holder is gone they run.

mod common;

const KEY: &str = "lock-test-key-0123456789abcdef";

#[test]
fn a_second_process_on_a_live_data_directory_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("[[auth.api_keys]]\nkey = \"{KEY}\"\nscopes = [\"admin\"]\n");
    let (mut first, _) = common::serve(dir.path(), &config);
    let pid = first.id().to_string();
    let data = dir.path().join("data");
    let second = common::cardguard()
        .args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--config")
        .arg(dir.path().join("c.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second server started: {err}");
    assert!(err.contains(&format!("in use by process {pid}")), "{err}");
    for cmd in [&["log", "verify"][..], &["log", "repair"]] {
        let out = common::cardguard().args(cmd).arg(&data).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd:?} ran beside the server");
        assert!(
            err.contains(&format!("in use by process {pid}")),
            "{cmd:?}: {err}"
        );
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // The kernel let go of the lock with the process.
    common::ok(common::cardguard().args(["log", "verify"]).arg(&data));
}
