//! Gradient-boosted trees compiled for `decide()`: every tree's nodes in one array, breadth
//! first, children side by side (12 bytes a node), walked without recursion. The risk score
//! is the fraud probability in percent; the reasons are the features with the largest
//! positive TreeSHAP values (Lundberg et al., path-dependent Tree SHAP), with their values.

use crate::features::{FEATURE_NAMES, Features, N_FEATURES, TxContext};
use crate::score::{Contribution, Score, Scorer};
use cardguard_core::ReasonCode;

/// A node as a model file gives it, features already in the engine's numbering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TreeNode {
    /// `None` for a leaf.
    pub feature: Option<usize>,
    pub threshold: f32,
    pub left: usize,
    pub right: usize,
    pub missing_left: bool,
    /// The leaf's margin.
    pub value: f32,
    /// Training weight through the node (TreeSHAP needs it on every node).
    pub cover: f32,
}

/// Why a model cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("tree {tree}: {why}")]
    Shape { tree: usize, why: String },
    #[error("no trees")]
    Empty,
}

const MISSING_LEFT: u16 = 1;
const LEAF: u16 = 2;
/// Trees walked side by side, so that their loads overlap.
const LANES: usize = 16;

/// One compiled node. A split goes to `left` when `x <= thr`, else to `left + 1`. A leaf
/// points at itself with an infinite threshold, so a walk that reached it stays there: a
/// group of trees is walked a fixed number of steps without a branch. Leaf values live in
/// `TreeModel::values`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
struct Flat {
    thr: f32,
    left: u32,
    feat: u16,
    flags: u16,
}

/// The node as `margin` walks it, 8 bytes: the threshold, and the left child's index above
/// the feature's 10 bits.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
struct Fast {
    thr: f32,
    packed: u32,
}

const FEAT_BITS: u32 = 10;

/// A compiled ensemble: probability = sigmoid(base + Σ leaves).
#[derive(Debug, Clone)]
pub struct TreeModel {
    version: String,
    base: f32,
    fast: Vec<Fast>,
    nodes: Vec<Flat>,
    values: Vec<f32>,
    covers: Vec<f32>,
    roots: Vec<u32>,
    /// Per group of `LANES` roots (padded with the zero leaf at node 0), its deepest tree.
    group_depth: Vec<u8>,
    /// Some split sends a missing value right: inputs with NaN take the careful walk.
    missing_right: bool,
    max_depth: usize,
    /// Each root's cover-weighted mean leaf value (TreeSHAP's base).
    expected: Vec<f64>,
    /// Every leaf's path, for TreeSHAP.
    paths: LeafPaths,
}

/// One split on a leaf's path: the split (an index into `LeafPaths::splits`), which way the
/// path goes, and the bit of its feature among the leaf's distinct features.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cond {
    split: u32,
    bit: u8,
    left: bool,
}

/// A split of some tree, evaluated once per explanation.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SplitTest {
    thr: f32,
    feat: u16,
    missing_left: bool,
}

/// Quadrature points evaluated together (one vector register of f64s on AVX, two on SSE2).
const QLANES: usize = 4;

/// Where a leaf's conditions, distinct features and zero fractions are.
#[derive(Debug, Clone, Copy, PartialEq)]
struct LeafPath {
    conds: u32,
    n_conds: u8,
    feats: u32,
    n: u8,
    value: f32,
}

/// Path-dependent TreeSHAP decomposed by leaf (as in GPUTreeShap): a leaf with value v adds
/// to feature i on its path v·(o_i − z_i)·Σ_S |S|!(n−|S|−1)!/n!·Π_S o_j·Π_rest z_j (S over
/// the path's other n − 1 features), where z_j is the share of training weight that follows
/// the path at feature j's splits and o_j says whether x follows them all. The weights are
/// Beta integrals, |S|!(n−|S|−1)!/n! = ∫₀¹ t^|S| (1−t)^(n−|S|−1) dt, so the sum is
/// ∫₀¹ Π_{j≠i} (z_j + (o_j − z_j)·t) dt (as in Linear TreeSHAP), a polynomial of degree n − 1
/// that Gauss-Legendre quadrature with ⌈n/2⌉ points integrates exactly. A leaf then costs
/// a few vector operations per feature on its path, with no branch on the hot/cold pattern:
/// the products without feature i are a prefix times a suffix.
#[derive(Debug, Clone, Default)]
struct LeafPaths {
    leaves: Vec<LeafPath>,
    conds: Vec<Cond>,
    splits: Vec<SplitTest>,
    feats: Vec<u16>,
    /// z of each distinct feature, beside `feats` (and in f32, for the quadrature).
    zs: Vec<f64>,
    zs32: Vec<f32>,
    /// The same leaves padded to a fixed width when every path is short (depth ≤ 8): the
    /// kernel then runs without a data-dependent branch.
    fixed: Option<FixedLeaves>,
    /// Quadrature nodes on [0, 1] and their weights, in blocks of `QLANES` (padding has
    /// weight 0).
    nodes: Vec<[f64; QLANES]>,
    weights: Vec<[f64; QLANES]>,
}

/// Leaves padded to `width` distinct features and `width` conditions each: a padded feature
/// has z = 1 and is always followed (so it adds a factor 1 and contributes 0, to a spare
/// accumulator); a padded condition tests a spare split that always agrees.
#[derive(Debug, Clone, Default)]
struct FixedLeaves {
    width: usize,
    feats: Vec<u16>,
    zs: Vec<f32>,
    conds: Vec<Cond>,
    values: Vec<f32>,
}

/// Which of a leaf's features `x` follows (bit j for its j-th distinct feature): all of
/// that feature's conditions on the path agree with `x`'s direction at their splits. A
/// condition on no split (padding) always agrees.
#[inline(always)]
fn hot_mask(conds: &[Cond], dir: &[bool]) -> u64 {
    conds.iter().fold(u64::MAX, |hot, c| {
        let off = dir.get(c.split as usize).copied().unwrap_or(c.left) != c.left;
        hot & !(u64::from(off) << c.bit)
    })
}

/// Adds one leaf's contributions at the quadrature `nodes`: for feature j, v·(o_j − z_j)
/// times the product of the other features' a_i = z_i + (o_i − z_i)·t (a prefix times a
/// suffix), into `acc[cell(feature)]`. `M` bounds the path's distinct features; with
/// `feats.len() == M` known after inlining, the loops unroll.
#[inline(always)]
fn add_leaf<const M: usize>(
    feats: &[u16],
    zs: &[f32],
    hot: u64,
    v: f32,
    nodes: &[f32; QLANES],
    acc: &mut [[f32; QLANES]],
    cell: impl Fn(u16) -> usize,
) {
    let n = feats.len().min(zs.len()).min(M);
    let mut a = [[0.0f32; QLANES]; M];
    let mut pre = [[0.0f32; QLANES]; M];
    let mut p = [1.0f32; QLANES];
    for j in 0..n {
        let d = (hot >> j & 1) as f32 - zs[j];
        for l in 0..QLANES {
            a[j][l] = zs[j] + d * nodes[l];
        }
        pre[j] = p;
        for l in 0..QLANES {
            p[l] *= a[j][l];
        }
    }
    let mut suf = [1.0f32; QLANES];
    for j in (0..n).rev() {
        let c = v * ((hot >> j & 1) as f32 - zs[j]);
        if let Some(acc) = acc.get_mut(cell(feats[j])) {
            for l in 0..QLANES {
                acc[l] += c * pre[j][l] * suf[l];
            }
        }
        for l in 0..QLANES {
            suf[l] *= a[j][l];
        }
    }
}

impl LeafPaths {
    /// The padded layout, when no path is longer than 8 conditions.
    fn padded(&self) -> Option<FixedLeaves> {
        let longest = self
            .leaves
            .iter()
            .map(|l| usize::from(l.n_conds).max(usize::from(l.n)))
            .max()?;
        // The widths `fixed_leaves` is instantiated for.
        let width = match longest {
            0..=4 => 4,
            5 | 6 => 6,
            7 | 8 => 8,
            _ => return None,
        };
        let spare = Cond {
            split: u32::MAX,
            bit: 63,
            left: true,
        };
        let mut fx = FixedLeaves {
            width,
            ..FixedLeaves::default()
        };
        for leaf in &self.leaves {
            let n = usize::from(leaf.n);
            let f0 = leaf.feats as usize;
            fx.feats.extend_from_slice(&self.feats[f0..f0 + n]);
            fx.feats
                .extend(std::iter::repeat_n(N_FEATURES as u16, width - n));
            fx.zs.extend(self.zs[f0..f0 + n].iter().map(|&z| z as f32));
            fx.zs.extend(std::iter::repeat_n(1.0f32, width - n));
            let c0 = leaf.conds as usize;
            let nc = usize::from(leaf.n_conds);
            fx.conds.extend_from_slice(&self.conds[c0..c0 + nc]);
            fx.conds.extend(std::iter::repeat_n(spare, width - nc));
            fx.values.push(leaf.value);
        }
        Some(fx)
    }
}

/// Every leaf of the padded layout, `N` being its width: fixed trip counts, no branch on
/// the path's length (one accumulator a feature, and a spare one for the padding).
fn fixed_leaves<const N: usize>(
    fx: &FixedLeaves,
    dir: &[bool],
    nodes: &[f32; QLANES],
    acc: &mut [[f32; QLANES]],
) {
    let leaves = fx
        .feats
        .chunks_exact(N)
        .zip(fx.zs.chunks_exact(N))
        .zip(fx.conds.chunks_exact(N))
        .zip(&fx.values);
    for (((feats, zs), conds), &v) in leaves {
        let hot = hot_mask(conds, dir);
        add_leaf::<N>(feats, zs, hot, v, nodes, acc, usize::from);
    }
}

/// Gauss-Legendre nodes and weights for `k` points on [0, 1] (Newton's method on the
/// Legendre polynomial; exact for polynomials of degree up to 2k − 1).
fn gauss_legendre01(k: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(k);
    for i in 1..=k {
        let mut x = (std::f64::consts::PI * (i as f64 - 0.25) / (k as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0f64, x);
            for j in 2..=k {
                let p2 = ((2 * j - 1) as f64 * x * p1 - (j - 1) as f64 * p0) / j as f64;
                p0 = p1;
                p1 = p2;
            }
            let p = if k == 0 {
                1.0
            } else if k == 1 {
                x
            } else {
                p1
            };
            let prev = if k == 1 { 1.0 } else { p0 };
            dp = k as f64 * (x * p - prev) / (x * x - 1.0);
            let dx = p / dp;
            x -= dx;
            if dx.abs() < 1e-15 {
                break;
            }
        }
        let w = 2.0 / ((1.0 - x * x) * dp * dp);
        out.push(((x + 1.0) / 2.0, w / 2.0));
    }
    out
}

fn is_leaf(n: &Flat) -> bool {
    n.flags & LEAF != 0
}

fn leaf_at(i: usize) -> Flat {
    Flat {
        thr: f32::INFINITY,
        left: i as u32,
        feat: 0,
        flags: LEAF,
    }
}

impl TreeModel {
    /// Compiles trees given as node lists (node 0 the root). `strict_less` says the source
    /// compares `x < threshold` (XGBoost); it is turned into `x <= next_down(threshold)`.
    pub fn compile(
        version: &str,
        base_margin: f32,
        trees: &[Vec<TreeNode>],
        strict_less: bool,
    ) -> Result<TreeModel, TreeError> {
        if trees.is_empty() {
            return Err(TreeError::Empty);
        }
        // Node 0: a zero leaf that pads the last group of trees.
        let mut m = TreeModel {
            version: version.to_owned(),
            base: base_margin,
            nodes: vec![leaf_at(0)],
            values: vec![0.0],
            covers: vec![0.0],
            roots: Vec::with_capacity(trees.len()),
            group_depth: Vec::new(),
            missing_right: false,
            max_depth: 0,
            expected: Vec::new(),
            fast: Vec::new(),
            paths: LeafPaths::default(),
        };
        let mut depths = Vec::with_capacity(trees.len());
        for (ti, t) in trees.iter().enumerate() {
            let bad = |why: String| TreeError::Shape { tree: ti, why };
            if t.is_empty() {
                return Err(bad("no nodes".into()));
            }
            // Breadth first from the root; each split's children placed side by side.
            let root = m.nodes.len();
            m.roots.push(root as u32);
            m.nodes.push(leaf_at(root));
            m.values.push(0.0);
            m.covers.push(0.0);
            let mut tree_depth = 0usize;
            let mut queue = std::collections::VecDeque::from([(0usize, root, 0usize)]);
            let mut seen = 0usize;
            while let Some((src, dst, depth)) = queue.pop_front() {
                seen += 1;
                if seen > t.len() {
                    return Err(bad("nodes form a cycle".into()));
                }
                let n = t
                    .get(src)
                    .ok_or_else(|| bad(format!("node {src} missing")))?;
                m.covers[dst] = n.cover;
                tree_depth = tree_depth.max(depth);
                match n.feature {
                    None => {
                        if !n.value.is_finite() {
                            return Err(bad(format!("leaf {src} is not finite")));
                        }
                        m.nodes[dst] = leaf_at(dst);
                        m.values[dst] = n.value;
                    }
                    Some(f) => {
                        if f >= N_FEATURES {
                            return Err(bad(format!("node {src} splits on feature {f}")));
                        }
                        if n.threshold.is_nan() {
                            return Err(bad(format!("node {src} has a NaN threshold")));
                        }
                        let left = m.nodes.len();
                        for k in 0..2 {
                            m.nodes.push(leaf_at(left + k));
                            m.values.push(0.0);
                            m.covers.push(0.0);
                        }
                        m.missing_right |= !n.missing_left;
                        m.nodes[dst] = Flat {
                            thr: if strict_less {
                                n.threshold.next_down()
                            } else {
                                n.threshold
                            },
                            left: left as u32,
                            feat: f as u16,
                            flags: if n.missing_left { MISSING_LEFT } else { 0 },
                        };
                        queue.push_back((n.left, left, depth + 1));
                        queue.push_back((n.right, left + 1, depth + 1));
                    }
                }
            }
            if tree_depth > usize::from(u8::MAX) {
                return Err(bad(format!("deeper than {} levels", u8::MAX)));
            }
            depths.push(tree_depth);
            m.max_depth = m.max_depth.max(tree_depth);
        }
        while !m.roots.len().is_multiple_of(LANES) {
            m.roots.push(0);
            depths.push(0);
        }
        m.group_depth = depths
            .chunks(LANES)
            .map(|c| c.iter().copied().max().unwrap_or(0) as u8)
            .collect();
        m.expected = m.roots.iter().map(|&r| m.expected(r as usize)).collect();
        m.paths = m.build_paths();
        if m.nodes.len() >= 1 << (32 - FEAT_BITS) || N_FEATURES >= 1 << FEAT_BITS {
            return Err(TreeError::Shape {
                tree: 0,
                why: format!(
                    "{} nodes are more than the evaluator addresses",
                    m.nodes.len()
                ),
            });
        }
        m.fast = m
            .nodes
            .iter()
            .map(|n| Fast {
                thr: n.thr,
                packed: (n.left << FEAT_BITS) | u32::from(n.feat),
            })
            .collect();
        Ok(m)
    }

    pub fn trees(&self) -> usize {
        self.roots.iter().filter(|&&r| r != 0).count()
    }

    /// The raw score (log-odds) for feature values `x` (engine order).
    #[inline]
    pub fn margin(&self, x: &[f32; N_FEATURES]) -> f32 {
        if self.missing_right && x.iter().any(|v| v.is_nan()) {
            return self.margin_careful(x);
        }
        let nodes = self.fast.as_slice();
        let mut lanes = [0.0f32; LANES];
        for (g, roots) in self.roots.chunks_exact(LANES).enumerate() {
            let mut at = [0usize; LANES];
            for k in 0..LANES {
                at[k] = roots[k] as usize;
            }
            for _ in 0..self.group_depth[g] {
                for a in at.iter_mut() {
                    // SAFETY: `compile` built every node: `*a` starts at a root and only ever
                    // becomes a node's left child or the one after it, both pushed in
                    // `compile` (a leaf points at itself); the feature bits hold a split's
                    // feature, checked below `N_FEATURES`, or 0 for a leaf.
                    let n = unsafe { *nodes.get_unchecked(*a) };
                    let f = (n.packed & ((1 << FEAT_BITS) - 1)) as usize;
                    let v = unsafe { *x.get_unchecked(f) };
                    // NaN compares false: left, as every split here sends it.
                    *a = (n.packed >> FEAT_BITS) as usize + usize::from(v > n.thr);
                }
            }
            for k in 0..LANES {
                lanes[k] += self.values[at[k]];
            }
        }
        self.base + lanes.iter().sum::<f32>()
    }

    /// One tree at a time, each missing value where its split sends it.
    fn margin_careful(&self, x: &[f32; N_FEATURES]) -> f32 {
        let mut sum = self.base;
        for &r in &self.roots {
            let mut i = r as usize;
            while !is_leaf(&self.nodes[i]) {
                let n = self.nodes[i];
                let v = x[n.feat as usize];
                let right = if v.is_nan() {
                    n.flags & MISSING_LEFT == 0
                } else {
                    v > n.thr
                };
                i = n.left as usize + usize::from(right);
            }
            sum += self.values[i];
        }
        sum
    }

    pub fn probability(&self, x: &[f32; N_FEATURES]) -> f32 {
        1.0 / (1.0 + (-self.margin(x)).exp())
    }

    /// TreeSHAP values: one per feature, and last the expected margin, summing to
    /// `margin(x)`.
    pub fn shap(&self, x: &[f32; N_FEATURES]) -> Vec<f64> {
        let mut phi = vec![0.0f64; N_FEATURES + 1];
        phi[N_FEATURES] = f64::from(self.base);
        let t = &self.paths;
        // Which way x goes at every split of every tree, once.
        let dir: Vec<bool> = t
            .splits
            .iter()
            .map(|s| {
                let v = x[usize::from(s.feat)];
                if v.is_nan() {
                    s.missing_left
                } else {
                    v <= s.thr
                }
            })
            .collect();
        for (k, &r) in self.roots.iter().enumerate() {
            if r != 0 {
                phi[N_FEATURES] += self.expected[k];
            }
        }
        // One accumulator a feature and a block of quadrature nodes (and a spare one for the
        // padded layout's padding).
        let blocks = t.nodes.len();
        let mut acc = vec![[0.0f32; QLANES]; (N_FEATURES + 1) * blocks];
        let nodes32: Vec<[f32; QLANES]> = t.nodes.iter().map(|b| b.map(|x| x as f32)).collect();
        match (&t.fixed, nodes32.first()) {
            // Paths of at most 8 splits: one block of nodes, the padded layout.
            (Some(fx), Some(nodes)) => match fx.width {
                0..=4 => fixed_leaves::<4>(fx, &dir, nodes, &mut acc),
                5 | 6 => fixed_leaves::<6>(fx, &dir, nodes, &mut acc),
                _ => fixed_leaves::<8>(fx, &dir, nodes, &mut acc),
            },
            // Longer paths: each leaf at its own length, in as many blocks as needed.
            _ => {
                for leaf in &t.leaves {
                    let n = usize::from(leaf.n);
                    let conds = &t.conds[leaf.conds as usize..][..usize::from(leaf.n_conds)];
                    let hot = hot_mask(conds, &dir);
                    let feats = &t.feats[leaf.feats as usize..][..n];
                    let zs = &t.zs32[leaf.feats as usize..][..n];
                    for (b, nodes) in nodes32.iter().enumerate() {
                        let cell = |f: u16| usize::from(f) * blocks + b;
                        add_leaf::<64>(feats, zs, hot, leaf.value, nodes, &mut acc, cell);
                    }
                }
            }
        }
        for (f, out) in phi[..N_FEATURES].iter_mut().enumerate() {
            for (b, w) in t.weights.iter().enumerate() {
                let cell = &acc[f * blocks + b];
                *out += (0..QLANES).map(|l| f64::from(cell[l]) * w[l]).sum::<f64>();
            }
        }
        phi
    }

    fn build_paths(&self) -> LeafPaths {
        let mut t = LeafPaths::default();
        let mut path: Vec<PathStep> = Vec::new();
        for &r in self.roots.iter().filter(|&&r| r != 0) {
            path.clear();
            self.collect_paths(r as usize, &mut path, &mut t);
        }
        // Enough points to integrate the longest path's polynomial exactly.
        t.zs32 = t.zs.iter().map(|&z| z as f32).collect();
        t.fixed = t.padded();
        let longest = t.leaves.iter().map(|l| usize::from(l.n)).max().unwrap_or(1);
        let points = gauss_legendre01(longest.div_ceil(2).max(1));
        for chunk in points.chunks(QLANES) {
            let mut nodes = [0.5f64; QLANES];
            let mut weights = [0.0f64; QLANES];
            for (l, (x, w)) in chunk.iter().enumerate() {
                nodes[l] = *x;
                weights[l] = *w;
            }
            t.nodes.push(nodes);
            t.weights.push(weights);
        }
        t
    }

    /// Adds every leaf under node `i` with the path to it.
    fn collect_paths(&self, i: usize, path: &mut Vec<PathStep>, t: &mut LeafPaths) {
        let n = self.nodes[i];
        if is_leaf(&n) {
            let start = t.feats.len();
            for p in path.iter() {
                if !t.feats[start..].contains(&p.feat) {
                    t.feats.push(p.feat);
                    t.zs.push(
                        path.iter()
                            .filter(|q| q.feat == p.feat)
                            .map(|q| q.frac)
                            .product(),
                    );
                }
            }
            let feats = &t.feats[start..];
            t.leaves.push(LeafPath {
                conds: t.conds.len() as u32,
                n_conds: path.len().min(255) as u8,
                feats: start as u32,
                n: feats.len() as u8,
                value: self.values[i],
            });
            for p in path.iter() {
                let bit = feats.iter().position(|f| *f == p.feat).unwrap_or(0) as u8;
                t.conds.push(Cond {
                    split: p.split,
                    bit,
                    left: p.left,
                });
            }
            return;
        }
        let (l, r) = (n.left as usize, n.left as usize + 1);
        let c = f64::from(self.covers[i]);
        let split = t.splits.len() as u32;
        t.splits.push(SplitTest {
            thr: n.thr,
            feat: n.feat,
            missing_left: n.flags & MISSING_LEFT != 0,
        });
        for (child, left) in [(l, true), (r, false)] {
            let frac = if c > 0.0 {
                f64::from(self.covers[child]) / c
            } else {
                0.5
            };
            path.push(PathStep {
                feat: n.feat,
                split,
                left,
                frac,
            });
            self.collect_paths(child, path, t);
            path.pop();
        }
    }

    fn expected(&self, i: usize) -> f64 {
        let n = self.nodes[i];
        if is_leaf(&n) {
            return f64::from(self.values[i]);
        }
        let (l, r) = (n.left as usize, n.left as usize + 1);
        let c = f64::from(self.covers[i]);
        if c <= 0.0 {
            return 0.5 * (self.expected(l) + self.expected(r));
        }
        (f64::from(self.covers[l]) * self.expected(l)
            + f64::from(self.covers[r]) * self.expected(r))
            / c
    }

    /// TreeSHAP by Algorithm 2, the tests' second opinion on `shap`.
    #[cfg(test)]
    fn shap_alg2(&self, x: &[f32; N_FEATURES]) -> Vec<f64> {
        let mut phi = vec![0.0f64; N_FEATURES + 1];
        phi[N_FEATURES] = f64::from(self.base);
        let mut path: Vec<PathElem> = Vec::new();
        for (k, &r) in self.roots.iter().enumerate() {
            if r != 0 {
                phi[N_FEATURES] += self.expected[k];
                path.clear();
                self.recurse(x, r as usize, &mut path, 0, 0, 1.0, 1.0, None, &mut phi);
            }
        }
        phi
    }

    /// Algorithm 2 of Lundberg, Erion and Lee (2018). Each call copies its parent's unique
    /// path (`buf[parent..parent + parent_len]`) to the end of `buf`, extends it, and drops it
    /// on return, as the reference implementation does.
    #[cfg(test)]
    #[allow(clippy::too_many_arguments)]
    fn recurse(
        &self,
        x: &[f32; N_FEATURES],
        j: usize,
        buf: &mut Vec<PathElem>,
        parent: usize,
        parent_len: usize,
        pz: f64,
        po: f64,
        pi: Option<u16>,
        phi: &mut [f64],
    ) {
        let here = buf.len();
        buf.extend_from_within(parent..parent + parent_len);
        buf.push(PathElem::default());
        extend(&mut buf[here..], pz, po, pi, parent_len);
        let mut m_len = parent_len + 1;
        let n = self.nodes[j];
        if is_leaf(&n) {
            let m = &buf[here..here + m_len];
            for i in 1..m_len {
                let w = unwound_sum(m, i);
                if let Some(d) = m[i].d {
                    phi[d as usize] += w * (m[i].o - m[i].z) * f64::from(self.values[j]);
                }
            }
        } else {
            let v = x[n.feat as usize];
            let right = if v.is_nan() {
                n.flags & MISSING_LEFT == 0
            } else {
                v > n.thr
            };
            let (l, r) = (n.left as usize, n.left as usize + 1);
            let (hot, cold) = if right { (r, l) } else { (l, r) };
            let (mut iz, mut io) = (1.0, 1.0);
            if let Some(k) = (1..m_len).find(|&k| buf[here + k].d == Some(n.feat)) {
                iz = buf[here + k].z;
                io = buf[here + k].o;
                unwind(&mut buf[here..here + m_len], k);
                m_len -= 1;
            }
            let rj = f64::from(self.covers[j]);
            let frac = |c: usize| {
                if rj > 0.0 {
                    f64::from(self.covers[c]) / rj
                } else {
                    0.5
                }
            };
            self.recurse(
                x,
                hot,
                buf,
                here,
                m_len,
                iz * frac(hot),
                io,
                Some(n.feat),
                phi,
            );
            self.recurse(
                x,
                cold,
                buf,
                here,
                m_len,
                iz * frac(cold),
                0.0,
                Some(n.feat),
                phi,
            );
        }
        buf.truncate(here);
    }
}

/// A split on the way to a leaf, while the leaf paths are collected.
struct PathStep {
    feat: u16,
    /// The split's index in `LeafPaths::splits`.
    split: u32,
    left: bool,
    /// Share of the node's training weight that went this way.
    frac: f64,
}

#[cfg(test)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct PathElem {
    d: Option<u16>,
    z: f64,
    o: f64,
    w: f64,
}

/// 1/k for the path lengths TreeSHAP meets (a path is at most depth + 2 long).
#[cfg(test)]
const INV: [f64; 258] = {
    let mut t = [0.0; 258];
    let mut k = 1;
    while k < 258 {
        t[k] = 1.0 / k as f64;
        k += 1;
    }
    t
};

#[cfg(test)]
/// EXTEND: `m[..l]` is the path, `m[l]` receives the new element.
fn extend(m: &mut [PathElem], pz: f64, po: f64, pi: Option<u16>, l: usize) {
    m[l] = PathElem {
        d: pi,
        z: pz,
        o: po,
        w: if l == 0 { 1.0 } else { 0.0 },
    };
    let inv = INV[l + 1];
    for i in (0..l).rev() {
        m[i + 1].w += po * m[i].w * (i + 1) as f64 * inv;
        m[i].w = pz * m[i].w * (l - i) as f64 * inv;
    }
}

#[cfg(test)]
/// UNWIND element `i` of the path `m` (its last element drops off; the caller shortens).
/// The one fraction `o` is 0 or 1 on this path-dependent algorithm.
fn unwind(m: &mut [PathElem], i: usize) {
    let l = m.len();
    let lf = l as f64;
    let (o, z) = (m[i].o, m[i].z);
    let mut n = m[l - 1].w;
    if o != 0.0 {
        let inv_o = 1.0 / o;
        for j in (0..l - 1).rev() {
            let t = m[j].w;
            m[j].w = n * lf * INV[j + 1] * inv_o;
            n = t - m[j].w * z * (l - j - 1) as f64 * INV[l];
        }
    } else {
        let inv_z = 1.0 / z;
        for j in (0..l - 1).rev() {
            m[j].w = m[j].w * lf * inv_z * INV[l - j - 1];
        }
    }
    for j in i..l - 1 {
        m[j].d = m[j + 1].d;
        m[j].z = m[j + 1].z;
        m[j].o = m[j + 1].o;
    }
}

#[cfg(test)]
/// The total weight of the path with element `i` unwound.
fn unwound_sum(m: &[PathElem], i: usize) -> f64 {
    let l = m.len();
    let lf = l as f64;
    let (o, z) = (m[i].o, m[i].z);
    let mut total = 0.0;
    if o != 0.0 {
        let inv_o = 1.0 / o;
        let mut n = m[l - 1].w;
        for j in (0..l - 1).rev() {
            let t = n * lf * INV[j + 1] * inv_o;
            total += t;
            n = m[j].w - t * z * (l - j - 1) as f64 * INV[l];
        }
    } else {
        let inv_z = 1.0 / z;
        for j in (0..l - 1).rev() {
            total += m[j].w * inv_z * lf * INV[l - j - 1];
        }
    }
    total
}

impl Scorer for TreeModel {
    fn version(&self) -> &str {
        &self.version
    }

    fn score(&self, f: &Features, _tx: &TxContext) -> Score {
        let p = self.probability(&f.values);
        Score {
            risk: (p * 100.0).round().clamp(0.0, 100.0) as u8,
            contributions: Vec::new(),
        }
    }

    fn can_explain(&self) -> bool {
        true
    }

    /// The three features with the largest positive TreeSHAP values, with their values.
    fn explain(&self, f: &Features, _tx: &TxContext) -> Vec<Contribution> {
        let phi = self.shap(&f.values);
        let mut top: Vec<(usize, f64)> = phi[..N_FEATURES]
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, v)| *v > 0.0)
            .collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        top.into_iter()
            .take(3)
            .map(|(i, v)| Contribution {
                code: ReasonCode::ModelContribution,
                detail: format!("{} = {} (+{v:.2} log-odds)", FEATURE_NAMES[i], f.values[i]),
                points: v as f32,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(f: usize, t: f32, l: usize, r: usize, cover: f32) -> TreeNode {
        TreeNode {
            feature: Some(f),
            threshold: t,
            left: l,
            right: r,
            missing_left: true,
            value: 0.0,
            cover,
        }
    }

    fn leaf(v: f32, cover: f32) -> TreeNode {
        TreeNode {
            feature: None,
            threshold: 0.0,
            left: 0,
            right: 0,
            missing_left: false,
            value: v,
            cover,
        }
    }

    /// Two trees over features 0, 1 and 2, one splitting twice on feature 0.
    fn model() -> TreeModel {
        let t1 = vec![
            split(0, 10.0, 1, 2, 100.0),
            split(1, 0.5, 3, 4, 60.0),
            leaf(2.0, 40.0),
            leaf(-1.0, 45.0),
            split(0, 5.0, 5, 6, 15.0),
            leaf(0.5, 5.0),
            leaf(1.5, 10.0),
        ];
        let t2 = vec![
            split(2, 3.0, 1, 2, 100.0),
            leaf(-0.3, 70.0),
            leaf(0.7, 30.0),
        ];
        TreeModel::compile("test-1", -2.0, &[t1, t2], false).unwrap()
    }

    fn x(a: f32, b: f32, c: f32) -> [f32; N_FEATURES] {
        let mut v = [0.0; N_FEATURES];
        v[0] = a;
        v[1] = b;
        v[2] = c;
        v
    }

    /// E[f(x) | x_S] the path-dependent way: follow x on features in S, average by cover
    /// elsewhere.
    fn cond(m: &TreeModel, x: &[f32; N_FEATURES], s: u32) -> f64 {
        fn go(m: &TreeModel, i: usize, x: &[f32; N_FEATURES], s: u32) -> f64 {
            let n = m.nodes[i];
            if is_leaf(&n) {
                return f64::from(m.values[i]);
            }
            let (l, r) = (n.left as usize, n.left as usize + 1);
            if s & (1 << n.feat) != 0 {
                return go(m, if x[n.feat as usize] <= n.thr { l } else { r }, x, s);
            }
            let c = f64::from(m.covers[i]);
            (f64::from(m.covers[l]) * go(m, l, x, s) + f64::from(m.covers[r]) * go(m, r, x, s)) / c
        }
        m.roots
            .iter()
            .map(|&r| go(m, r as usize, x, s))
            .sum::<f64>()
            + f64::from(m.base)
    }

    #[test]
    fn shap_equals_brute_force_shapley_values_and_adds_up() {
        let m = model();
        // Every leaf of every tree has its path.
        fn leaves(m: &TreeModel, i: usize) -> usize {
            let n = m.nodes[i];
            if is_leaf(&n) {
                1
            } else {
                leaves(m, n.left as usize) + leaves(m, n.left as usize + 1)
            }
        }
        let want: usize = m
            .roots
            .iter()
            .filter(|&&r| r != 0)
            .map(|&r| leaves(&m, r as usize))
            .sum();
        assert_eq!(m.paths.leaves.len(), want);
        for xs in [
            x(3.0, 0.2, 1.0),
            x(7.0, 0.9, 4.0),
            x(12.0, 0.0, 9.0),
            x(4.0, 0.7, 2.0),
        ] {
            let phi = m.shap(&xs);
            let alg2 = m.shap_alg2(&xs);
            for (a, b) in phi.iter().zip(&alg2) {
                assert!((a - b).abs() < 1e-6, "by leaf {a} vs Algorithm 2 {b}");
            }
            let total: f64 = phi.iter().sum();
            assert!((total - f64::from(m.margin(&xs))).abs() < 1e-5, "{total}");
            // Exact Shapley values over the three used features.
            let fact = [1.0, 1.0, 2.0, 6.0];
            for i in 0..3u32 {
                let mut want = 0.0;
                for s in 0u32..8 {
                    if s & (1 << i) != 0 {
                        continue;
                    }
                    let k = s.count_ones() as usize;
                    let w = fact[k] * fact[3 - k - 1] / fact[3];
                    want += w * (cond(&m, &xs, s | (1 << i)) - cond(&m, &xs, s));
                }
                assert!(
                    (phi[i as usize] - want).abs() < 1e-6,
                    "feature {i}: {} vs {want}",
                    phi[i as usize]
                );
            }
            assert!((phi[N_FEATURES] - cond(&m, &xs, 0)).abs() < 1e-6);
        }
    }

    #[test]
    fn margins_follow_the_trees_and_strict_less_is_kept() {
        let m = model();
        let near = |a: f32, b: f32| assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        near(m.margin(&x(3.0, 0.2, 1.0)), -2.0 - 1.0 - 0.3);
        near(m.margin(&x(10.0, 0.7, 3.5)), -2.0 + 1.5 + 0.7);
        near(m.margin(&x(f32::NAN, 0.2, 1.0)), -2.0 - 1.0 - 0.3);
        assert_eq!(m.trees(), 2);
        // A split that sends missing values right takes the careful walk for NaN.
        let right = TreeModel::compile(
            "r",
            0.0,
            &[vec![
                TreeNode {
                    missing_left: false,
                    ..split(0, 10.0, 1, 2, 2.0)
                },
                leaf(1.0, 1.0),
                leaf(2.0, 1.0),
            ]],
            false,
        )
        .unwrap();
        assert_eq!(right.margin(&x(f32::NAN, 0.0, 0.0)), 2.0);
        assert_eq!(right.margin(&x(3.0, 0.0, 0.0)), 1.0);
        let lt = TreeModel::compile(
            "lt",
            0.0,
            &[vec![
                split(0, 10.0, 1, 2, 2.0),
                leaf(1.0, 1.0),
                leaf(2.0, 1.0),
            ]],
            true,
        )
        .unwrap();
        assert_eq!(lt.margin(&x(10.0, 0.0, 0.0)), 2.0);
        assert_eq!(lt.margin(&x(9.999, 0.0, 0.0)), 1.0);
    }

    #[test]
    fn the_lockstep_walk_equals_the_one_tree_at_a_time_walk() {
        let mut samples = Vec::new();
        for k in 0..64u32 {
            let mut f = crate::Features {
                values: [0.0; N_FEATURES],
                windows: Default::default(),
                terminal: Default::default(),
            };
            for (i, v) in f.values.iter_mut().enumerate() {
                *v = ((k as usize * 31 + i * 17) % 97) as f32 - 10.0;
            }
            samples.push(f);
        }
        let m = crate::synth::random_trees(37, 6, &samples, 5);
        assert_eq!(m.trees(), 37);
        for f in &samples {
            let (a, b) = (m.margin(&f.values), m.margin_careful(&f.values));
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            let phi = m.shap(&f.values);
            let total: f64 = phi.iter().sum();
            assert!((total - f64::from(a)).abs() < 1e-3, "{total} vs {a}");
            // Paths of six splits, features repeated on them: the quadrature agrees with
            // Algorithm 2 feature by feature.
            let alg2 = m.shap_alg2(&f.values);
            for (i, (x, y)) in phi.iter().zip(&alg2).enumerate() {
                assert!((x - y).abs() < 1e-5, "feature {i}: {x} vs Algorithm 2 {y}");
            }
        }
    }

    #[test]
    fn deep_trees_take_the_general_path_and_agree_with_algorithm_2() {
        let samples: Vec<crate::Features> = (0..16u32)
            .map(|k| {
                let mut f = crate::Features {
                    values: [0.0; N_FEATURES],
                    windows: Default::default(),
                    terminal: Default::default(),
                };
                for (i, v) in f.values.iter_mut().enumerate() {
                    *v = ((k as usize * 13 + i * 7) % 41) as f32 - 5.0;
                }
                f
            })
            .collect();
        let m = crate::synth::random_trees(6, 11, &samples, 3);
        assert!(m.paths.fixed.is_none(), "paths of 11 splits are not padded");
        for f in &samples {
            let (phi, alg2) = (m.shap(&f.values), m.shap_alg2(&f.values));
            for (i, (x, y)) in phi.iter().zip(&alg2).enumerate() {
                assert!((x - y).abs() < 1e-5, "feature {i}: {x} vs Algorithm 2 {y}");
            }
        }
    }

    #[test]
    fn gauss_legendre_integrates_polynomials_exactly() {
        for k in 1..=8usize {
            let pts = gauss_legendre01(k);
            for deg in 0..2 * k {
                let got: f64 = pts.iter().map(|(x, w)| w * x.powi(deg as i32)).sum();
                let want = 1.0 / (deg as f64 + 1.0);
                assert!(
                    (got - want).abs() < 1e-13,
                    "k {k} degree {deg}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn bad_trees_are_refused() {
        let cyc = vec![split(0, 1.0, 0, 0, 1.0)];
        assert!(TreeModel::compile("x", 0.0, &[cyc], false).is_err());
        let far = vec![split(0, 1.0, 1, 5, 1.0), leaf(0.0, 1.0)];
        assert!(TreeModel::compile("x", 0.0, &[far], false).is_err());
        let unknown = vec![
            split(N_FEATURES, 1.0, 1, 2, 1.0),
            leaf(0.0, 1.0),
            leaf(0.0, 1.0),
        ];
        assert!(TreeModel::compile("x", 0.0, &[unknown], false).is_err());
        assert_eq!(
            TreeModel::compile("x", 0.0, &[], false).unwrap_err(),
            TreeError::Empty
        );
    }
}
