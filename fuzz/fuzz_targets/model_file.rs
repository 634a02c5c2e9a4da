//! Fuzzes the model file reader: any text is a checked model or an error, and a model that
//! reads compiles or says why, never panics when scoring.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(m) = cardguard_ml::Model::from_json(text) {
        let x = vec![0.5f32; m.features.len()];
        let _ = m.predict(&x);
        if let Ok(c) = m.compile() {
            let _ = c.probability(&[1.0; cardguard_engine::N_FEATURES]);
        }
    }
});
