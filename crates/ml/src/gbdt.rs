//! cardguard's gradient-boosted tree trainer: logistic loss, histogram splits over at most 256
//! quantile bins per feature (a quarter of them at the quantiles of the fraud rows), depth-wise trees with the histogram-subtraction trick, row and
//! column sampling, a positive-class weight for the imbalance, and early stopping on the
//! average precision of a validation set that lies after the training rows in time.

use crate::MlError;
use crate::metrics::average_precision;
use crate::model::{Comparison, Model, Node, Tree};
use cardguard_core::rng::Rng;

/// Trainer settings (a settings file from `ml tune` holds them as JSON).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TrainParams {
    /// Most trees.
    pub max_trees: usize,
    pub learning_rate: f32,
    pub max_depth: usize,
    /// Least hessian weight in a child.
    pub min_child_weight: f64,
    /// L2 regularisation of leaf values.
    pub lambda: f64,
    /// Least loss reduction for a split.
    pub gamma: f64,
    /// Share of rows each tree sees.
    pub subsample: f64,
    /// Share of features each tree may split on.
    pub colsample: f64,
    /// Weight of a fraud row against a genuine one.
    pub scale_pos_weight: f64,
    /// Share of the genuine rows (within `subsample`) each tree sees.
    pub neg_subsample: f64,
    /// Stop when validation average precision has not improved for this many trees.
    pub early_stopping_rounds: usize,
    pub seed: u64,
    /// Threads for histograms (0: one per core).
    pub threads: usize,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            max_trees: 600,
            learning_rate: 0.05,
            max_depth: 6,
            min_child_weight: 5.0,
            lambda: 1.0,
            gamma: 0.0,
            subsample: 0.8,
            colsample: 0.8,
            scale_pos_weight: 1.0,
            neg_subsample: 1.0,
            early_stopping_rounds: 40,
            seed: 1,
            threads: 0,
        }
    }
}

/// Rows to learn from: row-major features and labels.
pub struct TrainSet<'a> {
    pub x: &'a [f32],
    pub y: &'a [bool],
    pub width: usize,
}

impl TrainSet<'_> {
    fn rows(&self) -> usize {
        self.y.len()
    }
    fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.width..(i + 1) * self.width]
    }
}

/// What a training run reports each round.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    pub trees: usize,
    pub max_trees: usize,
    pub valid_ap: Option<f64>,
    pub best_trees: usize,
}

/// Per-feature bin edges: bin(x) = number of edges below x, so `x <= edges[b]` is bin ≤ b.
struct Bins {
    edges: Vec<Vec<f32>>,
}

const MAX_BINS: usize = 256;

/// Bins whose edges come from the fraud rows' values alone: frauds are under 1% of the rows,
/// so quantiles of all rows put every extreme value (an amount five times the card's habit)
/// in one top bin, where no split can tell them apart.
const FRAUD_BINS: usize = 64;

/// Up to `bins` edges at the quantiles of the distinct values of `col` (sorted, deduplicated):
/// every value its own bin when there are fewer.
fn quantile_edges(col: &[f32], bins: usize) -> Vec<f32> {
    if col.len() < bins {
        // The largest value needs no edge.
        return col[..col.len().saturating_sub(1)].to_vec();
    }
    (1..bins).map(|q| col[q * col.len() / bins]).collect()
}

impl Bins {
    fn fit(set: &TrainSet<'_>) -> Bins {
        let n = set.rows();
        // At most 200,000 rows decide the edges (every fraud row among them).
        let step = (n / 200_000).max(1);
        let mut edges = Vec::with_capacity(set.width);
        let mut col: Vec<f32> = Vec::with_capacity(n / step + 1);
        let mut fraud_col: Vec<f32> = Vec::new();
        for f in 0..set.width {
            col.clear();
            fraud_col.clear();
            for i in 0..n {
                let v = set.x[i * set.width + f];
                if v.is_nan() {
                    continue;
                }
                if i % step == 0 {
                    col.push(v);
                }
                if set.y[i] {
                    fraud_col.push(v);
                }
            }
            for c in [&mut col, &mut fraud_col] {
                c.sort_by(f32::total_cmp);
                c.dedup();
            }
            let mut e = quantile_edges(&col, MAX_BINS);
            if e.len() + 1 >= MAX_BINS {
                // Room for the frauds' own edges: fewer from all rows, the rest from theirs.
                e = quantile_edges(&col, MAX_BINS - FRAUD_BINS);
                e.extend(quantile_edges(&fraud_col, FRAUD_BINS));
                e.sort_by(f32::total_cmp);
                e.dedup();
            }
            debug_assert!(e.len() < MAX_BINS);
            edges.push(e);
        }
        Bins { edges }
    }

    fn bin(&self, f: usize, v: f32) -> u8 {
        if v.is_nan() {
            return 0;
        }
        self.edges[f].partition_point(|e| *e < v) as u8
    }

    fn transform(&self, set: &TrainSet<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(set.x.len());
        for i in 0..set.rows() {
            for (f, &v) in set.row(i).iter().enumerate() {
                out.push(self.bin(f, v));
            }
        }
        out
    }
}

type Hist = Vec<[f64; 2]>;

/// A node being grown: its rows and their gradient sums.
struct Grow {
    node: usize,
    rows: Vec<u32>,
    g: f64,
    h: f64,
    depth: usize,
    hist: Option<Hist>,
}

struct Split {
    feature: usize,
    bin: u8,
    gain: f64,
    gl: f64,
    hl: f64,
}

fn build_hist(rows: &[u32], bins: &[u8], width: usize, grad: &[[f64; 2]], threads: usize) -> Hist {
    let one = |rows: &[u32]| {
        let mut h = vec![[0.0f64; 2]; width * MAX_BINS];
        for &r in rows {
            let r = r as usize;
            let gh = grad[r];
            let rb = &bins[r * width..(r + 1) * width];
            for (f, &b) in rb.iter().enumerate() {
                let c = &mut h[f * MAX_BINS + b as usize];
                c[0] += gh[0];
                c[1] += gh[1];
            }
        }
        h
    };
    if threads <= 1 || rows.len() < 20_000 {
        return one(rows);
    }
    let chunk = rows.len().div_ceil(threads);
    let parts: Vec<Hist> = std::thread::scope(|s| {
        let hs: Vec<_> = rows
            .chunks(chunk)
            .map(|c| s.spawn(move || one(c)))
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![[0.0; 2]; width * MAX_BINS])
            })
            .collect()
    });
    let mut it = parts.into_iter();
    let mut total = it
        .next()
        .unwrap_or_else(|| vec![[0.0; 2]; width * MAX_BINS]);
    for p in it {
        for (a, b) in total.iter_mut().zip(p) {
            a[0] += b[0];
            a[1] += b[1];
        }
    }
    total
}

fn best_split(
    hist: &Hist,
    features: &[usize],
    nbins: &[usize],
    g: f64,
    h: f64,
    p: &TrainParams,
) -> Option<Split> {
    let score = |g: f64, h: f64| g * g / (h + p.lambda);
    let parent = score(g, h);
    let mut best: Option<Split> = None;
    for &f in features {
        let (mut gl, mut hl) = (0.0, 0.0);
        for b in 0..nbins[f].saturating_sub(1) {
            let c = hist[f * MAX_BINS + b];
            gl += c[0];
            hl += c[1];
            let (gr, hr) = (g - gl, h - hl);
            if hl < p.min_child_weight || hr < p.min_child_weight {
                continue;
            }
            let gain = 0.5 * (score(gl, hl) + score(gr, hr) - parent) - p.gamma;
            if gain > 1e-12 && best.as_ref().is_none_or(|s| gain > s.gain) {
                best = Some(Split {
                    feature: f,
                    bin: b as u8,
                    gain,
                    gl,
                    hl,
                });
            }
        }
    }
    best
}

/// One tree on the rows in `rows`, as (nodes, split bins per node for the training walk).
/// The training rows as bins: row-major bin numbers, the bins per feature and their edges.
struct Binned<'a> {
    bins: &'a [u8],
    width: usize,
    nbins: &'a [usize],
    edges: &'a Bins,
}

fn grow_tree(
    rows: Vec<u32>,
    data: &Binned<'_>,
    grad: &[[f64; 2]],
    features: &[usize],
    p: &TrainParams,
    threads: usize,
) -> (Vec<Node>, Vec<u8>) {
    let (bins, width, nbins, edges) = (data.bins, data.width, data.nbins, data.edges);
    let (g, h) = rows.iter().fold((0.0, 0.0), |a, &r| {
        (a.0 + grad[r as usize][0], a.1 + grad[r as usize][1])
    });
    let mut nodes = vec![Node::leaf(0.0, h as f32)];
    let mut split_bins = vec![0u8];
    let leaf_value = |g: f64, h: f64| (-g / (h + p.lambda)) as f32 * p.learning_rate;
    let mut level = vec![Grow {
        node: 0,
        rows,
        g,
        h,
        depth: 0,
        hist: None,
    }];
    while !level.is_empty() {
        let mut next = Vec::new();
        for mut n in level {
            nodes[n.node] = Node::leaf(leaf_value(n.g, n.h), n.h as f32);
            if n.depth >= p.max_depth || n.h < 2.0 * p.min_child_weight || n.rows.len() < 2 {
                continue;
            }
            let hist = match n.hist.take() {
                Some(h) => h,
                None => build_hist(&n.rows, bins, width, grad, threads),
            };
            let Some(s) = best_split(&hist, features, nbins, n.g, n.h, p) else {
                continue;
            };
            let (mut lrows, mut rrows) = (Vec::new(), Vec::new());
            for &r in &n.rows {
                if bins[r as usize * width + s.feature] <= s.bin {
                    lrows.push(r);
                } else {
                    rrows.push(r);
                }
            }
            let (li, ri) = (nodes.len(), nodes.len() + 1);
            nodes.push(Node::leaf(0.0, 0.0));
            nodes.push(Node::leaf(0.0, 0.0));
            split_bins.push(0);
            split_bins.push(0);
            nodes[n.node] = Node {
                feature: Some(s.feature as u32),
                threshold: edges.edges[s.feature][s.bin as usize],
                left: li as u32,
                right: ri as u32,
                // NaN bins as 0: left.
                missing_left: true,
                value: 0.0,
                cover: n.h as f32,
            };
            split_bins[n.node] = s.bin;
            // Histogram of the smaller child built, the larger one by subtraction.
            let left_small = lrows.len() <= rrows.len();
            let (small, small_is_left) = if left_small {
                (&lrows, true)
            } else {
                (&rrows, false)
            };
            let deeper = n.depth + 1 < p.max_depth;
            let (lh, rh) = if deeper {
                let sh = build_hist(small, bins, width, grad, threads);
                let mut big = hist;
                for (a, b) in big.iter_mut().zip(&sh) {
                    a[0] -= b[0];
                    a[1] -= b[1];
                }
                if small_is_left {
                    (Some(sh), Some(big))
                } else {
                    (Some(big), Some(sh))
                }
            } else {
                (None, None)
            };
            next.push(Grow {
                node: li,
                rows: lrows,
                g: s.gl,
                h: s.hl,
                depth: n.depth + 1,
                hist: lh,
            });
            next.push(Grow {
                node: ri,
                rows: rrows,
                g: n.g - s.gl,
                h: n.h - s.hl,
                depth: n.depth + 1,
                hist: rh,
            });
        }
        level = next;
    }
    (nodes, split_bins)
}

fn walk_binned(nodes: &[Node], split_bins: &[u8], row_bins: &[u8]) -> f32 {
    let mut i = 0;
    loop {
        let n = &nodes[i];
        let Some(f) = n.feature else { return n.value };
        i = if row_bins[f as usize] <= split_bins[i] {
            n.left
        } else {
            n.right
        } as usize;
    }
}

/// Trains on `train`, stopping early on `valid` (rows after the training rows in time).
pub fn train(
    train: &TrainSet<'_>,
    valid: Option<&TrainSet<'_>>,
    names: &[String],
    p: &TrainParams,
    progress: &mut dyn FnMut(Round),
) -> Result<Model, MlError> {
    let n = train.rows();
    let width = train.width;
    if n == 0 || train.x.len() != n * width || names.len() != width {
        return Err(MlError::Invalid(
            "training set is empty or misshapen".into(),
        ));
    }
    let pos = train.y.iter().filter(|&&y| y).count();
    if pos == 0 || pos == n {
        return Err(MlError::Invalid(
            "training set needs both frauds and genuine transactions".into(),
        ));
    }
    if ![p.subsample, p.colsample, p.neg_subsample]
        .iter()
        .all(|v| 0.0 < *v && *v <= 1.0)
    {
        return Err(MlError::Invalid(
            "subsample, colsample and neg_subsample must be in (0, 1]".into(),
        ));
    }
    let threads = if p.threads == 0 {
        std::thread::available_parallelism().map_or(1, |t| t.get())
    } else {
        p.threads
    };
    let bins_of = Bins::fit(train);
    let bins = bins_of.transform(train);
    let nbins: Vec<usize> = bins_of.edges.iter().map(|e| e.len() + 1).collect();
    // Base margin: the weighted log-odds of fraud.
    let wpos = pos as f64 * p.scale_pos_weight;
    let base = (wpos / (n - pos) as f64).ln() as f32;
    let mut margin = vec![base; n];
    let mut valid_margin: Vec<f32> = valid.map(|v| vec![base; v.rows()]).unwrap_or_default();
    let mut grad = vec![[0.0f64; 2]; n];
    let mut rng = Rng::from_state(p.seed);
    let mut trees: Vec<Tree> = Vec::new();
    let mut best = (f64::NEG_INFINITY, 0usize);
    for round in 0..p.max_trees {
        for i in 0..n {
            let pr = 1.0 / (1.0 + (-f64::from(margin[i])).exp());
            let (y, w) = if train.y[i] {
                (1.0, p.scale_pos_weight)
            } else {
                (0.0, 1.0)
            };
            grad[i] = [(pr - y) * w, (pr * (1.0 - pr)).max(1e-16) * w];
        }
        // Each tree sees a sample of the rows, and of the genuine ones a further share: the
        // frauds are what there is least of (LightGBM's balanced bagging).
        let rows: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                let keep = if train.y[i as usize] {
                    p.subsample
                } else {
                    p.subsample * p.neg_subsample
                };
                keep >= 1.0 || rng.unit() < keep
            })
            .collect();
        let mut features: Vec<usize> = (0..width)
            .filter(|&f| nbins[f] > 1 && (p.colsample >= 1.0 || rng.unit() < p.colsample))
            .collect();
        if features.is_empty() {
            features = (0..width).filter(|&f| nbins[f] > 1).collect();
        }
        let data = Binned {
            bins: &bins,
            width,
            nbins: &nbins,
            edges: &bins_of,
        };
        let (nodes, split_bins) = grow_tree(rows, &data, &grad, &features, p, threads);
        for (i, m) in margin.iter_mut().enumerate() {
            *m += walk_binned(&nodes, &split_bins, &bins[i * width..(i + 1) * width]);
        }
        let tree = Tree { nodes };
        let mut valid_ap = None;
        if let Some(v) = valid {
            for (i, m) in valid_margin.iter_mut().enumerate() {
                *m += tree.predict(v.row(i), Comparison::Le);
            }
            valid_ap = average_precision(&valid_margin, v.y);
        }
        trees.push(tree);
        match valid_ap {
            Some(ap) if ap > best.0 => best = (ap, trees.len()),
            Some(_) => {}
            None => best.1 = trees.len(),
        }
        progress(Round {
            trees: round + 1,
            max_trees: p.max_trees,
            valid_ap,
            best_trees: best.1,
        });
        if valid_ap.is_some() && trees.len() >= best.1 + p.early_stopping_rounds {
            break;
        }
    }
    trees.truncate(best.1.max(1));
    let provenance = serde_json::json!({
        "trainer": "cardguard-gbdt",
        "params": p,
        "train_rows": n,
        "train_frauds": pos,
        "valid_rows": valid.map(|v| v.rows()),
        "valid_average_precision": best.0.is_finite().then_some(best.0),
        "trees": trees.len(),
    });
    Model::new(
        names.to_vec(),
        Comparison::Le,
        base,
        trees,
        provenance,
        "gbdt",
    )
    .map_err(MlError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fraud when x0 > 0.7 and x1 < 0.3 (plus 2% label noise); x2 is noise.
    fn data(n: usize, seed: u64) -> (Vec<f32>, Vec<bool>) {
        let mut r = Rng::from_state(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let a = r.unit() as f32;
            let b = r.unit() as f32;
            let c = r.unit() as f32;
            x.extend([a, b, c]);
            y.push((a > 0.7 && b < 0.3) ^ (r.unit() < 0.02));
        }
        (x, y)
    }

    #[test]
    fn learns_an_interaction_and_stops_early() {
        let (x, y) = data(20_000, 1);
        let (vx, vy) = data(5_000, 2);
        let names: Vec<String> = ["a", "b", "noise"].iter().map(|s| s.to_string()).collect();
        let p = TrainParams {
            max_trees: 200,
            max_depth: 3,
            learning_rate: 0.3,
            min_child_weight: 1.0,
            early_stopping_rounds: 10,
            ..TrainParams::default()
        };
        let mut rounds = 0;
        let m = train(
            &TrainSet {
                x: &x,
                y: &y,
                width: 3,
            },
            Some(&TrainSet {
                x: &vx,
                y: &vy,
                width: 3,
            }),
            &names,
            &p,
            &mut |_| rounds += 1,
        )
        .unwrap();
        assert!(m.trees.len() < rounds || rounds < 200, "stopped early");
        let scores: Vec<f32> = (0..vy.len())
            .map(|i| m.predict(&vx[i * 3..i * 3 + 3]))
            .collect();
        let ap = average_precision(&scores, &vy).unwrap();
        assert!(ap > 0.85, "validation AP {ap}");
        assert!(m.predict(&[0.9, 0.1, 0.5]) > 0.8);
        assert!(m.predict(&[0.2, 0.1, 0.5]) < 0.1);
        assert!(m.trees.iter().all(|t| t.depth() <= 3));
        // Deterministic for a seed.
        let again = train(
            &TrainSet {
                x: &x,
                y: &y,
                width: 3,
            },
            Some(&TrainSet {
                x: &vx,
                y: &vy,
                width: 3,
            }),
            &names,
            &p,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(again.checksum, m.checksum);
    }

    #[test]
    fn refuses_a_set_without_both_classes() {
        let names = vec!["a".to_string()];
        let e = train(
            &TrainSet {
                x: &[1.0, 2.0],
                y: &[false, false],
                width: 1,
            },
            None,
            &names,
            &TrainParams::default(),
            &mut |_| {},
        );
        assert!(e.is_err());
    }

    #[test]
    fn bins_put_equal_values_together_and_split_between_them() {
        let x: Vec<f32> = (0..1000).map(|i| (i % 10) as f32).collect();
        let y: Vec<bool> = (0..1000).map(|i| i % 2 == 0).collect();
        let set = TrainSet {
            x: &x,
            y: &y,
            width: 1,
        };
        let b = Bins::fit(&set);
        assert_eq!(b.edges[0].len(), 9);
        assert_eq!(b.bin(0, 0.0), 0);
        assert_eq!(b.bin(0, 9.0), 9);
        assert_eq!(b.bin(0, 4.5), 5);
    }

    /// 10,000 genuine rows spread over 0..10,000 and 20 frauds between 9,990 and 10,000: the
    /// quantiles of all rows would put the frauds in one or two bins; the frauds' own edges
    /// split them apart. Edges stay sorted and fewer than 256.
    #[test]
    fn rare_frauds_get_bins_of_their_own() {
        let mut x: Vec<f32> = (0..10_000).map(|i| i as f32).collect();
        let mut y = vec![false; x.len()];
        x.extend((0..20).map(|i| 9_990.0 + i as f32 * 0.5));
        y.extend([true; 20]);
        let b = Bins::fit(&TrainSet {
            x: &x,
            y: &y,
            width: 1,
        });
        let e = &b.edges[0];
        assert!(e.len() < MAX_BINS && e.windows(2).all(|w| w[0] < w[1]));
        let fraud_bins: std::collections::HashSet<u8> =
            x[10_000..].iter().map(|&v| b.bin(0, v)).collect();
        assert!(fraud_bins.len() >= 15, "{} bins", fraud_bins.len());
        // The genuine rows still have quantile bins across their whole range.
        assert!(b.bin(0, 5_000.0) > 50 && b.bin(0, 5_000.0) < 200);
    }
}
