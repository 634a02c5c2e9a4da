//! Fuzzes decoding an event's payload (MessagePack or JSON, told by the first byte) of any
//! kind: it decodes or refuses, never panics; what decodes reads back the same from both
//! encodings.
#![no_main]
use cardguard_engine::{Event, EventEncoding};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, payload)) = data.split_first() else {
        return;
    };
    let Ok(event) = Event::decode(kind % 8, payload) else {
        return;
    };
    for encoding in [EventEncoding::MessagePack, EventEncoding::Json] {
        // JSON cannot hold a feature that is not a number (NaN is written as null).
        let Ok(bytes) = event.encode(encoding) else {
            continue;
        };
        if let Ok(again) = Event::decode(event.kind(), &bytes) {
            if encoding == EventEncoding::MessagePack {
                assert_eq!(format!("{again:?}"), format!("{event:?}"));
            }
        } else {
            assert_eq!(encoding, EventEncoding::Json, "MessagePack reads back what it wrote");
        }
    }
});
