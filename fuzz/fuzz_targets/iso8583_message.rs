//! Fuzzes the ISO 8583 decoder with the built-in table: any bytes decode or fail cleanly,
//! and what decodes encodes to a message that decodes the same.
#![no_main]
use cardguard_iso8583::{Spec, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let spec = Spec::default_ascii();
    if let Ok(m) = decode(&spec, data) {
        let again = encode(&spec, &m).expect("a decoded message encodes");
        assert_eq!(decode(&spec, &again).expect("and decodes"), m);
    }
});
