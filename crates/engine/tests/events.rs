//! The event payloads, data-driven: each `tests/events/NAME.json` is a payload as versions
//! before MessagePack wrote it, and `NAME.msgpack` the payload this version writes for the
//! same event. Both decode to the same event, and encoding it gives those bytes again: the
//! format of logs already written stays readable, and the MessagePack written stays the
//! same from one version to the next. `CARDGUARD_BLESS=1` writes the `.msgpack` files
//! (after a deliberate change of the format only).

use cardguard_engine::{Event, EventEncoding};
use std::path::Path;

/// The frame kind a fixture's name starts with.
fn kind_of(name: &str) -> u8 {
    let kinds = [
        ("auth-", Event::KIND_AUTH),
        ("label", Event::KIND_LABEL),
        ("reversal", Event::KIND_REVERSAL),
        ("answer", Event::KIND_ANSWER),
        ("authentication", Event::KIND_AUTHENTICATION),
        ("card-status", Event::KIND_CARD_STATUS),
        ("coverage", Event::KIND_COVERAGE),
    ];
    kinds
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|k| k.1)
        .unwrap_or_else(|| panic!("{name}: no event kind of that name"))
}

#[test]
fn old_json_payloads_and_this_versions_message_pack_decode_to_the_same_event() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/events");
    let bless = std::env::var_os("CARDGUARD_BLESS").is_some();
    let mut seen = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let kind = kind_of(&name);
        let json = std::fs::read(&path).unwrap();
        let event = Event::decode(kind, json.trim_ascii_end())
            .unwrap_or_else(|e| panic!("{name}.json: {e}"));
        let packed = event.encode(EventEncoding::MessagePack).unwrap();
        let msgpack_path = path.with_extension("msgpack");
        if bless {
            std::fs::write(&msgpack_path, &packed).unwrap();
        }
        let expected = std::fs::read(&msgpack_path)
            .unwrap_or_else(|e| panic!("{name}.msgpack: {e} (CARDGUARD_BLESS=1 writes it)"));
        assert_eq!(packed, expected, "{name}: the MessagePack written changed");
        assert_eq!(Event::decode(kind, &expected).unwrap(), event, "{name}");
        // JSON is still written on request, and reads back the same.
        let again = event.encode(EventEncoding::Json).unwrap();
        let value = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
        assert_eq!(
            value(&again),
            value(&json),
            "{name}: every field of the fixture kept"
        );
        assert_eq!(Event::decode(kind, &again).unwrap(), event, "{name}");
        assert!(
            packed.len() < again.len(),
            "{name}: MessagePack is the shorter"
        );
        seen.insert(kind);
    }
    assert_eq!(seen.len(), 7, "a fixture for every event kind");
}
