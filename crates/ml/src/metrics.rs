//! Evaluation metrics as the fraud detection handbook computes them: average precision and
//! ROC AUC (scikit-learn's definitions, ties grouped), and card precision@k per day with the
//! cards already detected on earlier days removed.

use std::collections::{HashMap, HashSet};

/// Indices of `scores` from the highest score down (NaN last).
fn by_score_desc(scores: &[f32]) -> Vec<usize> {
    let mut o: Vec<usize> = (0..scores.len()).collect();
    o.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    o
}

/// The one pass behind every threshold metric: cumulative (true positives, false
/// positives) after each distinct score, highest score first (ties grouped, NaN last).
pub fn threshold_counts(scores: &[f32], labels: &[bool]) -> Vec<(usize, usize)> {
    let o = by_score_desc(scores);
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut out = Vec::new();
    let mut i = 0;
    while i < o.len() {
        let s = scores[o[i]];
        while i < o.len() && scores[o[i]].total_cmp(&s).is_eq() {
            if labels[o[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        out.push((tp, fp));
    }
    out
}

/// Average precision: the sum over distinct thresholds of precision times the recall gained
/// (scikit-learn's `average_precision_score`). `None` without a positive.
pub fn average_precision(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 {
        return None;
    }
    let (mut ap, mut last_recall) = (0.0f64, 0.0f64);
    for (tp, fp) in threshold_counts(scores, labels) {
        let recall = tp as f64 / positives as f64;
        ap += (recall - last_recall) * tp as f64 / (tp + fp) as f64;
        last_recall = recall;
    }
    Some(ap)
}

/// Area under the ROC curve: the trapezoids between the thresholds (which counts ties
/// half, as the Mann-Whitney statistic does). `None` unless both classes occur.
pub fn roc_auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let (mut area, mut last) = (0.0f64, (0usize, 0usize));
    for (tp, fp) in threshold_counts(scores, labels) {
        area += (fp - last.1) as f64 * (tp + last.0) as f64 / 2.0;
        last = (tp, fp);
    }
    Some(area / (pos as f64 * neg as f64))
}

/// Points of a curve, (x, y) in [0, 1].
pub type Curve = Vec<(f64, f64)>;

/// The precision-recall curve (recall, precision) and the ROC curve (false positive rate,
/// true positive rate), highest score first.
pub fn curves(scores: &[f32], labels: &[bool]) -> (Curve, Curve) {
    let pos = labels.iter().filter(|&&l| l).count().max(1) as f64;
    let neg = (labels.len() as f64 - pos).max(1.0);
    let mut pr = vec![(0.0, 1.0)];
    let mut roc = vec![(0.0, 0.0)];
    for (tp, fp) in threshold_counts(scores, labels) {
        let (tp, fp) = (tp as f64, fp as f64);
        pr.push((tp / pos, tp / (tp + fp)));
        roc.push((fp / neg, tp / pos));
    }
    (pr, roc)
}

/// Card precision@k (the handbook's `card_precision_top_k`): each day, every card scored by
/// its highest transaction score and labelled by any fraud that day; the share of frauds
/// among the k highest cards; averaged over the days. Cards found compromised in an earlier
/// day's top k are left out of later days.
pub fn card_precision_at_k(
    days: &[i64],
    cards: &[u64],
    scores: &[f32],
    labels: &[bool],
    k: usize,
) -> Option<f64> {
    let mut by_day: HashMap<i64, HashMap<u64, (f32, bool)>> = HashMap::new();
    for i in 0..days.len() {
        let e = by_day
            .entry(days[i])
            .or_default()
            .entry(cards[i])
            .or_insert((f32::NEG_INFINITY, false));
        e.0 = e.0.max(scores[i]);
        e.1 |= labels[i];
    }
    let mut order: Vec<i64> = by_day.keys().copied().collect();
    order.sort_unstable();
    if order.is_empty() || k == 0 {
        return None;
    }
    let mut detected: HashSet<u64> = HashSet::new();
    let mut sum = 0.0;
    for d in &order {
        let mut day: Vec<(u64, f32, bool)> = by_day[d]
            .iter()
            .filter(|(c, _)| !detected.contains(*c))
            .map(|(c, (s, l))| (*c, *s, *l))
            .collect();
        // Highest score first; equal scores by card for a stable answer.
        day.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let top: Vec<u64> = day.iter().take(k).filter(|x| x.2).map(|x| x.0).collect();
        sum += top.len() as f64 / k as f64;
        detected.extend(top);
    }
    Some(sum / order.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scikit_learn_examples() {
        // sklearn.metrics.average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        let y = [false, false, true, true];
        let s = [0.1, 0.4, 0.35, 0.8];
        assert!((average_precision(&s, &y).unwrap() - 0.833_333_333_3).abs() < 1e-9);
        // sklearn.metrics.roc_auc_score: 0.75
        assert!((roc_auc(&s, &y).unwrap() - 0.75).abs() < 1e-12);
    }

    #[test]
    fn ties_are_grouped() {
        // All scores equal: AP is the positive rate, AUC one half.
        let y = [true, false, false, true, false];
        let s = [0.5; 5];
        assert!((average_precision(&s, &y).unwrap() - 0.4).abs() < 1e-12);
        assert!((roc_auc(&s, &y).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(average_precision(&s, &[false; 5]), None);
        assert_eq!(roc_auc(&s, &[true; 5]), None);
    }

    #[test]
    fn card_precision_counts_cards_once_and_drops_detected_ones() {
        // Day 1: card 1 has a fraud (score 0.9), card 2 is genuine (0.8), card 3 fraud (0.1).
        // Day 2: card 1 again (already detected: left out), card 3 fraud (0.7), card 4 (0.6).
        let days = [1, 1, 1, 1, 2, 2, 2];
        let cards = [1, 1, 2, 3, 1, 3, 4];
        let scores = [0.9, 0.2, 0.8, 0.1, 0.95, 0.7, 0.6];
        let labels = [true, false, false, true, true, true, false];
        // k = 2: day 1 top {1, 2} → 1/2; day 2 top {3, 4} → 1/2.
        let cp = card_precision_at_k(&days, &cards, &scores, &labels, 2).unwrap();
        assert!((cp - 0.5).abs() < 1e-12, "{cp}");
        // k = 1: day 1 → card 1 (fraud) 1.0; day 2 without card 1 → card 3 (fraud) 1.0.
        let cp = card_precision_at_k(&days, &cards, &scores, &labels, 1).unwrap();
        assert!((cp - 1.0).abs() < 1e-12, "{cp}");
    }
}
