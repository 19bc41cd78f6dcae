"""`mpclr glm`: a pooled GLM of a data set over simulated hospitals, printed as statsmodels prints one, and
its record as JSON (coefficients, header, iterations, what the researcher decrypted, time)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_glm_parser"]


def add_glm_parser(sub) -> None:
    from ..params import add_preset_argument
    from .family import FAMILIES

    p = sub.add_parser("glm", help="a pooled GLM (coefficients, standard errors, odds ratios) on encrypted "
                                   "per-hospital sums", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("data", help="a CSV/TSV file, or breast_cancer, edin, lbw, pcs, uis, synthetic:NxD")
    p.add_argument("--family", default="binomial", choices=FAMILIES, help="GLM family (canonical link)")
    p.add_argument("--label", default="last", help="the outcome column: last, first, an index or a name (of a "
                   "shipped set: its label, or any of its columns x1, x2, ...)")
    p.add_argument("--columns", default=None, help="predictors, comma-separated (default: every other column)")
    p.add_argument("--positive", default=None, help="the positive class of a binomial outcome that is not 0/1")
    p.add_argument("--hospitals", "--parties", dest="hospitals", type=int, metavar="N", default=3,
                   help="hospitals (each a key holder); --parties is the older name")
    p.add_argument("--threshold", type=int, default=None, help="t for t-out-of-n decryption (default: n)")
    add_preset_argument(p)
    p.add_argument("--split", default="even", help="how rows are dealt: even, or a column holding a hospital id")
    p.add_argument("--seed", type=int, default=None, help="shuffle rows before dealing them (public randomness)")
    p.add_argument("--max-iter", type=int, default=25, help="at most this many IRLS iterations")
    p.add_argument("--ridge", type=float, default=0.0, help="ridge penalty lambda on the non-intercept coefficients")
    p.add_argument("--no-intercept", action="store_true", help="fit without the constant column")
    p.add_argument("--json", metavar="OUT", help="write the fit's record here")
    p.set_defaults(func=_glm)


def _glm(args) -> int:
    from .estimator import glm

    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    result = glm(args.data, args.family, label=args.label, columns=columns, positive=args.positive,
                 hospitals=args.hospitals, threshold=args.threshold, preset=args.preset, split=args.split,
                 seed=args.seed, max_iter=args.max_iter, ridge=args.ridge, intercept=not args.no_intercept)
    print(result.summary_text())
    print(f"\n{len(result.revealed)} decryptions to the researcher ({sum(r['values'] for r in result.revealed)} "
          f"values), {result.seconds:.2f} s")
    if args.json:
        record = {"data": str(args.data), "family": args.family, "hospitals": args.hospitals,
                  "threshold": args.threshold, "preset": args.preset, **result.to_dict()}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=1, default=float))
        print(f"written {args.json}")
    return 0
