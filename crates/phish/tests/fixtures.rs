//! Data-driven tests: each `fixtures/NAME.eml` beside `fixtures/NAME.expected.json` with the
//! verdict, the brand and the reason codes the analyzer must give.

use cardguard_phish::{BrandRegistry, analyze};
use std::path::Path;

#[test]
fn fixtures_give_their_expected_verdicts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let reg = BrandRegistry::builtin();
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
    {
        let raw = std::fs::read(p).unwrap();
        let expected_path = p.with_extension("expected.json");
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&expected_path).unwrap()).unwrap();
        let r = analyze(&raw, &reg).unwrap();
        let name = p.file_name().unwrap().to_string_lossy();
        let verdict = serde_json::to_value(r.verdict).unwrap();
        assert_eq!(verdict, expected["verdict"], "{name}: {r:#?}");
        assert_eq!(r.brand.as_deref(), expected["brand"].as_str(), "{name}");
        let mut codes: Vec<&str> = r.reasons.iter().map(|f| f.code).collect();
        codes.sort_unstable();
        let want: Vec<&str> = expected["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(codes, want, "{name}: {r:#?}");
        for f in &r.reasons {
            assert!(!f.evidence.is_empty(), "{name}: {} has no evidence", f.code);
        }
        n += 1;
    }
    assert!(n >= 4, "fixtures missing: {n}");
}

mod robustness {
    use cardguard_phish::{BrandRegistry, analyze};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// Any bytes, and any damage to a real message, give a report or an error, never a panic.
        #[test]
        fn any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = analyze(&bytes, &BrandRegistry::builtin());
        }

        #[test]
        fn damaged_messages(cut in 0usize..2000, flip in 0usize..2000, byte in any::<u8>()) {
            let raw = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ebay-ip-form-phish.eml")).unwrap();
            let mut m = raw[..cut.min(raw.len())].to_vec();
            if !m.is_empty() {
                let i = flip % m.len();
                m[i] = byte;
            }
            if let Ok(r) = analyze(&m, &BrandRegistry::builtin()) {
                prop_assert!(r.score <= 100);
            }
        }
    }
}
