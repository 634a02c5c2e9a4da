//! Fuzzes opening an event log file of arbitrary bytes: it opens (cutting a torn tail) or
//! reports damage, and never panics; a repair of the same bytes always leaves a log that
//! verifies and opens without cutting anything.
#![no_main]
use cardguard_store::{Durability, EventLog};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("events.log");
    std::fs::write(&p, data).unwrap();
    let _ = EventLog::open(&p, Durability::Write { sync_every_ms: 1000 }, 0, |_| Ok(()));
    std::fs::write(&p, data).unwrap();
    cardguard_store::log::repair(&p).unwrap();
    cardguard_store::log::verify(&p, 0, None, |_| Ok(())).unwrap();
    let (_, report) =
        EventLog::open(&p, Durability::Write { sync_every_ms: 1000 }, 0, |_| Ok(())).unwrap();
    assert_eq!(report.truncated, 0);
});
