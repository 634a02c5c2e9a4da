//! Models trained elsewhere: XGBoost's JSON (`save_model("m.json")`, `binary:logistic`) and
//! LightGBM's text format (`save_model("m.txt")`, `binary`), turned into cardguard's model so
//! that they score exactly as the reference libraries do.
//!
//! XGBoost splits `x < threshold` (float32) and sends a missing value where `default_left`
//! says; its `base_score` is a probability. LightGBM splits `x <= threshold` (a double: kept
//! as the largest float32 not above it, which decides every float32 input the same way) and
//! treats missing values by the split's missing type: `None` compares them as 0, `NaN` sends
//! them the default way, `Zero` sends zeros and NaN the default way (accepted when that is
//! where 0 goes anyway).

use crate::MlError;
use crate::model::{Comparison, Model, Node, Tree};
use serde_json::Value;

fn bad(why: impl Into<String>) -> MlError {
    MlError::Invalid(why.into())
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim_matches(['[', ']']).trim().parse().ok(),
        Value::Array(a) if a.len() == 1 => num(&a[0]),
        _ => None,
    }
}

fn nums(v: &Value, what: &str) -> Result<Vec<f64>, MlError> {
    v.as_array()
        .ok_or_else(|| bad(format!("{what} is not a list")))?
        .iter()
        .map(|x| num(x).ok_or_else(|| bad(format!("{what} holds a non-number"))))
        .collect()
}

/// An XGBoost model saved as JSON.
pub fn from_xgboost_json(text: &str) -> Result<Model, MlError> {
    let d: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let l = &d["learner"];
    let objective = l["objective"]["name"].as_str().unwrap_or("");
    if objective != "binary:logistic" {
        return Err(bad(format!(
            "objective {objective:?}: only binary:logistic is supported"
        )));
    }
    let gb = &l["gradient_booster"];
    if gb["name"].as_str() != Some("gbtree") {
        return Err(bad("only the gbtree booster is supported"));
    }
    let p = &l["learner_model_param"];
    if num(&p["num_target"]).unwrap_or(1.0) != 1.0 {
        return Err(bad("only single-target models are supported"));
    }
    let base_score = num(&p["base_score"]).ok_or_else(|| bad("no base_score"))?;
    if !(0.0 < base_score && base_score < 1.0) {
        return Err(bad("base_score must be a probability in (0, 1)"));
    }
    let base_margin = (base_score / (1.0 - base_score)).ln() as f32;
    let n_features = num(&p["num_feature"]).ok_or_else(|| bad("no num_feature"))? as usize;
    let features: Vec<String> = match l["feature_names"].as_array() {
        Some(a) if a.len() == n_features => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad("a feature name is not text"))
            })
            .collect::<Result<_, _>>()?,
        _ => (0..n_features).map(|i| format!("f{i}")).collect(),
    };
    let version = d["version"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(".")
        })
        .unwrap_or_default();
    let mut trees = Vec::new();
    for (ti, t) in gb["model"]["trees"]
        .as_array()
        .ok_or_else(|| bad("no trees"))?
        .iter()
        .enumerate()
    {
        let e = |why: &str| bad(format!("tree {ti}: {why}"));
        let left = nums(&t["left_children"], "left_children")?;
        let right = nums(&t["right_children"], "right_children")?;
        let cond = nums(&t["split_conditions"], "split_conditions")?;
        let index = nums(&t["split_indices"], "split_indices")?;
        let default_left = nums(&t["default_left"], "default_left")?;
        let hess = nums(&t["sum_hessian"], "sum_hessian")?;
        let n = left.len();
        if [
            right.len(),
            cond.len(),
            index.len(),
            default_left.len(),
            hess.len(),
        ]
        .iter()
        .any(|&k| k != n)
        {
            return Err(e("node arrays differ in length"));
        }
        if t["split_type"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| num(v).unwrap_or(0.0) != 0.0))
        {
            return Err(e("categorical splits are not supported"));
        }
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            if left[i] < 0.0 {
                nodes.push(Node::leaf(cond[i] as f32, hess[i] as f32));
            } else {
                let (l, r) = (left[i] as usize, right[i] as usize);
                if l >= n || r >= n || index[i] < 0.0 || index[i] as usize >= n_features {
                    return Err(e("a split points outside the tree"));
                }
                nodes.push(Node {
                    feature: Some(index[i] as u32),
                    threshold: cond[i] as f32,
                    left: l as u32,
                    right: r as u32,
                    missing_left: default_left[i] != 0.0,
                    value: 0.0,
                    cover: hess[i] as f32,
                });
            }
        }
        trees.push(Tree { nodes });
    }
    Model::new(
        features,
        Comparison::Lt,
        base_margin,
        trees,
        serde_json::json!({ "imported_from": format!("xgboost {version}"), "base_score": base_score }),
        "xgboost",
    ).map_err(MlError::from)
}

/// The largest float32 not above `t`: `x <= t` and `x <= f32_floor(t)` agree on every float32.
fn f32_floor(t: f64) -> f32 {
    let r = t as f32;
    if f64::from(r) > t { r.next_down() } else { r }
}

/// A LightGBM model saved as text.
pub fn from_lightgbm_text(text: &str) -> Result<Model, MlError> {
    let mut header: Vec<(&str, &str)> = Vec::new();
    let mut blocks: Vec<Vec<(&str, &str)>> = Vec::new();
    let mut in_tree = false;
    for line in text.lines() {
        let line = line.trim();
        if line == "end of trees" {
            break;
        }
        if line.starts_with("Tree=") {
            blocks.push(Vec::new());
            in_tree = true;
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if in_tree {
            if let Some(b) = blocks.last_mut() {
                b.push((k, v));
            }
        } else {
            header.push((k, v));
        }
    }
    fn get<'a>(kv: &[(&str, &'a str)], k: &str) -> Option<&'a str> {
        kv.iter().find(|(a, _)| *a == k).map(|(_, v)| *v)
    }
    let objective = get(&header, "objective").unwrap_or("");
    let mut parts = objective.split_whitespace();
    if parts.next() != Some("binary") {
        return Err(bad(format!(
            "objective {objective:?}: only binary is supported"
        )));
    }
    let sigmoid: f64 = parts
        .find_map(|p| p.strip_prefix("sigmoid:"))
        .map(|s| s.parse().map_err(|_| bad("bad sigmoid parameter")))
        .transpose()?
        .unwrap_or(1.0);
    if get(&header, "num_class").unwrap_or("1") != "1"
        || get(&header, "num_tree_per_iteration").unwrap_or("1") != "1"
    {
        return Err(bad("only single-class models are supported"));
    }
    let features: Vec<String> = get(&header, "feature_names")
        .ok_or_else(|| bad("no feature_names"))?
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let version = get(&header, "version").unwrap_or("").to_owned();
    let list = |kv: &[(&str, &str)], k: &str, ti: usize| -> Result<Vec<f64>, MlError> {
        match get(kv, k) {
            None | Some("") => Ok(Vec::new()),
            Some(v) => v
                .split_whitespace()
                .map(|x| x.parse().map_err(|_| bad(format!("tree {ti}: bad {k}"))))
                .collect(),
        }
    };
    let mut trees = Vec::new();
    for (ti, b) in blocks.iter().enumerate() {
        let e = |why: &str| bad(format!("tree {ti}: {why}"));
        let leaves: usize = get(b, "num_leaves")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| e("no num_leaves"))?;
        if get(b, "num_cat").unwrap_or("0") != "0" {
            return Err(e("categorical splits are not supported"));
        }
        if get(b, "is_linear").unwrap_or("0") != "0" {
            return Err(e("linear trees are not supported"));
        }
        let leaf_value = list(b, "leaf_value", ti)?;
        let leaf_weight = list(b, "leaf_weight", ti)?;
        if leaf_value.len() != leaves {
            return Err(e("leaf_value does not match num_leaves"));
        }
        if leaves == 1 {
            let w = leaf_weight.first().copied().unwrap_or(1.0);
            trees.push(Tree {
                nodes: vec![Node::leaf((leaf_value[0] * sigmoid) as f32, w as f32)],
            });
            continue;
        }
        let inner = leaves - 1;
        let feat = list(b, "split_feature", ti)?;
        let thr = list(b, "threshold", ti)?;
        let dt = list(b, "decision_type", ti)?;
        let lc = list(b, "left_child", ti)?;
        let rc = list(b, "right_child", ti)?;
        let iw = list(b, "internal_weight", ti)?;
        if [feat.len(), thr.len(), dt.len(), lc.len(), rc.len()]
            .iter()
            .any(|&k| k != inner)
        {
            return Err(e("split arrays do not match num_leaves"));
        }
        // Internal nodes first (0..inner), then the leaves (inner + leaf index).
        let child = |c: f64| -> Result<u32, MlError> {
            let c = c as i64;
            let i = if c >= 0 {
                c as usize
            } else {
                inner + (!c) as usize
            };
            if i >= inner + leaves {
                return Err(e("a child points outside the tree"));
            }
            Ok(i as u32)
        };
        let mut nodes = Vec::with_capacity(inner + leaves);
        for i in 0..inner {
            let d = dt[i] as u32;
            if d & 1 != 0 {
                return Err(e("categorical splits are not supported"));
            }
            let default_left = d & 2 != 0;
            let t = f32_floor(thr[i]);
            let missing_left = match (d >> 2) & 3 {
                0 => 0.0 <= t,
                2 => default_left,
                1 if default_left == (0.0 <= t) => default_left,
                _ => {
                    return Err(e(
                        "zero-as-missing splits that send 0 against the threshold are not supported",
                    ));
                }
            };
            let f = feat[i] as usize;
            if f >= features.len() {
                return Err(e("a split uses an unknown feature"));
            }
            nodes.push(Node {
                feature: Some(f as u32),
                threshold: t,
                left: child(lc[i])?,
                right: child(rc[i])?,
                missing_left,
                value: 0.0,
                cover: iw.get(i).copied().unwrap_or(0.0) as f32,
            });
        }
        for (j, v) in leaf_value.iter().enumerate() {
            nodes.push(Node::leaf(
                (v * sigmoid) as f32,
                leaf_weight.get(j).copied().unwrap_or(0.0) as f32,
            ));
        }
        trees.push(Tree { nodes });
    }
    if trees.is_empty() {
        return Err(bad("no trees"));
    }
    Model::new(
        features,
        Comparison::Le,
        0.0,
        trees,
        serde_json::json!({ "imported_from": format!("lightgbm {version}"), "sigmoid": sigmoid }),
        "lightgbm",
    )
    .map_err(MlError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_round_down_to_float32() {
        for t in [
            0.1f64,
            1e-35,
            3.5000000000000004,
            -2.3,
            1e300,
            56.690_223_693_847_66,
        ] {
            let f = f32_floor(t);
            assert!(f64::from(f) <= t, "{t}");
            assert!(f64::from(f.next_up()) > t || f == f32::MAX, "{t}");
        }
    }

    #[test]
    fn other_objectives_are_refused() {
        let e = from_xgboost_json(r#"{"learner":{"objective":{"name":"reg:squarederror"}}}"#);
        assert!(e.unwrap_err().to_string().contains("binary:logistic"));
        let e = from_lightgbm_text("tree\nobjective=regression\nfeature_names=a\n");
        assert!(e.unwrap_err().to_string().contains("binary"));
        assert!(from_xgboost_json("not json").is_err());
    }
}
