//! Hyperparameter search: the trainer's settings tried over prequential folds (each fold
//! trains on its days and tests on the days after them), defaults first, then random draws
//! from a grid of the settings that matter, until a time budget runs out; the settings with
//! the best mean score over the folds win, with their spread.

use crate::MlError;
use crate::evaluate::{Evaluation, Protocol, evaluate};
use crate::gbdt::{Round, TrainParams};
use crate::replay::FeatureTable;
use cardguard_core::rng::Rng;
use serde::Serialize;
use std::time::{Duration, Instant};

/// What the search maximizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    AveragePrecision,
    CardPrecisionAt100,
}

impl Objective {
    fn of(self, e: &Evaluation) -> f64 {
        match self {
            Objective::AveragePrecision => e.average_precision,
            Objective::CardPrecisionAt100 => e.card_precision_at_100,
        }
        .unwrap_or(0.0)
    }
}

/// One setting tried, with its score on each fold.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub params: TrainParams,
    pub scores: Vec<f64>,
    pub mean: f64,
    pub sd: f64,
    pub seconds: f64,
}

/// The search's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Tuned {
    pub objective: Objective,
    pub folds: usize,
    pub best: Trial,
    /// Every setting tried, in order.
    pub trials: Vec<Trial>,
    pub seconds: f64,
}

/// Progress after each fold.
pub struct TuneProgress<'a> {
    pub trial: usize,
    pub fold: usize,
    pub folds: usize,
    pub best: Option<&'a Trial>,
    pub elapsed: Duration,
    pub budget: Duration,
}

/// The trainer's settings worth searching, defaults first, then random draws.
pub fn candidates(seed: u64) -> impl Iterator<Item = TrainParams> {
    let mut rng = Rng::new(&[seed, 0x7475_6e65]);
    let mut first = true;
    std::iter::from_fn(move || {
        if std::mem::take(&mut first) {
            return Some(TrainParams::default());
        }
        Some(TrainParams {
            max_trees: *rng.pick(&[200, 400, 600, 800]),
            learning_rate: *rng.pick(&[0.03, 0.05, 0.08, 0.12]),
            max_depth: *rng.pick(&[4, 5, 6, 7, 8]),
            min_child_weight: *rng.pick(&[1.0, 3.0, 5.0, 10.0, 20.0]),
            subsample: *rng.pick(&[0.6, 0.8, 1.0]),
            colsample: *rng.pick(&[0.5, 0.7, 0.8, 1.0]),
            scale_pos_weight: *rng.pick(&[1.0, 2.0, 4.0, 8.0]),
            neg_subsample: *rng.pick(&[0.25, 0.5, 1.0]),
            lambda: *rng.pick(&[0.5, 1.0, 3.0]),
            seed,
            ..TrainParams::default()
        })
    })
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Tries settings over `folds` until `budget` is spent (a setting whose folds would not
/// fit in what is left, judged by the slowest so far, is not started; the first is always
/// finished), at most `max_trials`.
pub fn tune(
    table: &FeatureTable,
    folds: &[Protocol],
    objective: Objective,
    budget: Duration,
    max_trials: usize,
    seed: u64,
    progress: &mut dyn FnMut(TuneProgress<'_>),
) -> Result<Tuned, MlError> {
    if folds.is_empty() {
        return Err(MlError::Invalid("no folds to tune over".into()));
    }
    let t0 = Instant::now();
    let mut trials: Vec<Trial> = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut best: Option<usize> = None;
    for (n, params) in candidates(seed).take(max_trials.max(1)).enumerate() {
        if n > 0 && t0.elapsed() + slowest > budget {
            break;
        }
        let started = Instant::now();
        let mut scores = Vec::with_capacity(folds.len());
        for (k, p) in folds.iter().enumerate() {
            let e = evaluate(table, p, &params, &mut |_: &str, _: Round| {})?;
            scores.push(objective.of(&e));
            progress(TuneProgress {
                trial: n + 1,
                fold: k + 1,
                folds: folds.len(),
                best: best.map(|b| &trials[b]),
                elapsed: t0.elapsed(),
                budget,
            });
        }
        let took = started.elapsed();
        slowest = slowest.max(took);
        let (mean, sd) = mean_sd(&scores);
        trials.push(Trial {
            params,
            scores,
            mean,
            sd,
            seconds: took.as_secs_f64(),
        });
        if best.is_none_or(|b| mean > trials[b].mean) {
            best = Some(trials.len() - 1);
        }
    }
    let best = trials[best.unwrap_or(0)].clone();
    Ok(Tuned {
        objective,
        folds: folds.len(),
        best,
        trials,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_first_and_the_draws_are_deterministic_and_valid() {
        let a: Vec<TrainParams> = candidates(7).take(6).collect();
        let b: Vec<TrainParams> = candidates(7).take(6).collect();
        assert_eq!(a[0].max_trees, TrainParams::default().max_trees);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        for p in &a {
            assert!(0.0 < p.subsample && p.subsample <= 1.0);
            assert!(0.0 < p.neg_subsample && p.neg_subsample <= 1.0);
            assert!(p.max_depth >= 1 && p.max_trees >= 1);
        }
        assert_eq!(mean_sd(&[1.0, 3.0]), (2.0, 1.0));
    }
}
