"""Deployment benchmark: the same study in one process and over a loopback Flower deployment.

    python benchmarks/deployment.py                       # paper scale: 49,152 x 10, 10 folds, 3 hospitals
    python benchmarks/deployment.py --data synthetic:400x4 --folds 5 --ping 10   # a quick look

Parts:
  ping      rounds of a no-op request to every hospital: what a round costs with nothing to compute,
            out of the box (plain flower-supernode, a ClientApp process per message) and tuned
            (mpclr.deploy's hospital process); skipped with --ping 0
  study     the default study (mpclr.deploy.study:encrypted_cv: training, secure evaluation, fold models
            decrypted) in process, then deployed (tuned):
            time per phase, Flower rounds, bytes per hospital, per-round overhead (round wall time minus the
            slowest hospital's own handling time)

Goal (issue 7): the whole deployed study within 2x of the in-process time. Writes
benchmarks/results/deployment.json (or --name) and prints tables. The machine's load average is
recorded: on a shared 2-core machine other jobs move every number here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write  # noqa: E402

import mpclr  # noqa: E402
from mpclr import data as mdata  # noqa: E402
from mpclr.deploy.local import HospitalSpec, LocalDeployment  # noqa: E402
from mpclr.deploy.study import encrypted_cv, encrypted_cv_manifest, fold_aucs, local_hospitals_info  # noqa: E402


def study_arguments(doc: str, data: str, folds: int) -> argparse.ArgumentParser:
    """The deployed default study's options, shared by the benchmarks that run it."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=data)
    ap.add_argument("--hospitals", "--sites", dest="hospitals", type=int, default=3,
                    help="hospitals (default 3); --sites is the older name")
    ap.add_argument("--threshold", type=int, default=0)
    ap.add_argument("--preset", default="train")
    ap.add_argument("--folds", type=int, default=folds)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", default="auto")
    return ap


def hospitals_for(args, folder: Path) -> tuple[list[HospitalSpec], np.ndarray, np.ndarray]:
    """Each hospital's rows in its own CSV file, as at a hospital (the coordinator never reads them)."""
    ds = mdata.load(args.data)
    specs = []
    for i, rows in enumerate(np.array_split(np.arange(len(ds.y)), args.hospitals)):
        path = folder / f"hospital-{i + 1}.csv"
        np.savetxt(path, np.column_stack([ds.X[rows], ds.y[rows]]), delimiter=",", fmt="%.17g")
        specs.append(HospitalSpec(f"hospital-{i + 1}", str(path)))
    return specs, ds.X, ds.y


def ping(mode: str, specs, rounds: int, work: Path) -> dict:
    with LocalDeployment(work / f"ping-{mode}", specs, mode=mode) as dep:
        started = dep.timings["start"]
        res = dep.run_study({"study": "mpclr.deploy.study:ping", "rounds": rounds, "preset": "train",
                             "threshold": 0}, timeout=3600)
    times = sorted(res["study"]["round_seconds"])
    return {"mode": mode, "start_s": started, "rounds": rounds, "median_s": times[len(times) // 2],
            "mean_s": float(np.mean(times)), "min_s": times[0], "max_s": times[-1],
            "ceremony_s": res["seconds"]["key_ceremony"]}


def in_process(args, X, y, audit_dir=None) -> dict:
    """The same study in one process; with `audit_dir`, each hospital appends its audit log there (fsynced
    per request, as a hospital does)."""
    config = {"folds": args.folds, "seed": args.seed, "workers": args.workers}
    splits = np.array_split(np.arange(len(y)), args.hospitals)

    def manifest(parties):  # each hospital gets its rows and counts its rows per fold, as a hospital does
        for p, rows in zip(parties, splits):
            p.load_data(X[rows], y[rows], rows)
        return encrypted_cv_manifest(local_hospitals_info(parties, args.preset, args.threshold or None), config)

    t0 = time.perf_counter()
    fed = mpclr.Federation(hospitals=args.hospitals, preset=args.preset, threshold=args.threshold or None,
                           seed=args.seed,
                           manifest=manifest, audit_dir=audit_dir)
    ceremony = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = encrypted_cv(fed, config)
    study = time.perf_counter() - t1
    traffic = fed.network.traffic
    per_hospital = {}
    for p in fed.hospitals:
        per_hospital[p.name] = {
            "sent": sum(v["bytes"] for (s, r), v in traffic.by_link.items() if s == p.name),
            "received": sum(v["bytes"] for (s, r), v in traffic.by_link.items() if r == p.name),
        }
    fed.close()
    return {"seconds": {"key_ceremony": ceremony, "study": study, "total": time.perf_counter() - t0},
            "study": res, "bytes_per_hospital": per_hospital, "round_trips": fed.network.round_trips}


def main() -> int:
    ap = study_arguments(__doc__, data="synthetic:49152x10", folds=10)
    ap.add_argument("--ping", type=int, default=20, help="rounds of the no-op round test (0: skip)")
    ap.add_argument("--no-study", action="store_true")
    ap.add_argument("--name", default="deployment")
    ap.add_argument("--studies", help="also write both runs' full study results (per pass, per round) to this file")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mpclr-deploy-bench-"))
    out: dict = {"args": vars(args)}
    try:
        specs, X, y = hospitals_for(args, work)
        if args.ping:
            out["ping"] = [ping(mode, specs, args.ping, work) for mode in ("flower", "tuned")]
            print("\nA round with nothing to compute (3 hospitals, TLS + SuperNode authentication):")
            print(table(out["ping"], ["mode", "rounds", "median_s", "mean_s", "min_s", "max_s", "start_s",
                                      "ceremony_s"]))
        if not args.no_study:
            local = in_process(args, X, y)
            with LocalDeployment(work / "study", specs) as dep:
                cfg = {"preset": args.preset, "threshold": args.threshold, "folds": args.folds, "seed": args.seed,
                       "workers": args.workers, "round-timeout": 3600.0}
                deployed = dep.run_study(cfg, timeout=6 * 3600)
            if args.studies:
                Path(args.studies).write_text(json.dumps({"in_process": local["study"], "deployed": deployed},
                                                         default=float))
            # each hospital draws its folds from its own secret randomness: the two runs' folds differ, so
            # their AUCs are compared as means (per fold, each secure AUC against its models' clear one)
            a, b = fold_aucs(local["study"], X, y), fold_aucs(deployed["study"], X, y)
            out["in_process"] = {k: v for k, v in local.items() if k != "study"}
            out["in_process"]["study_seconds"] = local["study"]["seconds"]
            out["deployed"] = {k: v for k, v in deployed.items() if k not in ("study", "traffic")}
            out["deployed"]["study_seconds"] = deployed["study"]["seconds"]
            out["auc"] = {"in_process": a, "deployed": b, "mean_difference": abs(np.mean(a) - np.mean(b))}
            secure = [r["study"].get("secure_evaluation") for r in (local, deployed)]
            if all(secure):
                sa, sb = ([f["auc"] for f in ev["folds"]] for ev in secure)
                out["secure_auc"] = {"in_process": sa, "deployed": sb,
                                     "max_secure_minus_clear": max(abs(u - v) for u, v in zip(sa + sb, a + b)),
                                     "revealed_values": [ev["revealed_values"] for ev in secure]}
            phases = sorted(set(local["study"]["seconds"]) | set(deployed["study"]["seconds"]),
                            key=list(local["study"]["seconds"]).index)
            rows = [{"phase": "key ceremony", "in_process_s": local["seconds"]["key_ceremony"],
                     "deployed_s": deployed["seconds"]["key_ceremony"]}]
            rows += [{"phase": p, "in_process_s": local["study"]["seconds"].get(p),
                      "deployed_s": deployed["study"]["seconds"].get(p)} for p in phases]
            rows.append({"phase": "whole study", "in_process_s": local["seconds"]["total"],
                         "deployed_s": deployed["seconds"]["total"]})
            for r in rows:
                if r["in_process_s"] and r["deployed_s"]:
                    r["ratio"] = r["deployed_s"] / r["in_process_s"]
            out["phases"] = rows
            net = deployed["network"]
            print(f"\nThe study ({args.data}, {args.folds} folds, {args.hospitals} hospitals, preset {args.preset}):")
            print(table(rows, ["phase", "in_process_s", "deployed_s", "ratio"]))
            print(f"\n{net['rounds']} Flower rounds; per-round overhead median {net['overhead_median']:.3f} s, "
                  f"mean {net['overhead_mean']:.3f} s, total {net['overhead_total']:.1f} s; "
                  f"mean AUC in process {np.mean(out['auc']['in_process']):.4f}, deployed "
                  f"{np.mean(out['auc']['deployed']):.4f} (each on its own folds)")
            steps = [{"step": k, **v, "MB_to_hospitals": v.get("bytes_out", 0) / 1e6,
                      "MB_from_hospitals": v.get("bytes_in", 0) / 1e6} for k, v in net["by_step"].items()]
            print(table(steps, ["step", "rounds", "seconds", "overhead", "MB_to_hospitals", "MB_from_hospitals"]))
            hospitals = [{"hospital": s, "sent_MB": v["sent"] / 1e6, "received_MB": v["received"] / 1e6,
                          "in_process_sent_MB": local["bytes_per_hospital"][s]["sent"] / 1e6}
                         for s, v in deployed["bytes_per_hospital"].items()]
            print(table(hospitals, ["hospital", "sent_MB", "received_MB", "in_process_sent_MB"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    path = write(args.name, json.loads(json.dumps(out, default=float)))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
