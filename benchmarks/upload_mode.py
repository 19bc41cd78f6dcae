"""What the upload mode costs one study in one process, where no byte travels: an in-process Federation (3
hospitals, an exploration manifest) makes its keys, then each hospital uploads `--uploads` vectors (about
what breast cancer's lr.aggregate, lr.encrypt and lr.encrypt_eval send), encrypted in its thread and taken
by the server, switched with the upload keys when share-keyed. Wall and this process's CPU seconds, the
modes alternating, `--reps` times. Why "auto" (mpclr.upload_mode) picks public-key for small studies.

    python benchmarks/upload_mode.py                 # train, 25 uploads per hospital, twice
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write  # noqa: E402

import mpclr  # noqa: E402
from mpclr.params import get_preset  # noqa: E402


def one(preset: str, mode: str, hospitals: int, uploads: int) -> dict:
    load = os.getloadavg()[0]
    t, c = time.perf_counter(), time.process_time()
    fed = mpclr.Federation(hospitals=hospitals, preset=get_preset(preset).with_(upload=mode), manifest="exploration")
    ceremony, ceremony_cpu = time.perf_counter() - t, time.process_time() - c
    x = np.random.default_rng(0).uniform(-1, 1, 100)
    t, c = time.perf_counter(), time.process_time()
    for h in fed.hospitals:
        for raw in h.encrypt_many([x] * uploads, processes=False):
            fed.server.uploads.load(raw, "upload", h.name)
    up, up_cpu = time.perf_counter() - t, time.process_time() - c
    fed.close()
    return {"mode": mode, "ceremony_s": round(ceremony, 2), "ceremony_cpu_s": round(ceremony_cpu, 2),
            "uploads_s": round(up, 2), "uploads_cpu_s": round(up_cpu, 2), "load": round(load, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="train")
    ap.add_argument("--hospitals", type=int, default=3)
    ap.add_argument("--uploads", type=int, default=25, help="uploads per hospital")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--name", default="uploadmode-per-study")
    args = ap.parse_args()
    rows = [one(args.preset, mode, args.hospitals, args.uploads)
            for _ in range(args.reps) for mode in ("share-keyed", "public-key")]
    print(table(rows, list(rows[0])))
    print(f"wrote {write(args.name, {'args': vars(args), 'rows': rows})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
