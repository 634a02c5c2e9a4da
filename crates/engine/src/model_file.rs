//! The model file: a gradient-boosted tree model's trees, the feature schema it reads, a
//! version and a checksum, saved as one JSON file. The same trees come from cardguard's own
//! trainer or from an imported XGBoost / LightGBM model; `compile` turns them into the flat
//! evaluator the engine calls. It lives here, beside the evaluator, so that serving reads a
//! model without the training pipeline.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why a model file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Invalid(String),
}

/// The model file's format name and version.
pub const FORMAT: &str = "cardguard-gbdt";
pub const FORMAT_VERSION: u32 = 1;

/// How a split compares: `x <= threshold` (cardguard, LightGBM) or `x < threshold` (XGBoost)
/// goes left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Comparison {
    Le,
    Lt,
}

/// One node: a split (`feature`, `threshold`, children) or a leaf (`value`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Feature index; `None` for a leaf.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "f")]
    pub feature: Option<u32>,
    #[serde(default, rename = "t")]
    pub threshold: f32,
    #[serde(default, rename = "l")]
    pub left: u32,
    #[serde(default, rename = "r")]
    pub right: u32,
    /// Where a missing (NaN) value goes.
    #[serde(default, rename = "m")]
    pub missing_left: bool,
    /// The leaf's margin contribution.
    #[serde(default, rename = "v")]
    pub value: f32,
    /// Training weight (hessian sum) that reached the node, for TreeSHAP.
    #[serde(default, rename = "c")]
    pub cover: f32,
}

impl Node {
    pub fn leaf(value: f32, cover: f32) -> Node {
        Node {
            feature: None,
            threshold: 0.0,
            left: 0,
            right: 0,
            missing_left: false,
            value,
            cover,
        }
    }
}

/// One tree; node 0 is the root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// One leaf of a [`Tree::stump`]: its margin and the training weight that reached it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StumpLeaf {
    pub value: f32,
    pub cover: f32,
}

impl Tree {
    /// A tree of one split on feature `feature` (an index into the model's feature names):
    /// `x <= threshold` (or missing) goes to `below`, the rest to `above`.
    pub fn stump(feature: u32, threshold: f32, below: StumpLeaf, above: StumpLeaf) -> Tree {
        Tree {
            nodes: vec![
                Node {
                    feature: Some(feature),
                    threshold,
                    left: 1,
                    right: 2,
                    missing_left: true,
                    value: 0.0,
                    cover: below.cover + above.cover,
                },
                Node::leaf(below.value, below.cover),
                Node::leaf(above.value, above.cover),
            ],
        }
    }

    /// The margin this tree adds for `x`.
    pub fn predict(&self, x: &[f32], cmp: Comparison) -> f32 {
        let mut i = 0usize;
        loop {
            let n = &self.nodes[i];
            let Some(f) = n.feature else { return n.value };
            let v = x.get(f as usize).copied().unwrap_or(f32::NAN);
            let left = if v.is_nan() {
                n.missing_left
            } else {
                match cmp {
                    Comparison::Le => v <= n.threshold,
                    Comparison::Lt => v < n.threshold,
                }
            };
            i = if left { n.left } else { n.right } as usize;
        }
    }

    pub fn depth(&self) -> usize {
        fn d(t: &Tree, i: usize) -> usize {
            match t.nodes[i].feature {
                None => 0,
                Some(_) => 1 + d(t, t.nodes[i].left as usize).max(d(t, t.nodes[i].right as usize)),
            }
        }
        if self.nodes.is_empty() { 0 } else { d(self, 0) }
    }
}

/// A binary classifier: probability = sigmoid(base_margin + Σ tree margins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub format: String,
    pub format_version: u32,
    /// Recorded with every decision the model scores (`gbdt-…`).
    pub model_version: String,
    /// The feature names, in the order the trees index them.
    pub features: Vec<String>,
    pub comparison: Comparison,
    pub base_margin: f32,
    pub trees: Vec<Tree>,
    /// How it was made (trainer settings, data, validation score): for people, not scoring.
    #[serde(default)]
    pub provenance: serde_json::Value,
    /// The distributions of the training data (score and features), for drift monitoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<crate::drift::TrainingSummary>,
    /// `sha256:` of the file's JSON with this field empty.
    #[serde(default)]
    pub checksum: String,
}

fn sigmoid(m: f32) -> f32 {
    1.0 / (1.0 + (-m).exp())
}

impl Model {
    /// A model from trees; the version and checksum are filled in.
    pub fn new(
        features: Vec<String>,
        comparison: Comparison,
        base_margin: f32,
        trees: Vec<Tree>,
        provenance: serde_json::Value,
        version_prefix: &str,
    ) -> Result<Model, ModelError> {
        let mut m = Model {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            model_version: String::new(),
            features,
            comparison,
            base_margin,
            trees,
            provenance,
            training: None,
            checksum: String::new(),
        };
        m.validate()?;
        let digest = m.digest()?;
        m.model_version = format!("{version_prefix}-{}", &digest[..12]);
        m.checksum = format!("sha256:{}", m.digest()?);
        Ok(m)
    }

    /// Records the training data's distributions (the checksum is made again; the version,
    /// which names the trees, stays).
    pub fn set_training(
        &mut self,
        summary: crate::drift::TrainingSummary,
    ) -> Result<(), ModelError> {
        self.training = Some(summary);
        self.checksum.clear();
        self.checksum = format!("sha256:{}", self.digest()?);
        Ok(())
    }

    fn digest(&self) -> Result<String, ModelError> {
        let mut c = self.clone();
        c.checksum.clear();
        let bytes = serde_json::to_vec(&c).map_err(|e| ModelError::Invalid(e.to_string()))?;
        Ok(Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }

    /// Every child index in range, every split on a known feature, no cycles (children come
    /// after their parent), finite numbers.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |t: usize, why: String| ModelError::Invalid(format!("tree {t}: {why}"));
        if !self.base_margin.is_finite() {
            return Err(ModelError::Invalid("base margin is not finite".into()));
        }
        for (ti, t) in self.trees.iter().enumerate() {
            if t.nodes.is_empty() {
                return Err(bad(ti, "no nodes".into()));
            }
            for (i, n) in t.nodes.iter().enumerate() {
                match n.feature {
                    None if !n.value.is_finite() => {
                        return Err(bad(ti, format!("leaf {i} is not finite")));
                    }
                    None => {}
                    Some(f) => {
                        if f as usize >= self.features.len() {
                            return Err(bad(ti, format!("node {i} splits on unknown feature {f}")));
                        }
                        let (l, r) = (n.left as usize, n.right as usize);
                        if l <= i || r <= i || l >= t.nodes.len() || r >= t.nodes.len() {
                            return Err(bad(ti, format!("node {i} has children out of order")));
                        }
                        if n.threshold.is_nan() {
                            return Err(bad(ti, format!("node {i} has a NaN threshold")));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The probability of fraud for the feature vector `x`.
    pub fn predict(&self, x: &[f32]) -> f32 {
        sigmoid(self.margin(x))
    }

    pub fn margin(&self, x: &[f32]) -> f32 {
        self.base_margin
            + self
                .trees
                .iter()
                .map(|t| t.predict(x, self.comparison))
                .sum::<f32>()
    }

    /// The compiled form the engine scores with. Every feature the model reads must be one
    /// of the engine's, by name.
    pub fn compile(&self) -> Result<crate::TreeModel, ModelError> {
        let map: Vec<Option<usize>> = self
            .features
            .iter()
            .map(|n| crate::FEATURE_NAMES.iter().position(|e| e == n))
            .collect();
        let mut trees = Vec::with_capacity(self.trees.len());
        for t in &self.trees {
            let mut nodes = Vec::with_capacity(t.nodes.len());
            for n in &t.nodes {
                let feature = match n.feature {
                    None => None,
                    Some(f) => Some(map[f as usize].ok_or_else(|| {
                        ModelError::Invalid(format!(
                            "the model reads {:?}, which the engine does not compute",
                            self.features[f as usize]
                        ))
                    })?),
                };
                nodes.push(crate::TreeNode {
                    feature,
                    threshold: n.threshold,
                    left: n.left as usize,
                    right: n.right as usize,
                    missing_left: n.missing_left,
                    value: n.value,
                    cover: n.cover,
                });
            }
            trees.push(nodes);
        }
        crate::TreeModel::compile(
            &self.model_version,
            self.base_margin,
            &trees,
            self.comparison == Comparison::Lt,
        )
        .map_err(|e| ModelError::Invalid(e.to_string()))
    }

    pub fn to_json(&self) -> Result<String, ModelError> {
        serde_json::to_string(self).map_err(|e| ModelError::Invalid(e.to_string()))
    }

    /// Reads a model file, checking its format, structure and checksum.
    pub fn from_json(text: &str) -> Result<Model, ModelError> {
        let m: Model = serde_json::from_str(text)
            .map_err(|e| ModelError::Invalid(format!("not a model file: {e}")))?;
        if m.format != FORMAT || m.format_version != FORMAT_VERSION {
            return Err(ModelError::Invalid(format!(
                "format {} {} is not {FORMAT} {FORMAT_VERSION}",
                m.format, m.format_version
            )));
        }
        m.validate()?;
        let want = format!("sha256:{}", m.digest()?);
        if m.checksum != want {
            return Err(ModelError::Invalid(
                "checksum does not match: the file was changed or damaged".into(),
            ));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stump() -> Model {
        let leaf = |value, cover| StumpLeaf { value, cover };
        Model::new(
            vec!["amount".into()],
            Comparison::Le,
            0.5,
            vec![Tree::stump(0, 1.0, leaf(-1.0, 6.0), leaf(2.0, 4.0))],
            serde_json::json!({}),
            "gbdt-test",
        )
        .unwrap()
    }

    #[test]
    fn predicts_and_compares_as_told() {
        let m = stump();
        assert_eq!(m.margin(&[1.0]), -0.5);
        assert_eq!(m.margin(&[1.5]), 2.5);
        assert_eq!(m.margin(&[f32::NAN]), -0.5);
        let mut lt = m.clone();
        lt.comparison = Comparison::Lt;
        assert_eq!(lt.margin(&[1.0]), 2.5);
        assert!((m.predict(&[2.0]) - 1.0 / (1.0 + (-2.5f32).exp())).abs() < 1e-7);
        assert_eq!(m.trees[0].depth(), 1);
    }

    #[test]
    fn the_file_round_trips_and_a_changed_file_is_refused() {
        let m = stump();
        assert!(m.model_version.starts_with("gbdt-test-"));
        let text = m.to_json().unwrap();
        assert_eq!(Model::from_json(&text).unwrap(), m);
        let tampered = text.replace("\"v\":2.0", "\"v\":9.0");
        assert_ne!(tampered, text);
        let e = Model::from_json(&tampered).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        assert!(Model::from_json("{}").is_err());
    }

    #[test]
    fn the_compiled_model_scores_as_the_file_does() {
        let m = stump();
        let c = m.compile().unwrap();
        let mut x = [0.0f32; crate::N_FEATURES];
        for v in [0.5, 1.0, 1.5, f32::NAN] {
            x[crate::idx::AMOUNT] = v;
            let mut raw = vec![0.0f32; 1];
            raw[0] = v;
            assert_eq!(c.margin(&x), m.margin(&raw));
        }
        let mut unknown = stump();
        unknown.features = vec!["shoe_size".into()];
        assert!(
            unknown
                .compile()
                .unwrap_err()
                .to_string()
                .contains("shoe_size")
        );
    }

    #[test]
    fn structure_is_checked() {
        let mut m = stump();
        m.trees[0].nodes[0].left = 0;
        assert!(m.validate().is_err());
        let mut m = stump();
        m.trees[0].nodes[0].feature = Some(3);
        assert!(m.validate().is_err());
    }
}
