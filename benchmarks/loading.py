"""How long mpclr.data.load_csv takes on a large file (issue 14: loading goes through pandas).

    python benchmarks/loading.py [--rows 1000000] [--features 10] [--repeat 3]

Writes a comma-separated file of `rows` x (`features` + a 0/1 label, last) with a header line to
/tmp (removed afterwards), times load_csv on it (separator and header detected, as a user would call
it), and for scale a bare pandas.read_csv with the separator given. The best of `repeat` runs counts:
the machine is shared. Then the same file with a "?" in the last line: how long the refusal, which names
that line and column, takes. Writes benchmarks/results/loading.json and prints a table.

Before pandas (the csv module, one line at a time), load_csv took 6.0 s to read this file and 6.0 s to
refuse it (1,000,000 x 10, best of 3 and of 2, on the machine and day of benchmarks/results/loading.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write  # noqa: E402

from mpclr.data import load_csv  # noqa: E402
from mpclr.errors import DataError  # noqa: E402


def make_file(path: Path, rows: int, features: int) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, features)) * rng.uniform(0.5, 30, features) + rng.uniform(-50, 50, features)
    y = (rng.random(rows) < 0.4).astype(np.int64)
    with open(path, "w") as fh:
        fh.write(",".join([*(f"x{j + 1}" for j in range(features)), "y"]) + "\n")
        np.savetxt(fh, np.c_[X, y], delimiter=",", fmt=["%.6g"] * features + ["%d"])


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    fd, name = tempfile.mkstemp(suffix=".csv", prefix="mpclr-loading-", dir="/tmp")
    os.close(fd)
    path = Path(name)
    try:
        make_file(path, args.rows, args.features)
        ds = load_csv(path)
        assert ds.X.shape == (args.rows, args.features), ds.X.shape
        rows = [{"what": "mpclr.data.load_csv (sep and header detected)",
                 "seconds": best(lambda: load_csv(path), args.repeat)}]
        try:
            import pandas as pd

            rows.append({"what": f"pandas {pd.__version__} read_csv(sep=',') alone",
                         "seconds": best(lambda: pd.read_csv(path, sep=","), args.repeat)})
        except ImportError:
            pass
        with open(path, "a") as fh:
            fh.write(",".join(["1"] * (args.features - 1) + ["?", "1"]) + "\n")

        def refused():
            try:
                load_csv(path)
            except DataError as e:
                assert f"line {args.rows + 2}, column {args.features}" in str(e), e
            else:
                raise AssertionError("the bad cell was not found")

        rows.append({"what": "mpclr.data.load_csv refusing it ('?' on the last line)",
                     "seconds": best(refused, args.repeat)})
        size = path.stat().st_size
    finally:
        path.unlink(missing_ok=True)
    print(f"{args.rows} rows x {args.features} features + label, {size / 1e6:.1f} MB, best of {args.repeat}")
    print(table(rows, ["what", "seconds"]))
    out = write("loading", {"rows": args.rows, "features": args.features, "bytes": size,
                            "repeat": args.repeat, "results": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
