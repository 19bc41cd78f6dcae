"""Protocol benchmark: time per party and aggregation time of every protocol step, and bytes per message.

    python benchmarks/protocols.py [--quick]

Cases: n = 3 and n = 10 parties at both presets (fast N=8192, deep N=16384), one process simulating
every party (parties run in two threads, as two cores allow). Targets (issue 3): the whole key ceremony
(CRS, public key, relinearization key, 13 rotation keys) for n = 10 at N=16384 in at most 20 s; a
partial decryption at the last prime in at most 10 ms per party at N=16384. Writes
benchmarks/results/protocols.json and prints a table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write  # noqa: E402

import mpclr  # noqa: E402
from mpclr.protocols.decryption import ThresholdDecryption  # noqa: E402
from mpclr.protocols.refresh import RefreshProtocol  # noqa: E402
from mpclr.protocols.share import SecretKeyShare  # noqa: E402
from mpclr.ring import SecretRandom  # noqa: E402

ROTATIONS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, -1]  # 13 keys, as the OpenFHE comparison


def per_party(fed, step: str) -> float | None:
    times = [
        p.handler_seconds.get(step, 0.0) / max(p.handler_calls.get(step, 0), 1)
        for p in fed.hospitals
        if p.handler_calls.get(step)
    ]
    return statistics.mean(times) if times else None


def bytes_of(traffic: dict, step: str) -> dict:
    v = traffic["by_type"].get(step)
    return {"messages": v["messages"], "bytes": v["bytes"]} if v else {"messages": 0, "bytes": 0}


def share_decrypt_ms(ctx, repeats: int = 30) -> float:
    """One party's partial decryption at the last prime, measured directly (median of repeats)."""
    rng = SecretRandom()
    sk = SecretKeyShare.generate(ctx.key_ring, rng)
    dec = ThresholdDecryption(ctx)
    c1 = rng.uniform_poly(ctx.ring(0))
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        dec.gen_share(sk, c1, 0, rng)
        out.append(time.perf_counter() - t0)
    return statistics.median(out) * 1000


def run_case(preset: str, n: int, threshold: int | None) -> dict:
    t0 = time.perf_counter()
    fed = mpclr.Federation(manifest="exploration", hospitals=n, preset=preset, threshold=threshold)
    ceremony = time.perf_counter() - t0
    t0 = time.perf_counter()
    fed.generate_rotation_keys(ROTATIONS)
    rotations = time.perf_counter() - t0
    traffic_keys = fed.traffic()
    s = fed.server
    steps = []
    for step, agg in [
        ("crs.commit", None),
        ("crs.reveal", None),
        ("crs.seed", None),
        ("cpk.commit", None),
        ("cpk.reveal", "cpk.aggregate"),
        ("rlk.round1", "rlk.round1.aggregate"),
        ("rlk.check", None),
        ("rlk.round2", "rlk.round2.aggregate"),
        ("shamir.deal", None),
        ("shamir.receive", None),
        ("gkg.share", "gkg.aggregate"),
    ]:
        b = bytes_of(traffic_keys, step)
        if not b["messages"]:
            continue
        calls = fed.hospitals[0].handler_calls.get(step, 1)
        steps.append(
            {
                "step": step,
                "per_party_ms": (per_party(fed, step) or 0) * 1000,
                "aggregate_ms": s.step_seconds.get(agg, 0.0) * 1000 / calls if agg else None,
                "messages": b["messages"],
                "MB_total": b["bytes"] / 1e6,
                "MB_per_party_per_call": b["bytes"] / 1e6 / n / calls,
            }
        )
    # evaluation-time protocols, on a real ciphertext
    x = np.random.default_rng(0).uniform(-1, 1, fed.params.slots)
    a = fed.hospitals[0].encrypt(x)
    fed.network.traffic.reset()
    for p in fed.hospitals:
        p.handler_seconds.clear()
        p.handler_calls.clear()
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        out = fed.decrypt(a)
    decrypt_wall = (time.perf_counter() - t0) / reps
    err = float(np.abs(out - x).max())
    t0 = time.perf_counter()
    for _ in range(reps):
        r = fed.refresh(a, bound_bits=4)
    refresh_wall = (time.perf_counter() - t0) / reps
    refresh_err = float(np.abs(fed.decrypt(r) - x).max())
    t0 = time.perf_counter()
    got = fed.receive(a)
    keyswitch_wall = time.perf_counter() - t0
    tr = fed.traffic()
    r_ = fed.researcher
    for step, agg, owner, calls in [
        ("decrypt.share", "decrypt.combine", r_, reps + 1),
        ("refresh.share", "refresh.combine", s, reps),
        ("pcks.share", "pcks.combine", r_, 1),
    ]:
        b = bytes_of(tr, step)
        steps.append(
            {
                "step": step,
                "per_party_ms": (per_party(fed, step) or 0) * 1000,
                "aggregate_ms": owner.step_seconds.get(agg, 0.0) * 1000 / calls,
                "messages": b["messages"],
                "MB_total": b["bytes"] / 1e6,
                "MB_per_party_per_call": b["bytes"] / 1e6 / n / calls,
            }
        )
    result = {
        "preset": preset,
        "n": n,
        "threshold": fed.threshold,
        "N": fed.params.n,
        "key_ceremony_s": ceremony,
        "rotation_keys_13_s": rotations,
        "ceremony_with_rotations_s": ceremony + rotations,
        "key_bytes_MB": traffic_keys["total_bytes"] / 1e6,
        "decrypt_wall_ms": decrypt_wall * 1000,
        "decrypt_max_error": err,
        "partial_decryption_ms_direct": share_decrypt_ms(fed.ctx),
        "refresh_wall_ms": refresh_wall * 1000,
        "refresh_then_decrypt_max_error": refresh_err,
        "refresh_level": RefreshProtocol(fed.ctx).min_level(4, n),
        "keyswitch_wall_ms": keyswitch_wall * 1000,
        "keyswitch_max_error": float(np.abs(got - x).max()),
        "steps": steps,
    }
    fed.close()
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="n = 3 at the fast preset only")
    args = ap.parse_args(argv)
    cases = (
        [("fast", 3, None)]
        if args.quick
        else [("fast", 3, None), ("fast", 10, None), ("deep", 3, None), ("deep", 10, None), ("deep", 10, 7)]
    )
    results = []
    for preset, n, t in cases:
        print(f"== {preset}, n = {n}, t = {t or n}", flush=True)
        res = run_case(preset, n, t)
        results.append(res)
        print(
            table(
                res["steps"], ["step", "per_party_ms", "aggregate_ms", "messages", "MB_total", "MB_per_party_per_call"]
            )
        )
        print(
            f"key ceremony {res['key_ceremony_s']:.2f} s + 13 rotation keys {res['rotation_keys_13_s']:.2f} s "
            f"= {res['ceremony_with_rotations_s']:.2f} s; {res['key_bytes_MB']:.0f} MB"
        )
        print(
            f"partial decryption at q_0: {res['partial_decryption_ms_direct']:.2f} ms per party; "
            f"decrypt (all parties, wall) {res['decrypt_wall_ms']:.1f} ms, error {res['decrypt_max_error']:.1e}; "
            f"refresh {res['refresh_wall_ms']:.1f} ms (level {res['refresh_level']}); "
            f"key switch {res['keyswitch_wall_ms']:.1f} ms\n",
            flush=True,
        )
    summary = [
        {
            k: r[k]
            for k in (
                "preset",
                "n",
                "threshold",
                "N",
                "key_ceremony_s",
                "rotation_keys_13_s",
                "ceremony_with_rotations_s",
                "partial_decryption_ms_direct",
                "decrypt_wall_ms",
                "refresh_wall_ms",
                "keyswitch_wall_ms",
            )
        }
        for r in results
    ]
    print(table(summary, list(summary[0])))
    targets = {"ceremony_n10_N16384_13rot_s": {"target": 20.0}, "partial_decryption_N16384_ms": {"target": 10.0}}
    for r in results:
        if r["N"] == 16384 and r["n"] == 10 and r["threshold"] == 10:
            targets["ceremony_n10_N16384_13rot_s"]["measured"] = r["ceremony_with_rotations_s"]
        if r["N"] == 16384:
            targets["partial_decryption_N16384_ms"]["measured"] = r["partial_decryption_ms_direct"]
    # OpenFHE 1.6.1, measured side by side with this benchmark at low load (shared/reference/anchors.md): joint
    # key generation n = 10, N = 2^14, public key + 2-round relinearization + 13 rotation keys. An earlier 18.8 s
    # was taken under heavy load and is not an anchor.
    anchors = {
        "openfhe_keygen_n10_N2^14_matched_Q378_9digits_s": {"1_thread": 11.1, "2_threads": 7.4},
        "openfhe_keygen_n10_N2^14_own_depth6_dnum4_s": {"1_thread": 4.1, "2_threads": 2.7},
        "openfhe_partial_decryption_N2^14_one_prime_ms": "7.7-8.1 (1 thread)",
    }
    path = write("protocols", {"cases": results, "targets": targets, "anchors": anchors})
    print(f"\ntargets: {targets}\nwritten {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
