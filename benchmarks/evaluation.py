"""Secure evaluation benchmark: every fold model's encrypted scores, confusion matrix and ROC/AUC, with only
the agreed counts switched to the researcher's key.

    python benchmarks/evaluation.py [--rows 49152] [--features 10] [--folds 10] [--parties 3]
                                    [--grid 12] [--refine-rounds 0] [--workers auto] [--cache DIR]
                                    [--twin-only]

Paper scale (issue 5): 49,152 x 10, 10 folds, 3 parties, the 'train' preset (128-bit): the whole secure
evaluation, AUC included, in at most 60 s on this 2-core machine (the study: about 20 minutes). The fold
models come from a short encrypted training first (not timed here). After the timed evaluation the
scores are threshold-decrypted for testing only, to check the secure results against scikit-learn on
exactly those scores. Writes benchmarks/results/evaluation.json and prints tables: time per step, per
pass, and what was revealed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write  # noqa: E402

import mpclr  # noqa: E402
from mpclr.data import synthetic  # noqa: E402
from mpclr.evaluation.secure import SecureEvaluation  # noqa: E402
from mpclr.plain.sigmoid import sigmoid_poly  # noqa: E402
from mpclr.training.cv import EncryptedCV, run_encrypted_cv  # noqa: E402
from mpclr.training.encrypted import TrainingPlan  # noqa: E402

SCHEDULE = [(2.0, 0.0), (1.0, 0.0), (0.7, -0.2)]
STUDY_MINUTES = 20


def study(args):
    """A federation with trained fold models: trained now, or resumed from --cache (same keys and models)."""
    data = synthetic(args.rows, args.features, seed=args.seed)
    parts = np.array_split(np.arange(args.rows), args.parties)
    cache = Path(args.cache) if args.cache else None
    t0 = time.perf_counter()
    if cache is not None and (cache / "cv" / "encrypted_cv.json").exists():
        fed = mpclr.Federation.load(cache / "federation")
        for p, rows in zip(fed.hospitals, parts):
            p.load_data(data.X[rows], data.y[rows], rows)
        # the hospitals' own fold ids again: each recomputes them from the secret fold key in its keystore
        replies = fed.server.call_many("lr.folds", {p.name: {"folds": args.folds} for p in fed.hospitals})
        cv = EncryptedCV.load(cache / "cv")
        for r in replies.values():
            if not np.array_equal(cv.fold_of_row[r["rows"]], r["folds"]):
                raise SystemExit(f"the hospitals' fold ids differ from the cached study's: delete {cache}")
        return fed, cv, data, {"resumed": time.perf_counter() - t0}
    fed = mpclr.Federation(manifest="exploration", hospitals=args.parties, preset="train")
    for p, rows in zip(fed.hospitals, parts):
        p.load_data(data.X[rows], data.y[rows], rows)
    plan = TrainingPlan(sigmoid_poly(3, 8.0), SCHEDULE)
    cv = run_encrypted_cv(fed, folds=args.folds, plan=plan, workers=args.workers)
    if cache is not None:
        fed.save(cache / "federation")
        cv.save(cache / "cv")
    return fed, cv, data, {"training": time.perf_counter() - t0}


def check(ev, result, data, cv) -> list[dict]:
    """Testing only: the scores, decrypted, against the secure counts and scikit-learn's AUC."""
    from sklearn.metrics import roc_auc_score

    scores = ev.decrypt_scores_for_testing()
    rows = []
    for f in result["folds"]:
        m = cv.fold_of_row == f["fold"]
        s, y = scores[m], data.y[m]
        cm = f["confusion"]
        tp, fp = int(((s > ev.cutoff) & (y == 1)).sum()), int(((s > ev.cutoff) & (y == 0)).sum())
        delta = result["method"]["resolution"]["cutoff"]
        rows.append(
            {
                "fold": f["fold"],
                "auc_secure": f["auc"],
                "auc_sklearn": float(roc_auc_score(y, s)),
                "auc_diff": f["auc"] - float(roc_auc_score(y, s)),
                "auc_trapezoid_diff": f["auc_trapezoid"] - float(roc_auc_score(y, s)),
                "auc_bound": f["auc_bound"],
                "thresholds": f["thresholds"],
                "cutoff_fraction": f.get("cutoff_fraction"),
                "confusion_exact": cm["tp"] == tp and cm["fp"] == fp and f["positives"] == int(y.sum()),
                "rows_within_cutoff_transition": int((np.abs(s - ev.cutoff) < delta).sum()),
                "max_fraction": f["max_fraction"],
            }
        )
    return rows


def twin(fed, cv, data) -> dict:
    """Testing only: the fold models decrypted, against the float64 twin of the same training (weights) and the
    twin's AUC on each fold's rows."""
    from sklearn.metrics import roc_auc_score

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from mpclr.training.party import design_rows
    from tests.checks import refresh_flooding
    from tests.training.test_encrypted_training import nesterov_reference

    W = cv.decrypt_models(fed)
    ref = nesterov_reference(design_rows(data.X, data.y, cv.mean, cv.std), cv.fold_of_row, cv.layout.folds,
                             TrainingPlan(sigmoid_poly(3, 8.0), SCHEDULE))
    Xs = (data.X - cv.mean) / cv.std
    folds = []
    for k in range(cv.layout.folds):
        m = cv.fold_of_row == k
        a, b = (float(roc_auc_score(data.y[m], Xs[m] @ w[1:] + w[0])) for w in (W[k], ref[k]))
        diff = float(np.abs(W[k] - ref[k]).max())
        folds.append({"fold": k, "auc_encrypted": a, "auc_twin": b, "max_weight_diff": diff})
    return {"layout": cv.layout.describe(), "max_weight_diff": float(np.abs(W - ref).max()),
            "tolerance": 10 * refresh_flooding(fed.params, fed.n), "max_abs_weight": float(np.abs(ref).max()),
            "max_auc_diff": max(abs(f["auc_encrypted"] - f["auc_twin"]) for f in folds), "folds": folds}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=49152)
    ap.add_argument("--features", type=int, default=10)
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--parties", type=int, default=3)
    ap.add_argument("--grid", type=int, default=None, help="public grid thresholds per fold (default: library's)")
    ap.add_argument("--refine-rounds", type=int, default=None)
    ap.add_argument("--workers", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=None, help="keep the trained study here and resume it next time")
    ap.add_argument("--name", default="evaluation")
    ap.add_argument("--twin-only", action="store_true",
                    help="no secure evaluation: the decrypted fold models against the float64 twin (weights, AUCs)")
    args = ap.parse_args(argv)
    args.workers = args.workers if args.workers == "auto" else int(args.workers)

    load_before = os.getloadavg()
    fed, cv, data, setup = study(args)
    print(f"study ready: {setup}, load average {load_before}", flush=True)
    if args.twin_only:
        result = twin(fed, cv, data)
        print(f"fold models against the twin: weights within {result['max_weight_diff']:.3g} (tolerance "
              f"{result['tolerance']:.3g}), AUCs within {result['max_auc_diff']:.3g}")
        record = {"case": vars(args), "setup_seconds": setup, "load_average_before": load_before, "twin": result}
        print(f"wrote {write(args.name, record)}")
        fed.close()
        return
    options = {"grid": args.grid, "refine_rounds": args.refine_rounds, "workers": args.workers}
    ev = SecureEvaluation(fed, cv, **{k: v for k, v in options.items() if v is not None})
    t0 = time.perf_counter()
    result = ev.run()
    wall = time.perf_counter() - t0
    checks = check(ev, result, data, cv)

    steps = [{"step": k, "seconds": v} for k, v in result["seconds"].items()]
    print(
        f"\nsecure evaluation of {args.folds} folds, {args.rows} x {args.features}, {args.parties} parties: "
        f"{wall:.1f} s wall (study: about {STUDY_MINUTES} min)\n"
    )
    print(table(steps, ["step", "seconds"]))
    passes = [
        {
            "pass": p["name"],
            "resolution": "/".join(f"{r:.3g}" for r in p["resolutions"]),
            "cycles": "/".join(str(len(c["stage_degrees_per_refresh_cycle"])) for c in p["composites"]),
            "ciphertexts": p["comparison_ciphertexts"],
            "refreshes": p["refresh_rounds"],
            "workers": p["workers"],
            "compare_s": p["seconds"]["comparisons"],
            "refresh_s": p["refresh_seconds"],
            "worker_cpu_s": p["worker_compute_seconds"],
            "reveal_s": p["seconds"]["results_to_researcher"],
            "revealed": p["revealed_values"],
        }
        for p in result["passes"]
    ]
    print()
    print(table(passes, list(passes[0])))
    print()
    print(
        table(
            [
                {
                    "revealed to researcher": r["name"],
                    "values": r["values"],
                    "kinds": ", ".join(f"{k}: {v}" for k, v in r["by_kind"].items()),
                }
                for r in result["revealed"]
            ],
            ["revealed to researcher", "values", "kinds"],
        )
    )
    keyswitch = result["traffic"].get("pcks.share", {"bytes": 0})["bytes"]
    print(
        f"\nrevealed: {result['revealed_values']} numbers, in {len(result['revealed'])} ciphertexts switched to "
        f"the researcher's key ({keyswitch} bytes of key-switch requests and shares)"
    )
    print()
    print(
        table(
            checks,
            [
                "fold",
                "auc_secure",
                "auc_sklearn",
                "auc_diff",
                "auc_trapezoid_diff",
                "auc_bound",
                "thresholds",
                "confusion_exact",
                "cutoff_fraction",
                "rows_within_cutoff_transition",
                "max_fraction",
            ],
        )
    )
    print(
        f"\nmean AUC {result['summary']['auc']['mean']:.4f} +/- {result['summary']['auc']['sd']:.4f}; "
        f"max |AUC diff| {max(abs(c['auc_diff']) for c in checks):.5f}"
    )
    path = write(
        args.name,
        {
            "case": vars(args),
            "setup_seconds": setup,
            "load_average_before": load_before,
            "wall_seconds": wall,
            "target_seconds": 60,
            "study_seconds": STUDY_MINUTES * 60,
            "result": result,
            "checks": checks,
        },
    )
    print(f"wrote {path}")
    fed.close()


if __name__ == "__main__":
    main()
