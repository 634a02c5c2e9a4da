//! Fuzzes opening an event log file of arbitrary bytes: it opens (cutting a torn tail) or
//! reports corruption, and never panics.
#![no_main]
use cardguard_store::{Durability, EventLog};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("events.log");
    std::fs::write(&p, data).unwrap();
    let _ = EventLog::open(&p, Durability::Write { sync_every_ms: 1000 }, 0, |_| Ok(()));
});
