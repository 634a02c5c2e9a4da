"""The highest card precision@100 any ranking can reach on the handbook's data under its
protocol, fold by fold: what the goal of a model can be. Run by hand (Python 3, no packages):

    python3 card_precision_ceiling.py TX.csv.gz [FIRST_TEST_DAY] [FOLDS]

(defaults: 2018-07-11 and 8, the folds of `cardguard ml evaluate --train 2018-06-27..2018-07-03
--test 2018-07-11..2018-07-17 --folds 8`: 7 training days, 7 days of label delay, 7 test
days, each fold 7 days before the one after it).

It ranks each test day's cards twice, with the protocol of crates/ml/src/metrics.rs and
evaluate.rs (cards known compromised, a fraud from the first training day to day t - 8, left
out; cards found in an earlier test day's top 100 left out of later days):

- "perfect": a ranking that knows every label. No model can have this.
- "evidence": a ranking that puts first every fraud for which evidence exists when it
  happens, using the simulator's scenario column (which no model sees): a fraud of an amount
  over 220 (scenario 1), a fraud on a compromised card (scenario 3: five times its amount),
  and a fraud at a compromised terminal (scenario 2) once an earlier fraud at that terminal,
  in the same compromise, is at least the label delay old, so that its label has arrived.
  A fraud at a terminal compromised less than the delay ago looks like any genuine purchase
  (the simulator only relabels the terminal's transactions) and no label says otherwise yet.
  The evidence ranking fills the rest of the top 100 with genuine cards.
"""
import csv
import datetime
import gzip
import statistics
import sys
from collections import defaultdict

DELAY_DAYS = 7
K = 100


def main():
    path = sys.argv[1]
    first_test = datetime.date.fromisoformat(sys.argv[2] if len(sys.argv) > 2 else "2018-07-11")
    folds = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    rows = []  # (day, seconds, card, terminal, scenario)
    start = None
    with gzip.open(path, "rt") if path.endswith(".gz") else open(path) as f:
        for r in csv.DictReader(f):
            day = datetime.date.fromisoformat(r["TX_DATETIME"][:10])
            start = start or day - datetime.timedelta(days=int(r["TX_TIME_DAYS"]))
            rows.append((int(r["TX_TIME_DAYS"]), int(r["TX_TIME_SECONDS"]), int(r["CUSTOMER_ID"]),
                         int(r["TERMINAL_ID"]), int(r["TX_FRAUD_SCENARIO"])))
    # Compromised terminals' fraud times, for "an earlier fraud in the same compromise".
    terminal_frauds = defaultdict(list)
    for day, secs, _, terminal, scenario in rows:
        if scenario == 2:
            terminal_frauds[terminal].append(secs)
    for v in terminal_frauds.values():
        v.sort()

    def evidence(row):
        day, secs, _, terminal, scenario = row
        if scenario in (1, 3):
            return True
        if scenario == 2:
            # The compromise lasts 28 days: an earlier fraud at most 28 days back belongs to it.
            t = terminal_frauds[terminal]
            return any(secs - 28 * 86400 < s <= secs - DELAY_DAYS * 86400 for s in t)
        return False

    by_day = defaultdict(list)
    for row in rows:
        by_day[row[0]].append(row)
    test0 = (first_test - start).days
    results = {"perfect": [], "evidence": []}
    for fold in range(folds):
        test_from = test0 - 7 * fold
        train_from = test_from - 7 - DELAY_DAYS
        for name, knows in (("perfect", lambda r: r[4] > 0), ("evidence", evidence)):
            detected, total = set(), 0.0
            for d in range(test_from, test_from + 7):
                known = {r[2] for x in range(train_from, d - DELAY_DAYS)
                         for r in by_day[x] if r[4] > 0}
                cards = {}  # card -> (ranked first, fraud that day)
                for r in by_day[d]:
                    if r[2] in known or r[2] in detected:
                        continue
                    first, fraud = cards.get(r[2], (False, False))
                    cards[r[2]] = (first or knows(r), fraud or r[4] > 0)
                top = sorted(cards.items(), key=lambda kv: (not kv[1][0], kv[0]))[:K]
                hits = [c for c, (first, fraud) in top if first and fraud]
                total += len(hits) / K
                detected.update(hits)
            results[name].append(total / 7)
        day = start + datetime.timedelta(days=test_from)
        print(f"test {day}..{day + datetime.timedelta(days=6)}: perfect {results['perfect'][-1]:.3f}"
              f" evidence {results['evidence'][-1]:.3f}")
    for name, v in results.items():
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        print(f"{name}: card precision@{K} {statistics.mean(v):.3f} ± {sd:.3f} over {len(v)} folds")


if __name__ == "__main__":
    main()
