//! Imported XGBoost and LightGBM models score exactly like the reference libraries: the
//! fixtures (made by `tests/oracle/make_fixtures.py` with xgboost 3.2.0 and lightgbm 4.7.0)
//! hold 300 input rows, some with missing values, and each library's predictions. Both the
//! model file's own walk and the engine's compiled evaluator must agree within 1e-6.

use cardguard_ml::Model;
use cardguard_ml::import::{from_lightgbm_text, from_xgboost_json};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/{name}")).unwrap()
}

fn inputs() -> (Vec<String>, Vec<Vec<f32>>) {
    let text = read("inputs.csv");
    let mut lines = text.lines();
    let names = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    let rows = lines
        .map(|l| {
            l.split(',')
                .map(|v| {
                    if v.is_empty() {
                        f32::NAN
                    } else {
                        v.parse().unwrap()
                    }
                })
                .collect()
        })
        .collect();
    (names, rows)
}

fn expected(name: &str) -> Vec<(f64, f64)> {
    read(name)
        .lines()
        .skip(1)
        .map(|l| {
            let (p, m) = l.split_once(',').unwrap();
            (p.parse().unwrap(), m.parse().unwrap())
        })
        .collect()
}

fn check(model: &Model, want: &[(f64, f64)]) {
    let (names, rows) = inputs();
    assert_eq!(model.features, names);
    assert_eq!(rows.len(), want.len());
    let compiled = model.compile().unwrap();
    let mut worst = 0.0f64;
    for (row, (p, m)) in rows.iter().zip(want) {
        let got = f64::from(model.predict(row));
        worst = worst.max((got - p).abs());
        assert!(
            (got - p).abs() < 1e-6,
            "probability {got} vs {p} for {row:?}"
        );
        assert!(
            (f64::from(model.margin(row)) - m).abs() < 1e-5,
            "margin for {row:?}"
        );
        // The engine's evaluator, with the features in the engine's order.
        let mut x = [0.0f32; cardguard_engine::N_FEATURES];
        for (name, v) in names.iter().zip(row) {
            let i = cardguard_engine::FEATURE_NAMES
                .iter()
                .position(|n| n == name)
                .unwrap();
            x[i] = *v;
        }
        let e = f64::from(compiled.probability(&x));
        assert!((e - p).abs() < 1e-6, "compiled {e} vs {p} for {row:?}");
    }
    eprintln!("largest probability difference: {worst:e}");
}

#[test]
fn xgboost_json_scores_like_xgboost() {
    let m = from_xgboost_json(&read("xgboost.json")).unwrap();
    assert_eq!(m.trees.len(), 25);
    assert!(m.model_version.starts_with("xgboost-"));
    check(&m, &expected("xgboost.expected.csv"));
    // The imported model survives its own file format.
    assert_eq!(Model::from_json(&m.to_json().unwrap()).unwrap(), m);
}

#[test]
fn lightgbm_text_scores_like_lightgbm() {
    let m = from_lightgbm_text(&read("lightgbm.txt")).unwrap();
    assert_eq!(m.trees.len(), 25);
    check(&m, &expected("lightgbm.expected.csv"));
}
