//! Health tells the truth when the event log cannot be written: a write that fails (here
//! through the file size limit, as a full disk fails it) makes `/v1/health` unavailable and
//! every authorization a clean error; once there is room again the writer takes appends
//! without a restart, nothing answered is lost and no temporary file is left. Its own test
//! binary: the file size limit is the process's.

mod common;

use cardguard_app::{AppError, ClientId};
use common::authorization;
use std::sync::Arc;
use std::time::Instant;

fn set_file_size_limit(bytes: Option<u64>) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write a plain struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim), 0);
        lim.rlim_cur = bytes.unwrap_or(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_makes_health_unavailable_and_the_writer_recovers_once_there_is_room() {
    // A write past the limit fails with EFBIG instead of killing the process.
    // SAFETY: ignoring a signal.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = Arc::new(common::open(&data, &[]));
    let client = ClientId::local("test");
    let first = app
        .authorize(authorization("a-0"), 0, &client, Instant::now())
        .await
        .unwrap();
    assert_eq!(app.health().status, "ok");

    let log_len = std::fs::metadata(data.join("events.log")).unwrap().len();
    set_file_size_limit(Some(log_len + 40));
    for _ in 0..2 {
        let e = app
            .authorize(authorization("a-1"), 0, &client, Instant::now())
            .await
            .unwrap_err();
        assert!(matches!(e, AppError::Unavailable(_)), "{e:?}");
        let h = app.health();
        assert_eq!(h.status, "unavailable", "{h:?}");
        assert!(!h.is_available());
        assert!(h.problems[0].contains("once the disk has room"), "{h:?}");
    }

    set_file_size_limit(None);
    let h = app.health();
    assert_eq!(h.status, "ok", "{h:?}");
    let second = app
        .authorize(authorization("a-1"), 0, &client, Instant::now())
        .await
        .unwrap();
    assert_eq!(second.authorization_id, "au_000000000001");
    let again = app
        .authorize(authorization("a-0"), 0, &client, Instant::now())
        .await
        .unwrap();
    assert_eq!(again, first);
    app.snapshot_now();
    let leftovers: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    drop(app);

    // The log holds both, whole: a start cuts nothing.
    let app = common::open(&data, &[]);
    assert_eq!(app.stats().engine.authorizations, 2);
}
