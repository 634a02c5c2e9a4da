//! `cardguard ml train` and `ml evaluate` end to end on a small file in the handbook's
//! format: frauds by amount, by a compromised terminal and by a compromised card, so the
//! model has something to find; the JSON, the predictions, the report and the model file
//! are checked.

mod common;

use common::{cardguard, ok};
use std::io::Write;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// 40 days from 2018-04-01 in the handbook's columns; returns the CSV.
fn handbook_file() -> String {
    let mut r = Rng(0x5eed);
    let mut rows: Vec<(i64, u64, u64, f64, bool, u8)> = Vec::new();
    for day in 0..40i64 {
        for card in 0..150u64 {
            let n = r.next() % 3;
            for _ in 0..n {
                let secs = day * 86_400 + (r.next() % 86_400) as i64;
                let terminal = (card * 7 + r.next() % 5) % 60;
                let mut amount = 5.0 + r.unit() * 90.0;
                let mut scenario = 0;
                if r.unit() < 0.004 {
                    amount = 230.0 + r.unit() * 200.0;
                    scenario = 1;
                } else if terminal == 13 && (10..20).contains(&day) {
                    scenario = 2;
                } else if card % 37 == 5 && (15..25).contains(&day) && r.unit() < 0.4 {
                    amount *= 5.0;
                    scenario = 3;
                }
                rows.push((secs, card, terminal, amount, scenario > 0, scenario));
            }
        }
    }
    rows.sort_by_key(|x| x.0);
    let mut s = String::from(
        "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_TIME_SECONDS,TX_TIME_DAYS,TX_FRAUD,TX_FRAUD_SCENARIO\n",
    );
    for (i, (secs, card, terminal, amount, fraud, scen)) in rows.iter().enumerate() {
        let day = secs / 86_400;
        let sod = secs % 86_400;
        s.push_str(&format!(
            "{i},2018-{:02}-{:02} {:02}:{:02}:{:02},{card},{terminal},{amount:.2},{secs},{day},{},{scen}\n",
            if day < 30 { 4 } else { 5 },
            if day < 30 { day + 1 } else { day - 29 },
            sod / 3600,
            sod % 3600 / 60,
            sod % 60,
            u8::from(*fraud)
        ));
    }
    s
}

#[test]
fn evaluate_reports_the_protocol_metrics_and_train_writes_a_loadable_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tx.csv.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&data).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(handbook_file().as_bytes()).unwrap();
    gz.finish().unwrap();
    let preds = dir.path().join("pred.csv");
    let report = dir.path().join("report");
    let stdout = ok(cardguard()
        .args(["ml", "evaluate", "--transactions"])
        .arg(&data)
        .args([
            "--train",
            "2018-04-05..2018-04-18",
            "--delay-days",
            "3",
            "--test",
            "2018-04-22..2018-05-05",
            "--trees",
            "40",
            "--json",
            "--predictions",
        ])
        .arg(&preds)
        .arg("--report")
        .arg(&report));
    let v: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    for k in ["average_precision", "roc_auc", "card_precision_at_100"] {
        let x = v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
        assert!((0.0..=1.0).contains(&x), "{k} {x}");
    }
    let n_test = v["n_test"].as_u64().unwrap();
    assert!(n_test > 1000 && v["n_fraud"].as_u64().unwrap() > 0, "{v}");
    // Frauds by amount are easy: the model ranks better than chance by far.
    assert!(v["roc_auc"].as_f64().unwrap() > 0.8, "{v}");
    let text = std::fs::read_to_string(&preds).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("TRANSACTION_ID,score,label"));
    assert_eq!(lines.count() as u64, n_test);
    for f in ["index.html", "precision-recall.svg", "roc.svg"] {
        let body = std::fs::read_to_string(report.join(f)).unwrap();
        assert!(body.len() > 200, "{f}");
    }

    // Outputs and ranges are checked before the work: a missing folder for --out, and more
    // folds than the data holds, are refused at once, naming the problem.
    for (args, says) in [
        (
            vec![
                "ml",
                "train",
                "--out",
                "/nonexistent-folder/m.json",
                "--transactions",
            ],
            "the folder /nonexistent-folder does not exist",
        ),
        (
            vec![
                "ml",
                "evaluate",
                "--train",
                "2018-04-05..2018-04-18",
                "--test",
                "2018-04-22..2018-05-05",
                "--folds",
                "20",
                "--transactions",
            ],
            "at most 1 folds fit",
        ),
    ] {
        let t0 = std::time::Instant::now();
        let out = cardguard().args(&args).arg(&data).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{args:?}: {err}"
        );
        assert!(!err.contains("training"), "{args:?} trained first: {err}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(20));
    }

    let model = dir.path().join("model.json");
    ok(cardguard()
        .args(["ml", "train", "--transactions"])
        .arg(&data)
        .args(["--trees", "30", "--out"])
        .arg(&model));
    let m = cardguard_ml::Model::from_json(&std::fs::read_to_string(&model).unwrap()).unwrap();
    assert!(!m.trees.is_empty() && m.trees.len() <= 30);
    assert_eq!(m.features.len(), cardguard_engine::N_FEATURES);
    assert!(m.model_version.starts_with("gbdt-"));
    // The training data's distributions, for drift monitoring.
    let t = m.training.as_ref().expect("the training summary");
    assert_eq!(t.features.len(), cardguard_engine::N_FEATURES);
    assert!(t.rows > 0 && t.score.bins() >= 2, "{:?}", t.score);

    // The replayed features, one row per transaction.
    let feats = dir.path().join("features.csv");
    ok(cardguard()
        .args(["ml", "features", "--transactions"])
        .arg(&data)
        .arg("--out")
        .arg(&feats));
    let text = std::fs::read_to_string(&feats).unwrap();
    let header = text.lines().next().unwrap();
    assert!(header.starts_with("TRANSACTION_ID,DAY,CARD_ID,TX_FRAUD,amount,"));
    assert_eq!(header.split(',').count(), 4 + cardguard_engine::N_FEATURES);
    assert_eq!(
        text.lines().count() - 1,
        handbook_file().lines().count() - 1
    );

    // An XGBoost model imports into a file the engine can load.
    let imported = dir.path().join("imported.json");
    ok(cardguard()
        .args(["ml", "import", "--xgboost"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../ml/tests/fixtures/xgboost.json"
        ))
        .arg("--out")
        .arg(&imported));
    let m = cardguard_ml::Model::from_json(&std::fs::read_to_string(&imported).unwrap()).unwrap();
    assert!(m.model_version.starts_with("xgboost-"));
    assert!(m.compile().is_ok());

    // Bad input: a clear error, nothing written.
    let out = cardguard()
        .args(["ml", "evaluate", "--transactions"])
        .arg(&data)
        .args([
            "--train",
            "2018-04-18..2018-04-05",
            "--test",
            "2018-04-22..2018-05-05",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ends before it starts"));
}

#[test]
fn simulate_writes_the_engine_schema_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: &str| {
        let path = dir.path().join(name);
        let stdout = ok(cardguard()
            .args([
                "simulate", "--cards", "200", "--days", "10", "--seed", seed, "--out",
            ])
            .arg(&path));
        assert!(String::from_utf8_lossy(&stdout).contains("transactions/s"));
        path
    };
    let a = run("a.csv.gz", "3");
    let b = run("b.csv.gz", "3");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let d = cardguard_ml::Dataset::read(std::fs::File::open(&a).unwrap()).unwrap();
    assert_eq!(d.schema, cardguard_ml::Schema::Engine);
    assert!(d.transactions.len() > 2_000);
    assert!(d.transactions.iter().any(|t| t.fraud));
}

/// A trained model served: its decisions are counted against the training data it
/// records, and a population it was not trained on shows as drift in `GET /v1/model` and
/// `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_model_reports_drift_from_its_training_data() {
    use cardguard_server::client::Client;
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sim.csv");
    ok(cardguard()
        .args(["simulate", "--cards", "300", "--days", "20", "--out"])
        .arg(&data));
    let model = dir.path().join("model.json");
    ok(cardguard()
        .args(["ml", "train", "--trees", "10", "--transactions"])
        .arg(&data)
        .arg("--out")
        .arg(&model));
    const KEY: &str = "drift-test-key-0123456789abcdef";
    let config = format!(
        "[[auth.api_keys]]\nkey = \"{KEY}\"\nscopes = [\"admin\", \"authorize\"]\n[engine]\nmax_clock_skew_secs = 0\nmodel_file = \"{}\"\ndrift_min_observations = 20\n",
        model.display()
    );
    let (child, addr) = common::serve(dir.path(), &config);
    let _server = common::Running(child);
    let mut c = Client::connect(addr, KEY).await.unwrap();
    let (_, v) = c.get("/v1/model").await.unwrap();
    assert_eq!(v["monitored"], true, "{v}");
    assert!(v["training_rows"].as_u64().unwrap() > 1000, "{v}");
    assert_eq!(v["observed"], 0);
    let pan = "4123456789012349";
    let card = common::tokyo_card(pan);
    assert_eq!(c.post("/v1/cards", &card).await.unwrap().0, 201);
    // One card buying the same ¥3,000 every hour: not the portfolio the model learned from.
    for i in 0..1030u32 {
        let ts = cardguard_core::Timestamp(1_790_000_000_000 + i64::from(i) * 3_600_000);
        let a = json!({"id": format!("d-{i}"), "timestamp": ts.to_rfc3339(),
            "card": {"number": pan, "expiry": "2029-12"},
            "amount": {"value": 3000, "currency": "JPY"},
            "merchant": {"id": "m-1", "terminal_id": "t-1", "name": "SHOP", "mcc": "5411",
                         "country": "JP", "city": "Tokyo", "lat": 35.68, "lon": 139.76},
            "channel": "card_present", "type": "purchase"});
        let (s, v) = c.post("/v1/authorizations", &a).await.unwrap();
        assert_eq!(s, 200, "{v}");
    }
    let (_, v) = c.get("/v1/model").await.unwrap();
    assert_eq!(v["observed"], 1030, "{v}");
    let drifted: Vec<&str> = v["drifted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(!drifted.is_empty(), "{v}");
    assert!(
        v["alerts"].as_u64().unwrap() >= 1,
        "logged and counted: {v}"
    );
    let (_, m) = c.get_raw("/metrics").await.unwrap();
    let m = String::from_utf8(m.to_vec()).unwrap();
    assert!(m.contains("cardguard_model_psi{part=\"score\"}"), "{m}");
    assert!(m.contains("cardguard_model_observed_total 1030"));
}

/// `ml tune`: settings tried over prequential folds within a budget, the best written
/// beside the model trained with them, and `ml train --settings` taking them again.
#[test]
fn tune_writes_the_best_settings_beside_its_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sim.csv");
    ok(cardguard()
        .args(["simulate", "--cards", "300", "--days", "30", "--out"])
        .arg(&data));
    let model = dir.path().join("tuned.json");
    let out = ok(cardguard()
        .args(["ml", "tune", "--transactions"])
        .arg(&data)
        .args([
            "--train",
            "2026-04-08..2026-04-21",
            "--test",
            "2026-04-22..2026-04-28",
            "--folds",
            "2",
            "--budget-secs",
            "1",
            "--max-trials",
            "3",
            "--out",
        ])
        .arg(&model));
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("trial  1:") && out.contains("best of"),
        "{out}"
    );
    let settings: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("tuned.settings.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(settings["folds"], 2);
    let trials = settings["trials"].as_array().unwrap();
    assert!(!trials.is_empty() && trials.len() <= 3);
    assert_eq!(trials[0]["scores"].as_array().unwrap().len(), 2);
    let best = settings["best"]["mean"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&best));
    assert!(
        trials
            .iter()
            .all(|t| t["mean"].as_f64().unwrap() <= best + 1e-12),
        "the best is the best: {settings}"
    );
    let m = cardguard_ml::Model::from_json(&std::fs::read_to_string(&model).unwrap()).unwrap();
    assert!(m.trees.len() <= settings["best"]["params"]["max_trees"].as_u64().unwrap() as usize);
    let again = dir.path().join("again.json");
    ok(cardguard()
        .args(["ml", "train", "--transactions"])
        .arg(&data)
        .arg("--settings")
        .arg(dir.path().join("tuned.settings.json"))
        .arg("--out")
        .arg(&again));
    let m2 = cardguard_ml::Model::from_json(&std::fs::read_to_string(&again).unwrap()).unwrap();
    assert_eq!(
        m2.model_version, m.model_version,
        "the same settings, the same trees"
    );
}

/// A model that learns from the issuer's own traffic: the simulator's transactions sent
/// through the HTTP API with their fraud labels, `ml train --from-log` on the running
/// server's data directory, the model reloaded live, and the next decisions made by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_trained_from_the_servers_own_log_decides_after_a_reload() {
    use cardguard_server::client::Client;
    use serde_json::{Value, json};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sim.csv");
    ok(cardguard()
        .args(["simulate", "--cards", "150", "--days", "14", "--out"])
        .arg(&data));
    let set = cardguard_ml::Dataset::read(std::fs::File::open(&data).unwrap()).unwrap();
    // The server starts with a model trained on the file, so that it can reload one.
    let model = dir.path().join("model.json");
    ok(cardguard()
        .args(["ml", "train", "--trees", "5", "--transactions"])
        .arg(&data)
        .arg("--out")
        .arg(&model));
    const KEY: &str = "from-log-test-key-0123456789abcdef";
    let config = format!(
        "[[auth.api_keys]]\nkey = \"{KEY}\"\nscopes = [\"admin\", \"authorize\", \"label\"]\n[engine]\nmax_clock_skew_secs = 0\nmodel_file = \"{}\"\n",
        model.display()
    );
    let (child, addr) = common::serve(dir.path(), &config);
    let _server = common::Running(child);
    let mut c = Client::connect(addr, KEY).await.unwrap();
    let (_, stats) = c.get("/v1/stats").await.unwrap();
    let first_model = stats["model"].as_str().unwrap().to_owned();

    // A Luhn-valid PAN for each simulated card.
    let pan = |card: u64| {
        let body = format!("4{:014}", card);
        let d = cardguard_cardsec::luhn::check_digit(&body).unwrap();
        format!("{body}{d}")
    };
    let mut cards: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for t in &set.transactions {
        if seen.insert(t.card) {
            let mut card = json!({"number": pan(t.card), "expiry": "2030-12",
                "cardholder_id": format!("ch-{}", t.card), "product": "gold", "status": "active",
                "service_code": "101", "csc": {"method": "stored", "value": "123"},
                "contact": {"email": "holder@example.jp", "language": "ja"}});
            if let Some((country, lat, lon)) = t.home {
                card["home"] =
                    json!({"country": country.as_str(), "city": "Home", "lat": lat, "lon": lon});
            }
            cards.push(card);
        }
    }
    let (s, v) = c
        .post("/v1/cards:batch", &json!({"cards": cards}))
        .await
        .unwrap();
    assert_eq!((s, v["failed"].as_u64()), (200, Some(0)), "{v}");
    let authorization = |t: &cardguard_ml::Transaction, id: &str| {
        let ts = cardguard_core::Timestamp(t.ts_ms);
        let mut a = json!({"id": id, "timestamp": ts.to_rfc3339_at_offset(t.utc_offset_min),
            "card": {"number": pan(t.card), "expiry": "2030-12"},
            "amount": {"value": t.amount_minor, "currency": t.currency.code()},
            "merchant": {"id": format!("m-{}", t.merchant), "terminal_id": format!("t-{}", t.terminal),
                         "name": "SHOP", "mcc": t.mcc.to_string(), "country": t.country.as_str(), "city": "City"},
            "channel": t.channel.as_str(), "type": t.tx_type.as_str()});
        if let Some((lat, lon)) = t.location {
            a["merchant"]["lat"] = json!(lat);
            a["merchant"]["lon"] = json!(lon);
        }
        if let Some(d) = t.device {
            a["device"] = json!({"id": format!("d-{d}")});
        }
        a
    };
    let mut frauds = 0;
    for t in &set.transactions {
        let (s, v) = c
            .post(
                "/v1/authorizations",
                &authorization(t, &format!("x-{}", t.id)),
            )
            .await
            .unwrap();
        assert_eq!(s, 200, "{v}");
        if t.fraud {
            frauds += 1;
            let id = v["authorization_id"].as_str().unwrap();
            let (s, v) = c
                .post(
                    "/v1/labels",
                    &json!({"authorization_id": id, "fraud": true, "source": "chargeback"}),
                )
                .await
                .unwrap();
            assert_eq!(s, 200, "{v}");
        }
    }
    assert!(frauds > 20, "the simulation has frauds: {frauds}");

    // Trained from the running server's log, written over its model file, reloaded.
    let out = ok(cardguard()
        .args(["ml", "train", "--trees", "20", "--from-log"])
        .arg(dir.path().join("data"))
        .arg("--out")
        .arg(&model));
    assert!(
        String::from_utf8_lossy(&out).contains("trees"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let m = cardguard_ml::Model::from_json(&std::fs::read_to_string(&model).unwrap()).unwrap();
    assert_eq!(
        m.provenance["train_frauds"].as_u64().map(|n| n > 0),
        Some(true),
        "{}",
        m.provenance
    );
    let (s, v) = c.post_raw("/v1/model/reload", Vec::new()).await.unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["model"], m.model_version.as_str());
    assert_ne!(m.model_version, first_model);
    // The next decisions are the new model's.
    let last = set.transactions.last().unwrap();
    let (_, d) = c
        .post("/v1/authorizations", &authorization(last, "probe-1"))
        .await
        .unwrap();
    assert_eq!(d["model"], m.model_version.as_str(), "{d}");
    // And `ml evaluate --from-log` measures on the same log.
    let (first_day, last_day) = (
        set.transactions[0].ts_ms.div_euclid(86_400_000),
        last.ts_ms.div_euclid(86_400_000),
    );
    let day = |d: i64| cardguard_ml::evaluate::day_string(d);
    let out = ok(cardguard()
        .args(["ml", "evaluate", "--json", "--trees", "10", "--from-log"])
        .arg(dir.path().join("data"))
        .arg("--train")
        .arg(format!("{}..{}", day(first_day), day(last_day - 4)))
        .arg("--test")
        .arg(format!("{}..{}", day(last_day - 3), day(last_day))));
    let e: Value = serde_json::from_slice(&out).unwrap();
    assert!(e["n_test"].as_u64().unwrap() > 100, "{e}");
}
