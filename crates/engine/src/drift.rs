//! What a model was trained on, and how far live traffic has moved from it: the
//! distribution of the risk score and of each feature over the training data (decile bins),
//! recorded in the model file, and the population stability index (PSI) of what is seen
//! live against it. A PSI under 0.1 is stable, 0.1 to 0.2 a shift worth watching, over 0.2
//! a population the model was not trained on.

use serde::{Deserialize, Serialize};

/// A distribution as bins: edges `e0 < e1 < …` make the bins `(-inf, e0]`, `(e0, e1]`, …,
/// `(e_last, inf)`, with the number of values in each (integers, so that the model file's
/// checksum survives a round trip through JSON exactly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    pub edges: Vec<f32>,
    pub counts: Vec<u64>,
}

impl Distribution {
    /// Decile bins of `values` (fewer when values repeat).
    pub fn of(values: &mut [f32]) -> Distribution {
        values.sort_by(f32::total_cmp);
        let n = values.len();
        let mut edges: Vec<f32> = Vec::new();
        if n > 0 {
            for k in 1..10 {
                let e = values[(k * n / 10).min(n - 1)];
                if edges.last().is_none_or(|l| *l < e) && e.is_finite() {
                    edges.push(e);
                }
            }
        }
        let mut counts = vec![0u64; edges.len() + 1];
        for v in values.iter() {
            counts[bin(&edges, *v)] += 1;
        }
        Distribution { edges, counts }
    }

    /// The share of values in each bin.
    pub fn fractions(&self) -> Vec<f64> {
        let total = self.counts.iter().sum::<u64>().max(1) as f64;
        self.counts.iter().map(|c| *c as f64 / total).collect()
    }

    pub fn bins(&self) -> usize {
        self.edges.len() + 1
    }

    pub fn bin(&self, v: f32) -> usize {
        bin(&self.edges, v)
    }

    /// The PSI of `observed` counts (one per bin) against this distribution.
    pub fn psi(&self, observed: &[u64]) -> f64 {
        let total: u64 = observed.iter().sum();
        if total == 0 {
            return 0.0;
        }
        const EPS: f64 = 1e-4;
        self.fractions()
            .iter()
            .zip(observed)
            .map(|(e, o)| {
                let a = (*o as f64 / total as f64).max(EPS);
                let e = e.max(EPS);
                (a - e) * (a / e).ln()
            })
            .sum()
    }
}

fn bin(edges: &[f32], v: f32) -> usize {
    edges.partition_point(|e| *e < v)
}

/// The training data of a model, as the model file records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Rows the distributions were taken from.
    pub rows: u64,
    /// The risk score (0-100) the model gives the training rows.
    pub score: Distribution,
    /// Each feature the model reads, by name.
    pub features: Vec<(String, Distribution)>,
}

impl TrainingSummary {
    /// The summary of `rows` (row-major, `names.len()` wide) and the risk score of each.
    pub fn of(names: &[String], x: &[f32], risk: &[u8]) -> TrainingSummary {
        let width = names.len().max(1);
        let n = x.len() / width;
        let mut col = Vec::with_capacity(n);
        let features = names
            .iter()
            .enumerate()
            .map(|(j, name)| {
                col.clear();
                col.extend((0..n).map(|i| x[i * width + j]));
                (name.clone(), Distribution::of(&mut col))
            })
            .collect();
        let mut scores: Vec<f32> = risk.iter().map(|r| f32::from(*r)).collect();
        TrainingSummary {
            rows: n as u64,
            score: Distribution::of(&mut scores),
            features,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_population_is_stable_and_a_shifted_one_is_not() {
        let mut train: Vec<f32> = (0..10_000).map(|i| (i % 1000) as f32).collect();
        let d = Distribution::of(&mut train);
        assert_eq!(d.bins(), 10);
        assert!(
            d.fractions().iter().all(|f| (f - 0.1).abs() < 0.01),
            "{d:?}"
        );
        let count = |vals: &[f32]| {
            let mut c = vec![0u64; d.bins()];
            for v in vals {
                c[d.bin(*v)] += 1;
            }
            c
        };
        let same: Vec<f32> = (0..5_000).map(|i| ((i * 7) % 1000) as f32).collect();
        assert!(d.psi(&count(&same)) < 0.01);
        let shifted: Vec<f32> = (0..5_000).map(|i| 500.0 + (i % 1000) as f32).collect();
        assert!(d.psi(&count(&shifted)) > 0.2, "{}", d.psi(&count(&shifted)));
        assert_eq!(d.psi(&vec![0; d.bins()]), 0.0);
    }

    #[test]
    fn repeated_values_make_fewer_bins() {
        let mut v = vec![0.0f32; 900];
        v.extend(std::iter::repeat_n(1.0, 100));
        let d = Distribution::of(&mut v);
        // Values above the largest seen in training have a bin of their own.
        assert_eq!(d.edges, vec![0.0, 1.0]);
        assert_eq!(d.counts, vec![900, 100, 0]);
        assert_eq!(d.fractions(), vec![0.9, 0.1, 0.0]);
        let s = TrainingSummary::of(&["a".into(), "b".into()], &[1.0, 2.0, 3.0, 4.0], &[10, 90]);
        assert_eq!(s.rows, 2);
        assert_eq!(s.features[1].0, "b");
    }
}
