//! Whatever bytes of a log get damaged, `repair` leaves a log that opens and verifies, and
//! every frame whose bytes were not touched is still there, at its offset.

use cardguard_store::log::{repair, verify};
use cardguard_store::{Durability, EventLog};
use proptest::prelude::*;
use std::os::unix::fs::FileExt;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn repair_keeps_every_untouched_frame(
        sizes in prop::collection::vec(1usize..300, 1..40),
        hits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.log");
        let (mut log, _) = EventLog::open(&p, Durability::Write { sync_every_ms: 1000 }, 0, |_| Ok(())).unwrap();
        let mut frames = Vec::new();
        for (i, n) in sizes.iter().enumerate() {
            let payload = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(*n));
            let at = log.appender().append(1, payload.as_bytes(), |_| {}).unwrap();
            frames.push((at, log.end_offset(), payload));
        }
        let len = log.end_offset();
        drop(log);
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&p).unwrap();
        let mut touched = Vec::new();
        for (idx, x) in &hits {
            let at = idx.index(len as usize) as u64;
            let mut b = [0u8];
            file.read_exact_at(&mut b, at).unwrap();
            if b[0] != *x {
                file.write_all_at(&[*x], at).unwrap();
                touched.push(at);
            }
        }
        drop(file);
        repair(&p).unwrap();
        let mut seen = Vec::new();
        verify(&p, 0, None, |f| {
            seen.push((f.offset, f.kind, f.payload));
            Ok(())
        })
        .unwrap();
        for (start, end, payload) in &frames {
            if touched.iter().all(|t| t < start || t >= end) {
                prop_assert!(
                    seen.iter().any(|(o, k, b)| o == start && *k == 1 && b == payload.as_bytes()),
                    "frame at {start} was lost"
                );
            }
        }
        // And a start opens it without cutting anything.
        let (_, report) = EventLog::open(&p, Durability::Write { sync_every_ms: 1000 }, 0, |_| Ok(())).unwrap();
        prop_assert_eq!(report.truncated, 0);
    }
}
