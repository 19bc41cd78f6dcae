"""Command line: `mpclr demo` (the README's main job) and, as they land, `mpclr cv` and `mpclr batch`."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from .notebooks.batch import add_batch_parser


def _demo(args) -> int:
    """Pooled feature means of scikit-learn's breast-cancer data, split across hospitals, computed under
    threshold encryption and decrypted only by all key holders together."""
    from sklearn.datasets import load_breast_cancer

    import mpclr

    X = load_breast_cancer().data
    parts = np.array_split(X, args.parties)
    t0 = time.perf_counter()
    fed = mpclr.Federation(parties=args.parties, preset=args.preset)
    print(
        f"key ceremony: {args.parties} hospitals, preset {fed.params.name!r} "
        f"(N={fed.params.n}, {fed.params.describe()['security']}) in {time.perf_counter() - t0:.2f} s"
    )
    total = None
    for party, rows in zip(fed.parties, parts):
        c = party.encrypt(np.append(rows.sum(axis=0), len(rows)))
        total = c if total is None else fed.server.add(total, c)
    out = fed.decrypt(total, by=range(fed.n), label="pooled sums")
    means = out[:-1] / out[-1]
    err = np.abs(means - X.mean(axis=0)) / np.abs(X.mean(axis=0))
    print(f"pooled means of {int(round(out[-1]))} rows, max relative error vs numpy {err.max():.2e}")
    traffic = fed.traffic()
    print(f"{traffic['total_bytes'] / 1e6:.1f} MB exchanged; per message type:")
    for name, v in traffic["by_type"].items():
        print(f"  {name:16s} {v['messages']:4d} messages {v['bytes'] / 1e6:9.2f} MB")
    return 0 if err.max() < 1e-3 else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="mpclr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="threshold-HE demo on the embedded default data set")
    demo.add_argument("--parties", type=int, default=3)
    demo.add_argument("--preset", default="fast")
    demo.set_defaults(func=_demo)
    add_batch_parser(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:  # clear one-line errors for the command line
        from .errors import MpclrError

        if isinstance(exc, MpclrError):
            print(f"mpclr: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
