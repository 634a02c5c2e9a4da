//! Drift of live traffic from a model's training data: each decided authorization's risk
//! score and features counted into the bins the model file records, and the population
//! stability index of each against the training data, for `/metrics` and `GET /v1/model`.
//! A PSI over `engine.drift_psi_threshold` (after `engine.drift_min_observations`
//! decisions) is logged once and counted. Counting happens after the decision, outside the
//! engine lock: a few relaxed atomic additions per authorization.

use cardguard_engine::drift::TrainingSummary;
use cardguard_engine::{FEATURE_NAMES, Outcome};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The monitor of one model.
pub struct DriftMonitor {
    model: String,
    summary: Option<TrainingSummary>,
    /// For each summarized feature, its place in the engine's feature vector.
    slots: Vec<Option<usize>>,
    score: Vec<AtomicU64>,
    features: Vec<Vec<AtomicU64>>,
    observed: AtomicU64,
    threshold: f64,
    min_observations: u64,
    alerts: AtomicU64,
    /// The parts over the threshold now (already logged).
    drifted: Mutex<BTreeSet<String>>,
}

/// The PSI of each part, as `GET /v1/model` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DriftReport {
    pub model: String,
    /// Whether the model file records its training data (models of earlier versions and
    /// the built-in scorecard do not: nothing to compare with).
    pub monitored: bool,
    pub training_rows: u64,
    pub observed: u64,
    pub threshold: f64,
    pub score_psi: f64,
    pub feature_psi: Vec<(String, f64)>,
    /// The parts over the threshold.
    pub drifted: Vec<String>,
    pub alerts: u64,
}

fn counters(n: usize) -> Vec<AtomicU64> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

fn load(c: &[AtomicU64]) -> Vec<u64> {
    c.iter().map(|x| x.load(Ordering::Relaxed)).collect()
}

impl DriftMonitor {
    pub fn new(
        model: &str,
        summary: Option<TrainingSummary>,
        threshold: f64,
        min_observations: u64,
    ) -> DriftMonitor {
        let (slots, score, features) = match &summary {
            Some(s) => (
                s.features
                    .iter()
                    .map(|(n, _)| FEATURE_NAMES.iter().position(|f| f == n))
                    .collect(),
                counters(s.score.bins()),
                s.features.iter().map(|(_, d)| counters(d.bins())).collect(),
            ),
            None => (Vec::new(), Vec::new(), Vec::new()),
        };
        DriftMonitor {
            model: model.to_owned(),
            summary,
            slots,
            score,
            features,
            observed: AtomicU64::new(0),
            threshold,
            min_observations,
            alerts: AtomicU64::new(0),
            drifted: Mutex::new(BTreeSet::new()),
        }
    }

    /// Counts one decision of this model (one with features: a known card).
    pub fn observe(&self, o: &Outcome) {
        let Some(s) = &self.summary else { return };
        if o.features.is_empty() || o.model != self.model {
            return;
        }
        self.score[s.score.bin(f32::from(o.risk_score))].fetch_add(1, Ordering::Relaxed);
        for ((slot, (_, d)), c) in self.slots.iter().zip(&s.features).zip(&self.features) {
            if let Some(v) = slot.and_then(|k| o.features.get(k)) {
                c[d.bin(*v)].fetch_add(1, Ordering::Relaxed);
            }
        }
        let n = self.observed.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.min_observations && n.is_multiple_of(1024) {
            self.check();
        }
    }

    /// Logs and counts the parts that crossed the threshold since the last check.
    fn check(&self) {
        let r = self.report();
        let mut drifted = self.drifted.lock().unwrap_or_else(|e| e.into_inner());
        for part in &r.drifted {
            if drifted.insert(part.clone()) {
                self.alerts.fetch_add(1, Ordering::Relaxed);
                let psi = if part == "score" {
                    r.score_psi
                } else {
                    r.feature_psi
                        .iter()
                        .find(|(n, _)| n == part)
                        .map_or(0.0, |x| x.1)
                };
                tracing::warn!(model = %self.model, part = %part, psi, threshold = self.threshold, observed = r.observed, "live traffic has drifted from the model's training data");
            }
        }
        drifted.retain(|p| r.drifted.contains(p));
    }

    pub fn report(&self) -> DriftReport {
        let observed = self.observed.load(Ordering::Relaxed);
        let Some(s) = &self.summary else {
            return DriftReport {
                model: self.model.clone(),
                monitored: false,
                training_rows: 0,
                observed,
                threshold: self.threshold,
                score_psi: 0.0,
                feature_psi: Vec::new(),
                drifted: Vec::new(),
                alerts: 0,
            };
        };
        let score_psi = s.score.psi(&load(&self.score));
        let feature_psi: Vec<(String, f64)> = s
            .features
            .iter()
            .zip(&self.features)
            .map(|((n, d), c)| (n.clone(), d.psi(&load(c))))
            .collect();
        let judged = observed >= self.min_observations;
        let mut drifted = Vec::new();
        if judged && score_psi > self.threshold {
            drifted.push("score".to_owned());
        }
        if judged {
            drifted.extend(
                feature_psi
                    .iter()
                    .filter(|(_, p)| *p > self.threshold)
                    .map(|(n, _)| n.clone()),
            );
        }
        DriftReport {
            model: self.model.clone(),
            monitored: true,
            training_rows: s.rows,
            observed,
            threshold: self.threshold,
            score_psi,
            feature_psi,
            drifted,
            alerts: self.alerts.load(Ordering::Relaxed),
        }
    }

    /// The Prometheus text of the PSIs and the alert count.
    pub fn metrics(&self) -> String {
        use std::fmt::Write;
        let r = self.report();
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# HELP cardguard_model_psi Population stability index of live traffic against the model's training data.\n# TYPE cardguard_model_psi gauge"
        );
        if r.monitored {
            let _ = writeln!(
                o,
                "cardguard_model_psi{{part=\"score\"}} {:.6}",
                r.score_psi
            );
            for (n, p) in &r.feature_psi {
                let _ = writeln!(
                    o,
                    "cardguard_model_psi{{part=\"feature\",feature=\"{n}\"}} {p:.6}"
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP cardguard_model_drift_alerts_total Parts of the model's inputs or score that drifted past the threshold.\n# TYPE cardguard_model_drift_alerts_total counter\ncardguard_model_drift_alerts_total {}",
            r.alerts
        );
        let _ = writeln!(
            o,
            "# HELP cardguard_model_observed_total Decisions of the model counted for drift.\n# TYPE cardguard_model_observed_total counter\ncardguard_model_observed_total {}",
            r.observed
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cardguard_engine::drift::Distribution;
    use cardguard_engine::{N_FEATURES, idx};

    fn outcome(risk: u8, amount: f32) -> Outcome {
        let mut f = vec![0.0f32; N_FEATURES];
        f[idx::AMOUNT] = amount;
        Outcome {
            risk_score: risk,
            model: "m1".into(),
            features: f,
            ..Outcome::unscored_approval()
        }
    }

    #[test]
    fn a_shifted_feature_is_reported_and_counted_once() {
        let mut amounts: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let mut risks: Vec<f32> = (0..1000).map(|i| (i % 50) as f32).collect();
        let summary = TrainingSummary {
            rows: 1000,
            score: Distribution::of(&mut risks),
            features: vec![("amount".into(), Distribution::of(&mut amounts))],
        };
        let m = DriftMonitor::new("m1", Some(summary), 0.2, 1000);
        for i in 0..2048 {
            m.observe(&outcome((i % 50) as u8, 5000.0 + i as f32));
        }
        m.observe(&Outcome {
            model: "another".into(),
            ..outcome(0, 0.0)
        });
        let r = m.report();
        assert_eq!(
            r.observed, 2048,
            "another model's decisions are not counted"
        );
        assert!(r.score_psi < 0.05, "{r:?}");
        assert!(r.feature_psi[0].1 > 0.2, "{r:?}");
        assert_eq!(r.drifted, vec!["amount".to_owned()]);
        assert_eq!(r.alerts, 1, "logged and counted once");
        let text = m.metrics();
        assert!(text.contains("cardguard_model_psi{part=\"feature\",feature=\"amount\"}"));
        assert!(text.contains("cardguard_model_drift_alerts_total 1"));
        let none = DriftMonitor::new("scorecard-1", None, 0.2, 10);
        none.observe(&outcome(1, 1.0));
        assert!(!none.report().monitored);
    }
}
