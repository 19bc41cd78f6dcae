"""Where a hospital's bytes go: the deployment's default study (mpclr.deploy.study:encrypted_cv) in one process,
every request a hospital answered taken from its own audit log (step, label, bytes in and out), grouped by
message type and purpose (the label without its round number) and by phase.

    python benchmarks/bytes.py                                   # the small default: breast cancer, 5 folds
    python benchmarks/bytes.py --data synthetic:49152x10 --folds 10 --name bytes-paper   # paper scale
    python benchmarks/bytes.py --plan --data synthetic:49152x10 --folds 10 --name bytes-paper-plan   # no run

A deployment sends the same protocol bytes (Flower adds its framing: benchmarks/deployment.py compares), so
this is the per-message-type breakdown behind `python -m mpclr.deploy local`'s "sent ... MB per hospital".
Also recorded: the Flower rounds the study would take (the rounds the hospitals answered, with the workers'
refreshes of one cycle coalesced as over Flower), seconds per phase, the load average, and the sizes one
refresh share's parts have on the wire (rounded below their smudging: mpclr.ring.rounding) and one uploaded
ciphertext has at the preset's prime widths. Writes
benchmarks/results/<name>.json.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write  # noqa: E402
from deployment import study_arguments  # noqa: E402

import mpclr  # noqa: E402
from mpclr import data as mdata  # noqa: E402
from mpclr.deploy.study import encrypted_cv, encrypted_cv_manifest, local_hospitals_info  # noqa: E402
from mpclr.params import get_preset  # noqa: E402
from mpclr.seal.context import seal_context  # noqa: E402
from mpclr.upload_mode import for_study, upload_key_bytes  # noqa: E402

PHASES = {  # message type -> phase (labels refine refresh.share, decrypt.share and pcks.share below)
    "crs.commit": "key ceremony", "crs.reveal": "key ceremony", "crs.seed": "key ceremony",
    "cpk.commit": "key ceremony", "cpk.reveal": "key ceremony", "keys.install": "key ceremony",
    "rlk.round1": "key ceremony", "rlk.check": "key ceremony", "rlk.round2": "key ceremony",
    "upk.share": "key ceremony", "shamir.deal": "key ceremony", "shamir.receive": "key ceremony",
    "lr.folds": "data", "lr.aggregate": "data", "lr.encrypt": "data", "lr.encrypt_eval": "evaluation",
    "gkg.share": "evaluation", "researcher.key": "evaluation", "pcks.share": "evaluation",
}


def purpose(step: str, label: str) -> str:
    """The label without the round's number: 'training/update#3' -> 'training/update'."""
    label = re.sub(r"#\d+$", "", label)
    label = re.sub(r": counts \d+$", "", label)
    label = re.sub(r"^refinement \d+$", "refinement", label)
    return label


def phase(step: str, label: str) -> str:
    if step == "refresh.share":
        return "training" if label.startswith("training") else "evaluation"
    if step == "decrypt.share":
        return "results" if label.startswith("fold models") else "data"
    return PHASES.get(step, "other")


def share_sizes(preset: str, parties: int, bound_bits: int = 8) -> dict:
    """Bytes of one refresh share's parts as sent (rounded: mpclr.ring.rounding) and of one ciphertext, at the
    primes' widths (mpclr.ring.packing)."""
    from mpclr.protocols.refresh import RefreshProtocol
    from mpclr.seal.context import SealContext

    ctx = SealContext(get_preset(preset))
    proto = RefreshProtocol(ctx)
    level = proto.min_level(bound_bits, parties)
    bits = [q.bit_length() for q in ctx.primes]
    n = ctx.params.n

    def poly(lv):
        return sum(math.ceil(n * b / 8) for b in bits[: lv + 1])

    def share(lv):  # a refresh share on the wire: rounded to its kept bits (mpclr.ring.rounding), or exact
        keep = proto.keep(lv)
        return n * keep // 8 if keep < math.prod(ctx.primes[: lv + 1]).bit_length() else poly(lv)

    return {"n": n, "prime_bits": bits, "refresh_level": level, "top_level": ctx.top_level,
            "refresh_keep_bits": [proto.keep(level), proto.keep(ctx.top_level)],
            "refresh_h0_bytes": share(level), "refresh_h1_bytes": share(ctx.top_level),
            "ciphertext_top_bytes": 2 * poly(ctx.top_level), "c1_at_refresh_level_bytes": poly(level)}


def plan(args) -> dict:
    """The bytes a hospital would send, without running the study: ciphertext counts from the study's manifest
    (mpclr.manifest, exact for refreshes, decryptions, key switches and rotation keys), the hospital's
    uploads from the layouts (its rows: a contiguous 1/n of them; folds dealt at random), sizes from the
    primes' widths. Refresh rounds here output one ciphertext per input (training and comparisons do, but the
    training's last round where a group unpacks: one per feature); the
    key ceremony's messages are taken as measured on the small study (they do not depend on the data), but
    the upload keys' (counted here). --upload: the preset's "auto" resolved by the study's plan (mpclr.upload_mode),
    or the mode given."""
    from mpclr.deploy.study import HospitalsInfo
    from mpclr.evaluation.layout import EvalLayout
    from mpclr.training.layout import Layout

    ds = mdata.load(args.data)
    n, d = ds.X.shape
    params = get_preset(args.preset).with_(upload=args.upload)
    rng = np.random.default_rng(args.seed)
    fold_of_row = rng.permutation(np.arange(n) % args.folds)
    names = [f"hospital-{i + 1}" for i in range(args.hospitals)]
    splits = np.array_split(np.arange(n), args.hospitals)
    info = HospitalsInfo(names, [len(r) for r in splits], d, params, args.threshold or args.hospitals, True,
                         lambda k: np.bincount(fold_of_row, minlength=k).tolist())
    manifest = encrypted_cv_manifest(info, {"folds": args.folds, "workers": args.workers})
    params = for_study(params, manifest)  # "auto": the mode the plan chose
    sz = share_sizes(args.preset, args.hospitals)
    bits = sz["prime_bits"]

    def poly(rows):
        return sum(math.ceil(params.n * b / 8) for b in rows)

    level0, top = poly(bits[:1]), poly(bits[: sz["top_level"] + 1])
    # an upload: two polynomials under the public key; share-keyed, one and a 32-byte seed (mpclr.protocols.upload)
    halves = 1 if params.upload == "share-keyed" else 2
    key_level = sz["refresh_level"]  # the evaluation's rotation keys: digits 0..L on q_0..q_L and P
    gkg_key = (key_level + 1) * poly(bits[: key_level + 1] + bits[-1:])
    gkg_training = (sz["top_level"] + 1) * poly(bits)
    sizes = np.bincount(fold_of_row, minlength=args.folds)
    layout = Layout(params.slots, n, args.folds, sizes, d + 1)
    training_keys = len({s for g in layout.groups for s in layout.segment_steps(g)})
    out = {}
    for b in manifest.budgets:
        key = f"{b.step} {b.label}".strip()
        if b.step == "refresh.share":
            out[key] = b.ciphertexts * (sz["refresh_h0_bytes"] + sz["refresh_h1_bytes"])
            if b.label == "training/update":  # the last round of a group that unpacks: one output per feature
                out[key] += sz["refresh_h1_bytes"] * sum(g.final_chunks(d + 1) - g.chunks(d + 1) for g in layout.groups)
        elif b.step == "decrypt.share":  # the pooled aggregate is decrypted at its own (top) level
            out[key] = b.ciphertexts * (top if b.label.startswith("pooled") else level0)
        elif b.step == "pcks.share":
            out[key] = b.ciphertexts * 2 * level0
        elif b.step == "gkg.share":  # the training's keys (a packed layout) for every level
            out[key] = (b.ciphertexts - training_keys) * gkg_key + training_keys * gkg_training
    # the hospital with the most: its data blocks at the top level, its constant part one level above the
    # refresh level, its evaluation rows at the top and their labels where they are first used
    constant = sum(g.chunks(d + 1) for g in layout.groups) * halves * poly(bits[: key_level + 2])
    ev = EvalLayout(params.slots, fold_of_row, args.folds, d + 1)
    label = halves * poly(bits[: (3 if any(ev.shared(b) for b in range(len(ev.blocks))) else 2) + 1])
    uploads = [(constant + halves * top * sum(len(layout.blocks_with_rows(g, rows)) * g.chunks(d + 1)
                                              for g in layout.groups),
                sum((len(ev.columns(b, d)) - 1) * halves * top + label for b in set(ev.place(rows)[0].tolist())))
               for rows in splits]
    out["lr.encrypt"], out["lr.encrypt_eval"] = max(uploads, key=sum)
    if params.upload == "share-keyed":  # every key holder's upload keys (mpclr.upload_mode counts them)
        out["upk.share"] = upload_key_bytes(seal_context(params), args.hospitals)
    small = Path(__file__).resolve().parent / "results" / "bytes-small.json"
    if small.exists():  # the key ceremony and the aggregate: the same for any data
        import json

        for row in json.loads(small.read_text())["by_message"]:
            if row["message"].split()[0] in ("cpk.reveal", "rlk.round1", "rlk.round2", "lr.aggregate"):
                out[row["message"]] = row["sent"]
    rows_out = [{"message": k, "sent_MB": v / 1e6} for k, v in sorted(out.items(), key=lambda kv: -kv[1])]
    return {"args": vars(args), "estimate": True, "upload": params.upload, "by_message": rows_out,
            "hospital_sent_MB": sum(out.values()) / 1e6,
            "manifest": manifest.to_json(), "sizes": sz}


def run(args) -> dict:
    ds = mdata.load(args.data)
    X, y = ds.X, ds.y
    splits = np.array_split(np.arange(len(y)), args.hospitals)
    config = {"folds": args.folds, "seed": args.seed, "workers": args.workers}

    preset = get_preset(args.preset).with_(upload=args.upload)

    def manifest(parties):  # each hospital holds its rows and counts its rows per fold, as a hospital does
        for p, rows in zip(parties, splits):
            p.load_data(X[rows], y[rows], rows)
        return encrypted_cv_manifest(local_hospitals_info(parties, preset, args.threshold or None), config)

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    fed = mpclr.Federation(hospitals=args.hospitals, preset=preset, threshold=args.threshold or None,
                           seed=args.seed,
                           manifest=manifest)
    ceremony = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = encrypted_cv(fed, config)
    study = time.perf_counter() - t1
    load_after = os.getloadavg()
    # every request each hospital answered, from its own audit log
    views, per_hospital = {}, {}
    for p in fed.hospitals:
        sent = received = 0
        by_type: dict = defaultdict(lambda: {"requests": 0, "rounds": 0, "sent": 0, "received": 0})
        by_phase: dict = defaultdict(lambda: {"sent": 0, "received": 0})
        for rec in p.policy.log.records():
            step, label = rec["step"], rec.get("label", "")
            key = f"{step} {purpose(step, label)}".strip()
            sent += rec["bytes_out"]
            received += rec["bytes_in"]
            b = by_type[key]
            b["requests"] += 1
            b["sent"] += rec["bytes_out"]
            b["received"] += rec["bytes_in"]
            b["ciphertexts"] = b.get("ciphertexts", 0) + int(rec.get("ciphertexts") or 0)
            ph = by_phase[phase(step, label)]
            ph["sent"] += rec["bytes_out"]
            ph["received"] += rec["bytes_in"]
        per_hospital[p.name] = {"sent": sent, "received": received}
        views[p.name] = (by_type, by_phase)
    # the view of the hospital that sent the most (hospitals differ by the data blocks their rows fall in)
    heaviest = max(per_hospital, key=lambda name: per_hospital[name]["sent"])
    by_type, by_phase = views[heaviest]
    # seconds: each hospital's own handling time per step (its handlers), the server's timed steps
    upload = fed.params.upload
    hospital_seconds = {p.name: {k: round(v, 3) for k, v in sorted(p.handler_seconds.items())} for p in fed.hospitals}
    server_seconds = {k: round(v, 3) for k, v in sorted(fed.server.timings.items())}
    fed.close()
    rows = [{"message": k, **v, "sent_MB": v["sent"] / 1e6, "received_MB": v["received"] / 1e6}
            for k, v in sorted(by_type.items(), key=lambda kv: -kv[1]["sent"])]
    secure = res.get("secure_evaluation") or {}
    return {
        "args": vars(args),
        "upload": upload,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "seconds": {"key_ceremony": ceremony, "study": study, "total": ceremony + study, **res["seconds"]},
        "bytes_per_hospital": per_hospital,
        "by_message_of": heaviest,
        "hospital_sent_MB": max(v["sent"] for v in per_hospital.values()) / 1e6,
        "hospital_received_MB": max(v["received"] for v in per_hospital.values()) / 1e6,
        "requests_per_hospital": sum(v["requests"] for v in by_type.values()),
        "by_message": rows,
        "by_phase": {k: {**v, "sent_MB": v["sent"] / 1e6, "received_MB": v["received"] / 1e6}
                     for k, v in by_phase.items()},
        "sizes": share_sizes(args.preset, args.hospitals),
        "hospital_seconds": hospital_seconds,
        "server_seconds": server_seconds,
        "training_refreshes": res.get("refreshes"),
        "evaluation": {k: secure.get(k) for k in ("method", "summary", "checks") if k in secure},
        "secure_auc": [f["auc"] for f in secure.get("folds", [])],
    }


def main() -> int:
    ap = study_arguments(__doc__, data="breast_cancer", folds=5)
    ap.add_argument("--name", default="bytes-small")
    ap.add_argument("--plan", action="store_true", help="estimate from the manifest and the layouts; run nothing")
    ap.add_argument("--upload", choices=["auto", "share-keyed", "public-key"], default="auto",
                    help="how hospitals upload (mpclr.params.Params.upload; auto: resolved by the study's plan)")
    args = ap.parse_args()
    if args.plan:
        out = plan(args)
        print(table(out["by_message"], ["message", "sent_MB"]))
        print(f"\nper hospital (estimate, {out['upload']} uploads): sent {out['hospital_sent_MB']:.1f} MB")
        print(f"wrote {write(args.name, out)}")
        return 0
    out = run(args)
    print(table(out["by_message"], ["message", "requests", "ciphertexts", "sent_MB", "received_MB"]))
    print()
    print(table([{"phase": k, **v} for k, v in out["by_phase"].items()], ["phase", "sent_MB", "received_MB"]))
    print(f"\nper hospital ({out['upload']} uploads): sent {out['hospital_sent_MB']:.1f} MB, received "
          f"{out['hospital_received_MB']:.1f} MB, "
          f"{out['requests_per_hospital']} requests; seconds: "
          + ", ".join(f"{k} {v:.1f}" for k, v in out["seconds"].items())
          + f"; load {out['load_average_before'][0]:.1f} -> {out['load_average_after'][0]:.1f}")
    first = next(iter(out["hospital_seconds"].values()))
    print("a hospital's handling seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in first.items() if v >= 0.05))
    print("server: " + ", ".join(f"{k} {v:.1f}" for k, v in out["server_seconds"].items() if v >= 0.05))
    print(f"wrote {write(args.name, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
