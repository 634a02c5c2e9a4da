//! Fuzzes the XGBoost JSON and LightGBM text importers.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for m in [
        cardguard_ml::import::from_xgboost_json(text),
        cardguard_ml::import::from_lightgbm_text(text),
    ]
    .into_iter()
    .flatten()
    {
        let _ = m.predict(&vec![f32::NAN; m.features.len()]);
    }
});
