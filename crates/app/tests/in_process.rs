//! The application in process: a consumer registered with `App::spawn_consumer` sees the
//! authorizations the application logs, its cursor ends where the log does, and every file
//! the application writes in its data directory is its owner's alone.

mod common;

use common::authorization;
use std::sync::Arc;
use std::time::Instant;

#[tokio::test]
async fn a_consumer_in_process_follows_the_authorizations_and_every_file_is_private() {
    // The common umask, which leaves files readable by everyone unless a mode says not.
    // SAFETY: umask only sets the process's file-creation mask.
    unsafe { libc::umask(0o022) };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = Arc::new(common::open(&data, &[]));
    let (consumer, seen) = common::follow_authorizations(&app);
    for id in ["a-1", "a-2", "a-3"] {
        app.authorize(
            authorization(id),
            0,
            &cardguard_app::ClientId::local("test"),
            Instant::now(),
        )
        .await
        .unwrap();
    }
    common::until_seen(&seen, 3).await;
    let saved = consumer.stop().unwrap();
    assert_eq!(*seen.lock().unwrap(), ["a-1", "a-2", "a-3"]);
    assert_eq!(
        saved,
        app.events().durable().unwrap(),
        "the cursor ends at the log's end"
    );
    app.snapshot_now();
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    let mut files = Vec::new();
    let mut dirs = vec![data.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                assert_eq!(mode(&p), 0o700, "{}", p.display());
                dirs.push(p);
            } else {
                files.push((
                    p.strip_prefix(&data).unwrap().display().to_string(),
                    mode(&p),
                ));
            }
        }
    }
    files.sort();
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    for expected in [
        "cards.db",
        "events.log",
        "keys.toml",
        "consumers/test.cursor",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("snapshots/") && n.ends_with(".seg")),
        "no snapshot segment in {names:?}"
    );
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    for (name, m) in files {
        assert_eq!(m, 0o600, "{name} is {m:o}");
    }
}
