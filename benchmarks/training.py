"""Encrypted cross-validated training at paper scale and beyond, beside the study's 7 minutes.

    python benchmarks/training.py                          # 49,152 x 10, 10 folds, 3 hospitals (the study's case)
    python benchmarks/training.py --scaling [--max-rows N] # rows 6k ... 1,000,000 (3 hospitals), 10 hospitals at 49k
    python benchmarks/training.py --rows 1000000 --features 10    # one case; 1,000,000 x 32 is SPINDLE's shape

Defaults of `mpclr cv` (degree-5 sigmoid, 6 iterations, the 'train' preset: N=16384, 128-bit), threshold
refreshes with real smudging noise, one process simulating every party, the server using both cores.
The fold models are decrypted and scored in the clear (benchmarks/evaluation.py measures the secure
evaluation); each fold's AUC is compared with the plaintext twin's. Memory is the peak resident set of
the whole process tree (this process and the server's worker processes, summed; sampled every 0.1 s),
per stage, and this process's alone per stage; rows past the spool threshold (mpclr.training.spool,
512 MiB; MPCLR_SPOOL_BYTES, MPCLR_SPOOL_DIR) are on disk. Prints a table and writes
benchmarks/results/training.json (--rows: training-<rows>x<features>.json, or --name) with the machine
and its load average, and with --scaling a plot of time and memory against rows
(benchmarks/results/training-scaling.png). Compare ratios within one run: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, TreeMemory, table, write  # noqa: E402

from mpclr.data import synthetic  # noqa: E402
from mpclr.pipeline import Study  # noqa: E402
from mpclr.spec import StudySpec  # noqa: E402

STUDY_TRAINING_S = 7 * 60  # Lu et al. 2020: about 7 minutes for 10-fold CV on 49,152 x 10
SCALING_ROWS = (6144, 12288, 24576, 49152, 98304, 196608, 393216, 1_000_000)
STAGES = ("prepare", "encrypt", "train", "evaluate", "references")
GB = 1e9


def one(rows: int, parties: int, features: int = 10, folds: int = 10) -> dict:
    t0 = time.perf_counter()
    ds = synthetic(rows, features, seed=0)
    data_s = time.perf_counter() - t0
    study = Study(StudySpec(hospitals=parties, folds=folds, evaluation="decrypted-models"))
    t0 = time.perf_counter()
    with TreeMemory() as mem:
        try:
            for stage in STAGES:
                mem.mark(stage)
                getattr(study, stage)(ds) if stage == "prepare" else getattr(study, stage)()
            mem.mark("record")
            rec = study.record()
        finally:
            study.close()
    wall = time.perf_counter() - t0
    spool = study.ecv.blocks
    spool_bytes, on_disk = spool.nbytes, spool.on_disk
    spool.close()
    t = rec["timings_s"]
    traffic = rec["traffic"]
    hospitals = [f"hospital-{k + 1}" for k in range(parties)]
    sent = [traffic["by_sender"].get(h, {"bytes": 0})["bytes"] for h in hospitals]
    received = [traffic["by_recipient"].get(h, {"bytes": 0})["bytes"] for h in hospitals]
    auc_diff = [abs(f["encrypted_model"]["auc"] - f["twin"]["auc"]) for f in rec["folds"]]
    return {
        "rows": rows,
        "features": features,
        "parties": parties,
        "folds": folds,
        "upload": study.fed.params.upload,
        "iterations": rec["parameters"]["iterations"],
        "degree": rec["parameters"]["degree"],
        "data_s": data_s,
        "key_ceremony_s": t["key_ceremony"],
        "encryption_s": t["encryption"],
        "training_s": t["training"],
        "encryption_training_s": t["encryption"] + t["training"],
        "training_detail_s": rec["training"].get("seconds", {}),
        "refresh_rounds": rec["training"]["refresh_rounds"],
        "workers": rec["training"]["workers"],
        "wall_s": wall,
        "auc_encrypted": rec["summary"]["encrypted_model"]["auc"][0],  # mean over folds, decrypted models
        "auc_twin": rec["summary"]["twin"]["auc"][0],
        "auc_sklearn": rec["summary"]["sklearn"]["auc"][0],
        "max_fold_auc_diff_vs_twin": max(auc_diff),
        "max_weight_diff_vs_twin": rec["weights"]["max_abs_diff_encrypted_twin"],
        "traffic_MB": traffic["total_bytes"] / 1e6,
        "sent_per_hospital_MB": [b / 1e6 for b in sent],
        "received_per_hospital_MB": [b / 1e6 for b in received],
        "max_sent_per_hospital_MB": max(sent) / 1e6,
        "spool_GB": spool_bytes / GB,
        "spool_on_disk": on_disk,
        "peak_tree_rss_GB": mem.peak / GB,  # this process and its workers, summed
        "peak_tree_rss_by_stage_GB": {k: v / GB for k, v in mem.peaks.items()},
        "at_peak_by_process_GB": {k: v / GB for k, v in mem.at_peak.items()},
        "peak_server_rss_by_stage_GB": {k: v / GB for k, v in mem.server_peaks.items()},  # this process alone
        "iteration_detail": rec["training"]["iterations"],
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    singles = single_runs({r["rows"] for r in results if r["features"] == 10})
    cases = sorted((r for r in results + singles if r["parties"] == 3 and r["features"] == 10),
                   key=lambda r: r["rows"])
    rows = [r["rows"] for r in cases]
    wide = [r for r in singles if r["parties"] == 3 and r["features"] != 10]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label in (("encryption_s", "encryption"), ("training_s", "training"),
                       ("encryption_training_s", "encryption + training")):
        left.plot(rows, [r[key] for r in cases], marker="o", label=label)
    for r in wide:  # other shapes (SPINDLE's 32 features), one point each
        left.plot([r["rows"]], [r["encryption_training_s"]], marker="*", ms=11, ls="none",
                  label=f"encryption + training, x {r['features']} features")
    left.axhline(600, color="grey", ls=":", lw=1, label="10 minutes")
    left.set(xscale="log", yscale="log", xlabel="rows (x 10 features, 10 folds, 3 hospitals)", ylabel="seconds",
             title="time")
    left.legend(fontsize=8)
    right.plot(rows, [r["peak_tree_rss_GB"] for r in cases], marker="o", label="peak RSS, whole process tree")
    right.plot(rows, [r["spool_GB"] for r in cases], marker="s", ls="--", label="rows spooled (disk past 512 MiB)")
    for r in wide:
        right.plot([r["rows"]], [r["peak_tree_rss_GB"]], marker="*", ms=11, ls="none",
                   label=f"peak RSS, x {r['features']} features")
    right.axhline(6, color="grey", ls=":", lw=1, label="6 GB")
    right.set(xscale="log", yscale="log", xlabel="rows", ylabel="GB", title="memory")
    right.set_yticks([0.25, 0.5, 1, 2, 4, 6, 10, 20, 40], ["0.25", "0.5", "1", "2", "4", "6", "10", "20", "40"])
    right.minorticks_off()
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def single_runs(series_rows: set[int]) -> list[dict]:
    """The one-case runs (`--rows`, results/training-<rows>x<features>.json) the series lacks: a 1,000,000-row
    case takes 20 minutes or more, so it is run alone and drawn beside the series (each JSON keeps its own
    machine and load)."""
    out = []
    for path in sorted(RESULTS.glob("training-*x*.json")):
        if not re.fullmatch(r"training-\d+x\d+\.json", path.name):  # e.g. a rerun kept under load
            continue
        for case in json.loads(path.read_text())["cases"]:
            if not (case["features"] == 10 and case["rows"] in series_rows):
                out.append(case)
    return out


def in_child(rows: int, parties: int, features: int) -> dict:
    """One case in a fresh process: each case's memory is its own (a process keeps what it freed, and
    SEAL's memory pool never shrinks), as the lead's single --rows runs are."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "case.json"
        subprocess.run([sys.executable, __file__, "--rows", str(rows), "--parties", str(parties), "--features",
                        str(features), "--case-json", str(out)], check=True)
        return json.loads(out.read_text())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scaling", action="store_true", help="vary rows (to 1,000,000) and parties")
    ap.add_argument("--max-rows", type=int, default=None, help="with --scaling: only sizes up to this many rows")
    ap.add_argument("--rows", type=int, default=None, help="one case of this many rows (10 folds, 3 hospitals)")
    ap.add_argument("--features", type=int, default=10, help="features of the --rows case (default 10)")
    ap.add_argument("--parties", type=int, default=3, help="hospitals of the --rows case (default 3)")
    ap.add_argument("--name", default=None, help="results file name for --rows (default training-<rows>x<features>)")
    ap.add_argument("--case-json", default=None, help=argparse.SUPPRESS)  # a child's one case, for --scaling
    ap.add_argument("--upload", choices=["auto", "share-keyed", "public-key"], default=None,
                    help="how hospitals upload (default: the preset's, auto: share-keyed where it sends fewer bytes, "
                         "mpclr.upload_mode); public-key spares the server a key switch per ciphertext where bytes "
                         "do not travel")
    ap.add_argument("--plot", action="store_true", help="only redraw the plot from training-scaling.json")
    args = ap.parse_args(argv)
    if args.plot:
        plot(json.loads((RESULTS / "training-scaling.json").read_text())["cases"], RESULTS / "training-scaling.png")
        return 0
    if args.rows is not None and args.scaling:
        ap.error("--rows runs one case; --scaling runs the series: give one of them")
    if args.upload is not None:  # for this process and, through the environment, a series' children
        os.environ["MPCLR_BENCH_UPLOAD"] = args.upload
    if os.environ.get("MPCLR_BENCH_UPLOAD"):
        import mpclr.params as params

        params.PRESETS["train"] = params.PRESETS["train"].with_(upload=os.environ["MPCLR_BENCH_UPLOAD"])
    if args.case_json:
        Path(args.case_json).write_text(json.dumps(one(args.rows, args.parties, args.features), default=float))
        return 0
    if args.rows is not None:
        cases = [(args.rows, args.parties, args.features)]
    else:
        cases = [(49152, 3, 10)]
        if args.scaling:
            sizes = [n for n in SCALING_ROWS if args.max_rows is None or n <= args.max_rows]
            cases = [(n, 3, 10) for n in sizes] + [(49152, 10, 10)]
    results = []
    for rows, parties, features in cases:
        print(f"== {rows} rows x {features} features, {parties} hospitals", flush=True)
        res = in_child(rows, parties, features) if len(cases) > 1 else one(rows, parties, features)
        results.append(res)
        print(table([res], ["rows", "features", "encryption_s", "training_s", "peak_tree_rss_GB", "spool_GB",
                            "max_sent_per_hospital_MB", "auc_encrypted", "max_fold_auc_diff_vs_twin"]), flush=True)
    print()
    print(table(results, ["rows", "features", "parties", "encryption_s", "training_s", "encryption_training_s",
                          "wall_s", "peak_tree_rss_GB", "spool_GB", "max_sent_per_hospital_MB",
                          "max_fold_auc_diff_vs_twin"]))
    payload = {"cases": results, "target_training_s": 60, "study_training_s": STUDY_TRAINING_S,
               "memory": "peak resident set of the process and its worker processes, summed (/proc, every 0.1 s); "
                         "every case of a series in a fresh process"}
    if args.rows is not None:
        path = write(args.name or f"training-{args.rows}x{args.features}", payload)
    else:
        paper = next(r for r in results if r["rows"] == 49152 and r["parties"] == 3)
        print(f"\npaper scale: encrypted training {paper['training_s']:.1f} s (target 60 s; the study: about "
              f"{STUDY_TRAINING_S} s)")
        path = write("training-scaling" if args.scaling else "training", payload)
        if args.scaling:
            plot(results, RESULTS / "training-scaling.png")
            print(f"plot {RESULTS / 'training-scaling.png'}")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
