"""Key-dependent noise of everything a study decrypts or refreshes, per preset, against its smudging.

A small real study runs in process with smudging 0 and tests/noise_probe.py beside it: every ciphertext the
server computes on is paired with its noise-free shadow, and the noise of each decryption and each refresh
input is measured exactly (coefficient domain; each hospital's s_i c1 made in its own place). Reported per
kind: std and max over the coefficients (max over ciphertexts), the smudging sigma each hospital adds, the
margin sigma / max noise, and loose statistical-distance bounds of one honest hospital's Gaussian smudging:
per ciphertext ||e||_2 / (2 sigma), per study sqrt(sum_j ||e_j||^2) / (2 sigma) (KL adds up; Pinsker).

    python benchmarks/noise.py                      # train, 3 and 10 hospitals (a few minutes)
    python benchmarks/noise.py --presets fast deep --no-evaluation
    python benchmarks/noise.py --upload share-keyed public-key   # both upload modes
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, table, write  # noqa: E402
from mpclr.params import PRESETS  # noqa: E402
from tests.noise_probe import measure_study  # noqa: E402


def rows_for(params, summary: dict) -> list[dict]:
    rows = []
    for kind, s in summary.items():
        refresh = kind.startswith("refresh input")
        if kind.startswith("refresh output"):
            continue  # what a decryption of a refreshed value sees: listed under the decryptions
        sigma = params.refresh_smudging if refresh else params.smudging_bits
        noise = math.log2(max(s["max"], 1.0))
        rows.append(
            {
                "kind": kind,
                "what": "refresh" if refresh else "decryption",
                "count": s["count"],
                "levels": s["levels"],
                "std_bits": round(math.log2(max(s["std"], 1.0)), 2),
                "max_bits": round(noise, 2),
                "sigma_bits": sigma,
                "margin_bits": round(sigma - noise, 2),
                "distance_per_ciphertext": s["l2"] / (2 * 2.0**sigma),
                "l2_sq_sum": s["l2_sq_sum"],
            }
        )
    return rows


def per_study(params, rows: list[dict]) -> dict:
    out = {}
    for what in ("decryption", "refresh"):
        mine = [r for r in rows if r["what"] == what]
        if mine:
            sigma = mine[0]["sigma_bits"]
            out[what] = {
                "ciphertexts": sum(r["count"] for r in mine),
                "max_noise_bits": max(r["max_bits"] for r in mine),
                "sigma_bits": sigma,
                "margin_bits": round(sigma - max(r["max_bits"] for r in mine), 2),
                "distance_per_study": math.sqrt(sum(r["l2_sq_sum"] for r in mine)) / (2 * 2.0**sigma),
            }
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["train"], choices=sorted(PRESETS))
    ap.add_argument("--parties", nargs="+", type=int, default=[3, 10])
    ap.add_argument("--data", default="synthetic:150x3", help="the small study's data set (default synthetic:150x3)")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--no-evaluation", action="store_true", help="train and decrypt the models only")
    ap.add_argument("--out", default="noise")
    ap.add_argument("--upload", nargs="+", default=["share-keyed"], choices=["share-keyed", "public-key"],
                    help="how hospitals upload (mpclr.params.Params.upload): each measured in turn")
    args = ap.parse_args(argv)
    cases = []
    for name, upload in [(n, u) for n in args.presets for u in args.upload]:
        params = PRESETS[name].with_(upload=upload)
        for parties in args.parties:
            t0 = time.perf_counter()
            evaluation = not args.no_evaluation
            try:
                summary = measure_study(params, args.data, parties=parties, folds=args.folds,
                                        iterations=args.iterations, evaluation=evaluation)
            except Exception as exc:  # a preset too shallow for the secure evaluation: train and decrypt only
                if not evaluation:
                    raise
                print(f"{name}, {parties} hospitals: secure evaluation failed ({exc}); without it", file=sys.stderr)
                evaluation = False
                summary = measure_study(params, args.data, parties=parties, folds=args.folds,
                                        iterations=args.iterations, evaluation=False)
            rows = rows_for(params, summary)
            case = {
                "preset": name,
                "hospitals": parties,
                "upload": upload,
                "params": params.describe(),
                "data": args.data,
                "folds": args.folds,
                "iterations": args.iterations,
                "secure_evaluation": evaluation,
                "kinds": rows,
                "study": per_study(params, rows),
                "seconds": time.perf_counter() - t0,
            }
            cases.append(case)
            print(f"\n{name}, {upload} uploads, {parties} hospitals ({case['seconds']:.0f} s)")
            print(table(rows, ["kind", "count", "levels", "std_bits", "max_bits", "sigma_bits", "margin_bits",
                               "distance_per_ciphertext"]))
            for what, s in case["study"].items():
                print(f"  {what}: {s['ciphertexts']} ciphertexts, margin 2^{s['margin_bits']}, "
                      f"distance per study <= {s['distance_per_study']:.2g}")
    path = write(args.out, {"cases": cases, "command": " ".join(sys.argv), "machine_at_start": machine()})
    print(f"\nwritten {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
