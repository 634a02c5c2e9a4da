"""Compares cardguard's trainer with LightGBM and XGBoost on the same replayed features and
the same test sets (the handbook's protocol), fold by fold. Run by hand:

    cardguard ml features --transactions TX.csv.gz --out features.csv
    for k in 0 1 2 3: cardguard ml evaluate --transactions TX.csv.gz --train ... --test ... \
        --predictions pred$k.csv          (each fold 7 days earlier than the one before)
    pip install lightgbm==4.7.0 xgboost==3.2.0 pandas numpy
    python3 compare_trainers.py features.csv FIRST_TRAIN_DAY pred0.csv pred1.csv ...

The test transactions of fold k are the ones in pred{k}.csv (cards known compromised are
already left out there); the training rows are the 7 days from FIRST_TRAIN_DAY - 7k.
"""
import sys
import time

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb


def average_precision(y, s):
    o = np.argsort(-s, kind="mergesort")
    y, s = y[o], s[o]
    tp, fp = np.cumsum(y), np.cumsum(1 - y)
    last = np.r_[np.diff(s) != 0, True]
    tp, fp = tp[last], fp[last]
    recall, precision = tp / y.sum(), tp / (tp + fp)
    return float(np.sum(np.diff(np.r_[0, recall]) * precision))


def main():
    features, first, preds = sys.argv[1], pd.Timestamp(sys.argv[2]), sys.argv[3:]
    df = pd.read_csv(features)
    cols = [c for c in df.columns if c not in ("TRANSACTION_ID", "DAY", "CARD_ID", "TX_FRAUD")]
    df["DAY"] = pd.to_datetime(df["DAY"])
    by_id = df.set_index("TRANSACTION_ID")
    res = {"cardguard": [], "lightgbm": [], "xgboost": []}
    secs = {"lightgbm": [], "xgboost": []}
    for k, path in enumerate(preds):
        start = first - pd.Timedelta(days=7 * k)
        tr = df[(df.DAY >= start) & (df.DAY <= start + pd.Timedelta(days=6))]
        p = pd.read_csv(path)
        te = by_id.loc[p.TRANSACTION_ID]
        y = te.TX_FRAUD.values
        res["cardguard"].append(average_precision(p.label.values, p.score.values))
        t = time.time()
        m = lgb.train({"objective": "binary", "verbose": -1, "seed": 1, "num_threads": 2},
                      lgb.Dataset(tr[cols].values, label=tr.TX_FRAUD.values), 100)
        secs["lightgbm"].append(time.time() - t)
        res["lightgbm"].append(average_precision(y, m.predict(te[cols].values)))
        t = time.time()
        b = xgb.train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.3, "nthread": 2,
                       "seed": 1, "tree_method": "hist"},
                      xgb.DMatrix(tr[cols].values, label=tr.TX_FRAUD.values), 100)
        secs["xgboost"].append(time.time() - t)
        res["xgboost"].append(average_precision(y, b.predict(xgb.DMatrix(te[cols].values))))
    for name, aps in res.items():
        print(f"{name:10} AP per fold {[round(a, 3) for a in aps]} mean {np.mean(aps):.3f}"
              f" train s {[round(s, 1) for s in secs.get(name, [])]}")


if __name__ == "__main__":
    main()
