//! Fuzzes the labelled-transaction reader (engine schema and the handbook's, plain or gzip):
//! any bytes give a dataset in time order or an error, and a read dataset replays.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = cardguard_ml::Dataset::read(data) {
        assert!(d.transactions.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
        if d.transactions.len() < 200 {
            let _ = cardguard_ml::replay(&d, &cardguard_ml::ReplayConfig::default(), &mut |_, _| {});
        }
    }
});
