//! Data-driven fixtures: each `tests/fixtures/NAME.iso` (a message as it is on the wire,
//! without the 2-byte length prefix) decodes to `NAME.expected.json` (its MTI and fields)
//! and encodes back to the same bytes.

use cardguard_iso8583::{Spec, decode, encode};
use std::path::Path;

#[test]
fn every_fixture_decodes_to_its_expected_fields_and_back() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let spec = Spec::default_ascii();
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "iso"))
        .collect();
    entries.sort();
    for path in entries {
        let raw = std::fs::read(&path).unwrap();
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(path.with_extension("expected.json")).unwrap(),
        )
        .unwrap();
        let m = decode(&spec, &raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let fields: serde_json::Map<String, serde_json::Value> = m
            .fields
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).into()))
            .collect();
        assert_eq!(
            serde_json::json!({"mti": m.mti, "fields": fields}),
            expected,
            "{}",
            path.display()
        );
        assert_eq!(encode(&spec, &m).unwrap(), raw, "{}", path.display());
        n += 1;
    }
    assert!(n >= 2, "no fixtures in {}", dir.display());
}
