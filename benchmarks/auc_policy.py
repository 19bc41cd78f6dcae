"""The secure AUC's estimator and threshold policy at paper scale, on the clear scores: a fast stand-in for
benchmarks/evaluation.py that replays exactly what the researcher would receive.

    python benchmarks/auc_policy.py [--seeds 0 1 2 3] [--rows 49152] [--features 10] [--folds 10]

For each synthetic data set (mpclr.data.synthetic), fold models are trained in float64 with the evaluation
benchmark's schedule (degree 3, three Nesterov steps: the models benchmarks/evaluation.py decrypts), each
row scored by the model that did not see it; then the secure evaluation's passes are replayed with its
public shape (`SecureEvaluation.planned`: cutoff, grid, refinement rounds) and its float64 composites: every
revealed count is sum h((s - theta) / D) over the fold's rows, h the composite step the encrypted comparisons
approximate (within 1e-6 per row), and the researcher's refinement chooses from those counts. The AUC from
the counts (trapezoid and interpolated, mpclr.evaluation.counts) is compared with scikit-learn's on the same
scores. Writes benchmarks/results/auc_policy.json: per configuration and fold the differences, the number of
thresholds and what the researcher received.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write  # noqa: E402

from mpclr.data import synthetic  # noqa: E402
from mpclr.evaluation.refinement import FoldView, fill_shape  # noqa: E402
from mpclr.evaluation.secure import SecureEvaluation  # noqa: E402
from mpclr.params import get_preset  # noqa: E402
from mpclr.plain.sigmoid import sigmoid_poly  # noqa: E402
from mpclr.seal.context import seal_context  # noqa: E402
from mpclr.training.party import design_rows  # noqa: E402

SCHEDULE = [(2.0, 0.0), (1.0, 0.0), (0.7, -0.2)]  # benchmarks/evaluation.py's


def fold_scores(rows: int, features: int, folds: int, seed: int):
    """(scores, labels, fold ids): each row scored by the float64 model of the fold that tests it."""
    ds = synthetic(rows, features, seed=seed)
    fold_of_row = np.random.default_rng(seed + 1).permutation(np.arange(rows) % folds)
    mean, std = ds.X.mean(0), ds.X.std(0)
    Z = design_rows(ds.X, ds.y, mean, std)
    p = np.asarray(sigmoid_poly(3, 8.0))
    W = np.zeros((folds, Z.shape[1]))
    V = np.zeros_like(W)
    for gamma, eta in SCHEDULE:
        G = np.zeros_like(W)
        for k in range(folds):
            m = fold_of_row != k
            G[k] = (np.polyval(p[::-1], -(Z[m] @ V[k]))[:, None] * Z[m]).sum(axis=0) / m.sum()
        W_new = V + gamma * G
        V, W = (1 - eta) * W_new + eta * W, W_new
    s = W[fold_of_row, 0] + np.einsum("ij,ij->i", (ds.X - mean) / std, W[fold_of_row, 1:])
    return s, ds.y, fold_of_row


def replay(ev: SecureEvaluation, s, y, fold_of_row) -> dict[int, FoldView]:
    """The researcher's view after every pass, with the counts the composites give on these scores."""
    views = {k: FoldView(k, int(n)) for k, n in enumerate(np.bincount(fold_of_row, minlength=ev.layout.folds))}
    for k, view in views.items():
        view.record("positives", None, float(y[fold_of_row == k].sum()))

    def counts(composite, thresholds):
        for g, th in thresholds.items():
            grp = ev.layout.groups[g]
            for j, k in enumerate(grp.models):
                m = fold_of_row == k
                for theta in th[j][~np.isnan(th[j])]:
                    h = composite.step((s[m] - theta) / ev.D)
                    views[k].record("rows", theta, float(h.sum()))
                    views[k].record("positives_above", theta, float((y[m] * h).sum()))

    for composite, thresholds in ev._first_pass():
        counts(composite, thresholds)
    for _ in range(ev.refine_rounds):
        chosen = {}
        for grp in ev.layout.groups:
            for k in grp.models:
                chosen[k] = views[k].refine(ev._refine_budget(grp), -ev.R, ev.R, ev.coarse.transition * ev.D)
        for thresholds in fill_shape(ev.layout, ev._refine_shape(), ev._thresholds_for(chosen)):
            counts(ev.coarse, thresholds)
    return views


def main() -> int:
    from sklearn.metrics import roc_auc_score

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--rows", type=int, default=49152)
    ap.add_argument("--features", type=int, default=10)
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--parties", type=int, default=3)
    ap.add_argument("--name", default="auc_policy")
    args = ap.parse_args()
    ctx = seal_context(get_preset("train"))
    holders = [f"hospital-{i + 1}" for i in range(args.parties)]
    configs = {"default: 4 + 1 x 6": {},
               "4 + 1 x 8": {"grid": 4, "refine_rounds": 1, "refine_thresholds": 8},
               "4 + 2 x 4 (before)": {"grid": 4, "refine_rounds": 2, "refine_thresholds": 4},
               "4 + 1 x 4": {"grid": 4, "refine_rounds": 1, "refine_thresholds": 4}}
    rows, records = [], []
    for seed in args.seeds:
        s, y, fold_of_row = fold_scores(args.rows, args.features, args.folds, seed)
        for name, options in configs.items():
            ev = SecureEvaluation.planned(ctx, fold_of_row, args.folds, args.features + 1, holders, **options)
            views = replay(ev, s, y, fold_of_row)
            for k, view in views.items():
                m = fold_of_row == k
                summary = view.summary(ev.cutoff)
                exact = float(roc_auc_score(y[m], s[m]))
                rec = {"seed": seed, "config": name, "fold": k, "rows": int(m.sum()), "sklearn": exact,
                       "auc": summary["auc"], "auc_trapezoid": summary["auc_trapezoid"],
                       "diff": summary["auc"] - exact, "diff_trapezoid": summary["auc_trapezoid"] - exact,
                       "auc_bound": summary["auc_bound"], "thresholds": summary["thresholds"],
                       "revealed_counts": 1 + 2 * summary["thresholds"], "passes": 1 + ev.refine_rounds}
                records.append(rec)
            mine = [r for r in records if r["seed"] == seed and r["config"] == name]
            rows.append({"seed": seed, "config": name, "thresholds": mine[0]["thresholds"],
                         "passes": mine[0]["passes"],
                         "max_diff": max(abs(r["diff"]) for r in mine),
                         "max_diff_trapezoid": max(abs(r["diff_trapezoid"]) for r in mine),
                         "mean_diff": float(np.mean([r["diff"] for r in mine])),
                         "mean_diff_trapezoid": float(np.mean([r["diff_trapezoid"] for r in mine]))})
    print(table(rows, ["seed", "config", "thresholds", "passes", "max_diff", "max_diff_trapezoid", "mean_diff",
                       "mean_diff_trapezoid"]))
    print(f"wrote {write(args.name, {'args': vars(args), 'summary': rows, 'folds': records})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
