//! Fuzzes the phishing analyzer: a message of any bytes gets a report or a clear error.
#![no_main]
use cardguard_phish::{BrandRegistry, analyze};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static REG: OnceLock<BrandRegistry> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let reg = REG.get_or_init(BrandRegistry::builtin);
    if let Ok(r) = analyze(data, reg) {
        assert!(r.score <= 100);
    }
});
