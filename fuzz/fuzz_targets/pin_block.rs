//! Fuzzes PIN block decoding (formats 0 and 3 in the clear) against arbitrary PANs.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let mut block = [0u8; 8];
    block.copy_from_slice(&data[..8]);
    let pan: String = data[8..].iter().take(19).map(|b| char::from(b'0' + b % 10)).collect();
    if let Ok(pin) = cardguard_cardsec::pinblock::decode_clear(&block, &pan) {
        assert!((4..=12).contains(&pin.len()));
    }
});
