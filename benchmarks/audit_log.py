"""Audit log benchmark: what one record of a hospital's audit log costs (mpclr.roles.policy.AuditLog: one
os.write with O_APPEND, then fsync, per record), beside the same append without fsync, and what that
adds to a study: the default study's requests per hospital (its manifest) times the cost of a record.

    python benchmarks/audit_log.py [--records 2000] [--dir DIR]

DIR must be on the disk the keystores live on (default: a temporary folder in benchmarks/results, not
/tmp, which may be in memory). Writes benchmarks/results/audit_log.json.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, table, write  # noqa: E402

from mpclr.roles.policy import AuditLog, now_iso  # noqa: E402

RECORD = {  # a refresh request as a hospital logs it
    "session": "8f0c4a2e9d4b1c7a5e3f2d1c0b9a8f7e", "hospital": "hospital-2", "step": "refresh.share",
    "label": "evaluation/comparisons#27", "requester": "server", "bytes_in": 2_359_877, "bytes_out": 4_718_993,
    "ciphertexts": 6, "decision": "answered",
    "reason": "refresh.share evaluation/comparisons: 54 rounds (27 answered), 324 ciphertexts (162 answered)",
}


def timed(write_one, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        write_one({"time": now_iso(), **RECORD, "label": f"evaluation/comparisons#{i}"})
        out.append(time.perf_counter() - t0)
    return out


def plain_append(path: Path):
    def write_one(record):
        import json

        with open(path, "a") as fh:
            fh.write(json.dumps(record, separators=(",", ":")) + "\n")

    return write_one


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="audit-", dir=RESULTS))
    try:
        log = AuditLog(root / "audit.jsonl")
        fsynced = timed(log.write, args.records)
        plain = timed(plain_append(root / "plain.jsonl"), args.records)
        size = (root / "audit.jsonl").stat().st_size / args.records
    finally:
        if not args.dir:
            shutil.rmtree(root)
    rows = []
    for name, times in (("O_APPEND + fsync (AuditLog)", fsynced), ("append, no fsync", plain)):
        times = sorted(times)
        rows.append({"write": name, "median_ms": 1e3 * statistics.median(times),
                     "mean_ms": 1e3 * statistics.mean(times), "p95_ms": 1e3 * times[int(0.95 * len(times))],
                     "max_ms": 1e3 * times[-1]})
    # requests a hospital answers in the default study (breast cancer, 5 folds, 3 hospitals), from its manifest
    # (made as run_cv makes it: each hospital counts its rows per fold with its own fold key)
    from mpclr.data import load, split
    from mpclr.federation import seal_context
    from mpclr.network import InProcessNetwork
    from mpclr.params import get_preset
    from mpclr.pipeline import study_manifest_for
    from mpclr.roles import Hospital
    from mpclr.spec import StudySpec

    config = StudySpec()
    data = load("breast_cancer")
    ctx = seal_context(get_preset(config.preset))
    hospitals = [Hospital(f"hospital-{i + 1}", ctx, InProcessNetwork()) for i in range(config.hospitals)]
    parts = split(data, config.hospitals, config.split, seed=config.seed)
    manifest = study_manifest_for(config, parts, data.n_features)(hospitals)
    requests = sum(b.rounds for b in manifest.budgets)
    per_study = requests * statistics.mean(fsynced)
    print(table(rows, ["write", "median_ms", "mean_ms", "p95_ms", "max_ms"]))
    print(f"{size:.0f} bytes per record; default study: {requests} requests per hospital, "
          f"{per_study * 1e3:.0f} ms of audit log per hospital")
    path = write("audit_log", {"records": args.records, "bytes_per_record": size, "rows": rows,
                               "default_study": {"requests_per_hospital": requests, "audit_seconds": per_study}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
