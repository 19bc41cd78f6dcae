"""Pooled GLM and Table 1 on encrypted per-hospital sums: time to converge, beside statsmodels on the pooled rows.

    python benchmarks/glm.py                      # 15,000 x 15 and 49,152 x 10, 3 hospitals, preset train

Goals (issue 15): a pooled logistic GLM on 15,000 x 15 rows in 3 hospitals converges in under 10 s, the
paper-scale synthetic set (49,152 x 10) in under 15 s. The fit's time counts every round from the first
request to the last decryption (hospitals computing and encrypting, the server adding, the threshold
decryptions); the key ceremony, done once per study, is reported beside it. A Table 1 of the same rows
(every feature continuous, split by the label) is timed too. The hospitals agree to both: the fit's
manifest merged with the table's (mpclr.stats.manifest). Writes benchmarks/results/glm.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from common import table, write  # noqa: E402

import mpclr  # noqa: E402
from mpclr.roles.policy import merge_manifests  # noqa: E402
from mpclr.stats import deal, fit_pooled  # noqa: E402
from mpclr.stats.columns import load_columns, split_rows  # noqa: E402
from mpclr.stats.manifest import glm_manifest, table_manifest  # noqa: E402
from mpclr.stats.requests import GLMModel  # noqa: E402
from mpclr.stats.result import GLMResult  # noqa: E402
from mpclr.stats.table1 import table_one  # noqa: E402

GOALS = {"15000x15": 10.0, "49152x10": 15.0}


def statsmodels_fit(cols):
    import statsmodels.api as sm

    X = sm.add_constant(cols.values[:, :-1])
    t0 = time.perf_counter()
    ref = sm.GLM(cols.values[:, -1], X, family=sm.families.Binomial()).fit(tol=1e-12, maxiter=100)
    return ref, time.perf_counter() - t0


def run(case: str, parties: int, preset: str) -> dict:
    n, d = (int(v) for v in case.split("x"))
    cols = load_columns(f"synthetic:{n}x{d}")
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    manifest = merge_manifests("pooled GLM and Table 1", glm_manifest(parties, d + 1),
                               table_manifest(preset, parties, 5, continuous=d, ceremony=False))
    fed = mpclr.Federation(hospitals=parties, preset=preset, manifest=manifest)
    ceremony = time.perf_counter() - t0
    try:
        deal(fed, split_rows(cols, parties))
        before = fed.traffic()
        t0 = time.perf_counter()
        r = GLMResult(fit_pooled(fed, GLMModel("binomial", cols.outcome, cols.predictors())))
        fit = time.perf_counter() - t0
        traffic = fed.network.traffic.since(before)
        hospital_s = sum(p.handler_seconds["glm.step"] for p in fed.hospitals) / parties
        t0 = time.perf_counter()
        t1 = table_one(fed, by=cols.outcome, continuous=cols.predictors())
        table_s = time.perf_counter() - t0
    finally:
        fed.close()
    ref, sm_s = statsmodels_fit(cols)
    return {
        "case": case, "rows": n, "parameters": d + 1, "hospitals": parties, "preset": preset,
        "key_ceremony_s": round(ceremony, 3), "fit_s": round(fit, 3), "goal_s": GOALS.get(case),
        "met": fit < GOALS.get(case, float("inf")), "rounds": len(r.rounds), "iterations": r.iterations,
        "s_per_round": round(fit / len(r.rounds), 3), "hospital_s_per_round": round(hospital_s / len(r.rounds), 3),
        "max_rel_coef": float(np.max(np.abs(r.params - ref.params) / np.abs(ref.params))),
        "max_rel_se": float(np.max(np.abs(r.bse - ref.bse) / ref.bse)),
        "statsmodels_s": round(sm_s, 3), "revealed_values": sum(e["values"] for e in r.revealed),
        "traffic_mb": round(traffic["total_bytes"] / 1e6, 2), "table1_s": round(table_s, 3),
        "table1_refreshes": t1.cost["refreshes"], "load_average_before": load0, "load_average_after": os.getloadavg(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=list(GOALS))
    ap.add_argument("--parties", type=int, default=3)
    ap.add_argument("--preset", default="train")
    ap.add_argument("--name", default="glm")
    args = ap.parse_args()
    rows = [run(case, args.parties, args.preset) for case in args.cases]
    print(table(rows, ["case", "hospitals", "key_ceremony_s", "fit_s", "goal_s", "met", "rounds", "s_per_round",
                       "hospital_s_per_round", "max_rel_coef", "max_rel_se", "statsmodels_s", "table1_s"]))
    print(f"load average after: {os.getloadavg()}")
    print(f"written {write(args.name, {'cases': rows})}")


if __name__ == "__main__":
    main()
