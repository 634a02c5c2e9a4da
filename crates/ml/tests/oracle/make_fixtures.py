"""Makes the model-import fixtures with the reference libraries (run by hand, not in CI):

    pip install xgboost==3.2.0 lightgbm==4.7.0 numpy
    python3 crates/ml/tests/oracle/make_fixtures.py

Writes, under crates/ml/tests/fixtures/: inputs.csv (float32 feature rows, some missing), an
XGBoost model saved as JSON and a LightGBM text model trained on the same rows, and each
library's predicted probabilities and margins for every input row.
"""
import csv
import os

import lightgbm as lgb
import numpy as np
import xgboost as xgb

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures")
# Names of the engine's features, so the imported models also compile for the engine.
NAMES = ["amount", "card_count_24h", "card_mean_amount_30d", "terminal_fraud_rate_7d", "new_device"]

rng = np.random.default_rng(20261122)
n = 2000
X = np.column_stack([
    rng.gamma(2.0, 40.0, n),
    rng.poisson(2.0, n).astype(float),
    rng.gamma(2.0, 30.0, n),
    rng.beta(0.5, 20.0, n),
    rng.integers(0, 2, n).astype(float),
]).astype(np.float32)
logit = -4.0 + 0.015 * X[:, 0] + 0.3 * X[:, 1] - 0.01 * X[:, 2] + 12.0 * X[:, 3] + 1.0 * X[:, 4]
y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
# Some values missing: the models learn a default direction for them.
X[rng.random(n) < 0.05, 2] = np.nan
X[rng.random(n) < 0.05, 3] = np.nan

test = X[:300]

bst = xgb.train(
    {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3, "seed": 1,
     "tree_method": "hist", "base_score": 0.3},
    xgb.DMatrix(X, label=y, feature_names=NAMES),
    num_boost_round=25,
)
bst.save_model(os.path.join(HERE, "xgboost.json"))
d = xgb.DMatrix(test, feature_names=NAMES)
xgb_p = bst.predict(d)
xgb_m = bst.predict(d, output_margin=True)

gbm = lgb.train(
    {"objective": "binary", "num_leaves": 12, "learning_rate": 0.2, "seed": 1,
     "verbose": -1, "min_data_in_leaf": 10, "deterministic": True},
    lgb.Dataset(X, label=y, feature_name=NAMES),
    num_boost_round=25,
)
gbm.save_model(os.path.join(HERE, "lightgbm.txt"))
lgb_p = gbm.predict(test)
lgb_m = gbm.predict(test, raw_score=True)

with open(os.path.join(HERE, "inputs.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(NAMES)
    for row in test:
        w.writerow(["" if np.isnan(v) else repr(float(v)) for v in row])

for name, p, m in [("xgboost", xgb_p, xgb_m), ("lightgbm", lgb_p, lgb_m)]:
    with open(os.path.join(HERE, f"{name}.expected.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["probability", "margin"])
        for a, b in zip(p, m):
            w.writerow([repr(float(a)), repr(float(b))])
print("versions: xgboost", xgb.__version__, "lightgbm", lgb.__version__)
