"""`python -m mpclr.deploy local` (breast cancer, 569 x 30, 5 folds, 3 hospitals, preset train) for one or
more code trees, back to back on the same machine: total and per-phase seconds, Flower rounds, per-round
overhead, bytes per hospital, the load average before and after each run.

    python benchmarks/deploy_local.py --tree before=/work/main --tree after=. --name deploy-local-fast

Each tree runs in a fresh process with PYTHONPATH set to it (its own mpclr, the same Python and Flower).
Goal (issue 16): under 60 s total and at most 200 MB sent per hospital. The machine is shared: the load
average moves every number here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write  # noqa: E402


def run(label: str, tree: str) -> dict:
    tree = str(Path(tree).resolve())
    commit = subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="deploy-local-") as tmp:
        out = Path(tmp) / "result.json"
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "mpclr.deploy", "local", "--json", str(out)], cwd=tmp,
                             env={**os.environ, "PYTHONPATH": tree}, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        load1 = os.getloadavg()
        if res.returncode != 0:
            raise SystemExit(f"{label}: mpclr.deploy local failed ({res.returncode}): {res.stderr[-2000:]}")
        r = json.loads(out.read_text())
    net = r["network"]
    return {
        "label": label,
        "tree": tree,
        "commit": commit,
        "load_average_before": load0,
        "load_average_after": load1,
        "command_wall_seconds": wall,
        "seconds": r["seconds"],
        "study_phases": r["study"]["seconds"],
        "rounds": net["rounds"],
        "rounds_by_step": {k: v["rounds"] for k, v in net["by_step"].items()},
        "seconds_in_rounds": net["seconds_in_rounds"],
        "hospital_seconds": net["hospital_seconds"],
        "overhead_median_s": net["overhead_median"],
        "overhead_total_s": net["overhead_total"],
        "bytes_per_hospital": r["bytes_per_hospital"],
        "aucs": r["aucs"],
        "round_log": net["log"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", action="append", required=True, help="label=path of a code tree (repeatable)")
    ap.add_argument("--name", default="deploy-local")
    args = ap.parse_args()
    runs = []
    for spec in args.tree:
        label, _, tree = spec.partition("=")
        runs.append(run(label, tree or "."))
        r = runs[-1]
        print(f"{label} ({r['commit']}): total {r['seconds']['total']:.1f} s, {r['rounds']} rounds, load "
              f"{r['load_average_before'][0]:.1f} -> {r['load_average_after'][0]:.1f}", flush=True)
    print(table([{"run": r["label"], "commit": r["commit"], "load": round(r["load_average_before"][0], 1),
                  **{k: round(v, 1) for k, v in r["seconds"].items()}, "rounds": r["rounds"],
                  "overhead_ms": round(1000 * r["overhead_median_s"]),
                  "sent_MB": round(max(s["sent"] for s in r["bytes_per_hospital"].values()) / 1e6, 1)} for r in runs],
                ["run", "commit", "load", "find_hospitals", "bootstrap", "key_ceremony", "study", "total", "rounds",
                 "overhead_ms", "sent_MB"]))
    path = write(args.name, {"command": "python -m mpclr.deploy local --json X (breast cancer, 569 x 30, 5 folds, "
                                        "3 hospitals, train), trees back to back", "runs": runs})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
