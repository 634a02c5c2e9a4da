//! Encoding and decoding are exact inverses for every valid message under the built-in
//! table, and no input, however malformed, makes the decoder panic.

use cardguard_iso8583::{Data, LenType, Message, Spec, decode, encode};
use proptest::prelude::*;

/// A valid message: some of the table's fields, each with a value of an allowed length.
fn message() -> impl Strategy<Value = Message> {
    let spec = Spec::default_ascii();
    let fields: Vec<(u8, LenType, usize)> = (2..=128u8)
        .filter_map(|n| spec.field(usize::from(n)).map(|f| (n, f.len, f.max)))
        .collect();
    (
        "0[1-8][0-9]0",
        prop::collection::vec((prop::sample::select(fields), any::<u64>()), 0..20),
        any::<bool>(),
    )
        .prop_map(|(mti, picks, secondary)| {
            let mut m = Message::new(&mti);
            m.secondary_bitmap = secondary;
            for ((n, len, max), seed) in picks {
                let size = match len {
                    LenType::Fixed => max,
                    _ => (seed % (max as u64 + 1)) as usize,
                };
                let value: Vec<u8> = (0..size)
                    .map(|i| b' ' + ((seed.wrapping_mul(31).wrapping_add(i as u64 * 7)) % 95) as u8)
                    .collect();
                m.set(n, value);
            }
            m
        })
}

proptest! {
    #[test]
    fn encode_then_decode_is_the_identity(m in message()) {
        let spec = Spec::default_ascii();
        let bytes = encode(&spec, &m).unwrap();
        let back = decode(&spec, &bytes).unwrap();
        prop_assert_eq!(&back.fields, &m.fields);
        prop_assert_eq!(&back.mti, &m.mti);
        // And the bytes again, exactly.
        prop_assert_eq!(encode(&spec, &back).unwrap(), bytes);
    }

    #[test]
    fn any_bytes_decode_or_fail_cleanly(b in prop::collection::vec(any::<u8>(), 0..300)) {
        let spec = Spec::default_ascii();
        if let Ok(m) = decode(&spec, &b) {
            let again = encode(&spec, &m).unwrap();
            prop_assert_eq!(decode(&spec, &again).unwrap(), m);
        }
    }

    #[test]
    fn mutated_messages_never_panic(m in message(), at in any::<prop::sample::Index>(), x in any::<u8>()) {
        let spec = Spec::default_ascii();
        let mut bytes = encode(&spec, &m).unwrap();
        let i = at.index(bytes.len());
        bytes[i] = x;
        let _ = decode(&spec, &bytes);
        let _ = decode(&spec, &bytes[..i]);
    }
}

#[test]
fn every_field_of_the_table_is_ascii() {
    let spec = Spec::default_ascii();
    assert!(
        (2..=128)
            .filter_map(|n| spec.field(n))
            .all(|f| f.data == Data::Ascii)
    );
}
