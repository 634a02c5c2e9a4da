//! Operating points of the analyzer: the verdict thresholds (`suspicious` and `phishing`
//! scores, in the configuration), the ROC curve of scores over labelled mail (recall and
//! false-positive rate at every threshold, and its area), and the calibration that turns a
//! score into a probability of phishing (Platt scaling: a logistic curve fitted to labelled
//! scores). The built-in calibration was fitted on the development corpus with
//! `cardguard mail evaluate`; an issuer fits its own the same way.

use crate::analyze::Verdict;
use serde::Serialize;

/// The scores at and above which a message is suspicious, and phishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    pub suspicious: u32,
    pub phishing: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            suspicious: 25,
            phishing: 50,
        }
    }
}

/// Why thresholds were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "thresholds must satisfy 1 <= suspicious <= phishing <= 100 (got {suspicious} and {phishing})"
)]
pub struct ThresholdError {
    pub suspicious: u32,
    pub phishing: u32,
}

impl Thresholds {
    pub fn new(suspicious: u32, phishing: u32) -> Result<Thresholds, ThresholdError> {
        if (1..=phishing).contains(&suspicious) && phishing <= 100 {
            Ok(Thresholds {
                suspicious,
                phishing,
            })
        } else {
            Err(ThresholdError {
                suspicious,
                phishing,
            })
        }
    }

    pub fn verdict(&self, score: u32) -> Verdict {
        if score >= self.phishing {
            Verdict::Phishing
        } else if score >= self.suspicious {
            Verdict::Suspicious
        } else {
            Verdict::Clean
        }
    }
}

/// A logistic curve from score to probability: `1 / (1 + exp(-(a * score + b)))`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Calibration {
    pub a: f64,
    pub b: f64,
}

/// Fitted on `../shared/data/mail/dev` (414 phishing, 2,650 genuine messages) by
/// `cardguard mail evaluate --phish nazario-phishing0.mbox --ham ham --ham ham-easy`; the
/// probabilities hold for mail with that mix (one message in seven phishing).
pub const BUILTIN_CALIBRATION: Calibration = Calibration {
    a: 0.212_484,
    b: -5.315_852,
};

impl Calibration {
    pub fn probability(&self, score: u32) -> f64 {
        1.0 / (1.0 + (-(self.a * f64::from(score) + self.b)).exp())
    }

    /// Platt's fit: the logistic curve of least log-loss on the labelled scores, with his
    /// smoothed targets (no probability of exactly 0 or 1), by Newton's method.
    pub fn fit(phish: &[u32], ham: &[u32]) -> Calibration {
        let (np, nh) = (phish.len() as f64, ham.len() as f64);
        let hi = (np + 1.0) / (np + 2.0);
        let lo = 1.0 / (nh + 2.0);
        let data: Vec<(f64, f64)> = phish
            .iter()
            .map(|&s| (f64::from(s), hi))
            .chain(ham.iter().map(|&s| (f64::from(s), lo)))
            .collect();
        let (mut a, mut b) = (0.0f64, ((np + 1.0) / (nh + 1.0)).ln());
        for _ in 0..100 {
            // Gradient and Hessian of the log-loss in (a, b).
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for &(x, t) in &data {
                let p = 1.0 / (1.0 + (-(a * x + b)).exp());
                let d = p - t;
                let w = (p * (1.0 - p)).max(1e-12);
                ga += d * x;
                gb += d;
                haa += w * x * x;
                hab += w * x;
                hbb += w;
            }
            // A little ridge keeps the step finite when the classes barely overlap.
            haa += 1e-9;
            hbb += 1e-9;
            let det = haa * hbb - hab * hab;
            if det.abs() < 1e-18 {
                break;
            }
            let da = (hbb * ga - hab * gb) / det;
            let db = (haa * gb - hab * ga) / det;
            a -= da;
            b -= db;
            if da.abs() < 1e-10 && db.abs() < 1e-10 {
                break;
            }
        }
        Calibration { a, b }
    }
}

/// One operating point: flagging at `threshold` and above.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub threshold: u32,
    /// Phishing messages flagged, of all phishing.
    pub recall: f64,
    /// Genuine messages flagged, of all genuine.
    pub false_positive_rate: f64,
    pub flagged_phish: usize,
    pub flagged_ham: usize,
}

/// The ROC curve: a point at every threshold from 0 to 101 (101 flags nothing).
pub fn roc(phish: &[u32], ham: &[u32]) -> Vec<Point> {
    (0..=101)
        .map(|t| {
            let fp = phish.iter().filter(|&&s| s >= t).count();
            let fh = ham.iter().filter(|&&s| s >= t).count();
            Point {
                threshold: t,
                recall: ratio(fp, phish.len()),
                false_positive_rate: ratio(fh, ham.len()),
                flagged_phish: fp,
                flagged_ham: fh,
            }
        })
        .collect()
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The area under the ROC curve (trapezoids): the chance that a phishing message scores
/// above a genuine one, ties counting half.
pub fn auc(points: &[Point]) -> f64 {
    let mut pts: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.false_positive_rate, p.recall))
        .collect();
    pts.sort_by(|x, y| x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal));
    pts.windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
        .sum()
}

/// The ROC curve as an SVG plot (false-positive rate across, recall up), with the
/// thresholds in force marked.
pub fn roc_svg(points: &[Point], marks: &Thresholds) -> String {
    use std::fmt::Write;
    let (w, h, m) = (480.0, 480.0, 50.0);
    let x = |fpr: f64| m + fpr * (w - 2.0 * m);
    let y = |rec: f64| h - m - rec * (h - 2.0 * m);
    let mut pts: Vec<&Point> = points.iter().collect();
    pts.sort_by(|a, b| {
        (a.false_positive_rate, a.recall)
            .partial_cmp(&(b.false_positive_rate, b.recall))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let path: Vec<String> = pts
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.false_positive_rate), y(p.recall)))
        .collect();
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12" role="img" aria-label="ROC curve">
<rect x="{m}" y="{m}" width="{iw}" height="{ih}" fill="none" stroke="#999"/>
<line x1="{m}" y1="{by}" x2="{rx}" y2="{m}" stroke="#ccc" stroke-dasharray="4 4"/>
<polyline fill="none" stroke="#2b6cb0" stroke-width="2" points="{pl}"/>
<text x="{cx}" y="{ly}" text-anchor="middle">false-positive rate</text>
<text x="14" y="{cy}" transform="rotate(-90 14 {cy})" text-anchor="middle">recall</text>
"##,
        iw = w - 2.0 * m,
        ih = h - 2.0 * m,
        by = h - m,
        rx = w - m,
        pl = path.join(" "),
        cx = w / 2.0,
        ly = h - 12.0,
        cy = h / 2.0,
    );
    for (t, name) in [
        (marks.suspicious, "suspicious"),
        (marks.phishing, "phishing"),
    ] {
        if let Some(p) = points.iter().find(|p| p.threshold == t) {
            let _ = writeln!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="5" fill="#c05621"/><text x="{:.1}" y="{:.1}">{name} ≥ {t}: recall {:.3}, FPR {:.4}</text>"##,
                x(p.false_positive_rate),
                y(p.recall),
                x(p.false_positive_rate) + 8.0,
                y(p.recall) + if name == "phishing" { 16.0 } else { -8.0 },
                p.recall,
                p.false_positive_rate
            );
        }
    }
    for i in 0..=4 {
        let v = f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{v:.2}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{v:.2}</text>"##,
            x(v),
            h - m + 16.0,
            m - 6.0,
            y(v) + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_decide_and_refuse_nonsense() {
        let t = Thresholds::default();
        assert_eq!(t.verdict(24), Verdict::Clean);
        assert_eq!(t.verdict(25), Verdict::Suspicious);
        assert_eq!(t.verdict(50), Verdict::Phishing);
        assert!(Thresholds::new(60, 40).is_err());
        assert!(Thresholds::new(0, 40).is_err());
        assert!(Thresholds::new(30, 101).is_err());
        assert_eq!(
            Thresholds::new(30, 30).unwrap().verdict(30),
            Verdict::Phishing
        );
    }

    #[test]
    fn the_roc_of_separable_scores_has_area_one_and_the_fit_orders_them() {
        let phish = [60, 70, 80, 90];
        let ham = [0, 0, 5, 10, 20];
        let pts = roc(&phish, &ham);
        assert_eq!(pts.len(), 102);
        let at = |t: u32| pts.iter().find(|p| p.threshold == t).unwrap();
        assert_eq!((at(0).recall, at(0).false_positive_rate), (1.0, 1.0));
        assert_eq!((at(30).recall, at(30).false_positive_rate), (1.0, 0.0));
        assert_eq!((at(101).recall, at(101).false_positive_rate), (0.0, 0.0));
        assert!((auc(&pts) - 1.0).abs() < 1e-9);
        let c = Calibration::fit(&phish, &ham);
        assert!(c.a > 0.0, "{c:?}");
        assert!(c.probability(90) > 0.5 && c.probability(0) < 0.5, "{c:?}");
        assert!(roc_svg(&pts, &Thresholds::default()).contains("<polyline"));
    }

    #[test]
    fn overlapping_scores_give_a_smaller_area_and_probabilities_between() {
        let phish = [10, 30, 50, 70];
        let ham = [0, 10, 30, 5];
        let a = auc(&roc(&phish, &ham));
        assert!(a > 0.5 && a < 1.0, "{a}");
        let c = Calibration::fit(&phish, &ham);
        let p = c.probability(30);
        assert!(p > 0.2 && p < 0.8, "{p}");
    }
}
