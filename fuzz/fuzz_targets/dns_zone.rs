//! Fuzzes the zone file reader of the sender verifier.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cardguard_mailauth::Zone::parse(text);
    }
});
