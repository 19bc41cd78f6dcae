"""A hospital's upload, public-key against share-keyed (mpclr.protocols.upload): bytes, the hospital's
encryption time and the server's time to take it (unpack, or switch with the upload keys) per ciphertext,
and the fresh noise (coefficient domain) of what the server holds, at one preset with n key holders made
in process (no network).

    python benchmarks/uploads.py                          # train, 3 key holders, 40 ciphertexts
    python benchmarks/uploads.py --preset fast --count 20
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, table, write  # noqa: E402
from mpclr.params import get_preset  # noqa: E402
from mpclr.protocols.cpk import PublicKeyGen  # noqa: E402
from mpclr.protocols.share import SecretKeyShare  # noqa: E402
from mpclr.protocols.upload import UploadEncryptor, UploadKeyGen  # noqa: E402
from mpclr.ring import CommonRandomString, SecretRandom  # noqa: E402
from mpclr.roles.uploads import UploadKeys  # noqa: E402
from mpclr.seal.context import SealContext  # noqa: E402
from mpclr.seal.format import CiphertextData, PlaintextData, pack_ciphertext, unpack_ciphertext  # noqa: E402


def noise_bits(ctx, shares, raw: bytes, values, scale) -> float:
    """log2 max |c0 + sum_i s_i c1 - m| (coefficients): each s_i c1 made apart, as a decryption would."""
    data = CiphertextData.from_bytes(raw)
    level = ctx.check_ciphertext(data)
    ring = ctx.ring(level)
    rows = level + 1
    phase = np.ascontiguousarray(data.data[0])
    for s in shares:
        phase = ring.add(phase, ring.mul(np.ascontiguousarray(data.data[1]), np.ascontiguousarray(s.at_level(rows))))
    pt = ctx.pyfhel().encodeFrac(np.ascontiguousarray(values), scale=scale)
    m = PlaintextData.from_bytes(pt.to_bytes(compr_mode="none"), ctx.n).data[:rows]
    e = ring.to_centered_small(ring.intt(ring.sub(phase, np.ascontiguousarray(m))))
    return math.log2(max(int(np.abs(e).max()), 1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="train")
    ap.add_argument("--holders", type=int, default=3)
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--out", default="uploads-share-keyed")
    args = ap.parse_args(argv)
    ctx = SealContext(get_preset(args.preset))
    rng = SecretRandom()
    shares = [SecretKeyShare.generate(ctx.key_ring, rng) for _ in range(args.holders)]
    crs = CommonRandomString(os.urandom(32))
    cpk = PublicKeyGen(ctx)
    crp = cpk.sample_crp(crs)
    he = ctx.pyfhel()
    he.from_bytes_public_key(cpk.public_key(cpk.aggregate_shares([cpk.gen_share(s, crp, rng) for s in shares]), crp))
    t0 = time.perf_counter()
    gen = UploadKeyGen(ctx)
    z = SecretKeyShare.generate(ctx.key_ring, rng)
    ucrp = gen.sample_crp(crs, "hospital-1")
    key_shares = [gen.gen_share(s, "hospital-1", ucrp, rng, z if i == 0 else None) for i, s in enumerate(shares)]
    keys = UploadKeys(ctx)
    keys.install("hospital-1", gen.key_bytes(gen.aggregate_shares(key_shares), ucrp))
    key_seconds = time.perf_counter() - t0
    enc = UploadEncryptor(ctx.n, ctx.primes[:-1], [ctx.level_parms_id(lv) for lv in range(ctx.top_level + 1)], z.full())
    scale = 2.0**ctx.params.scale_bits
    vectors = [np.random.default_rng(i).uniform(-1, 1, ctx.params.slots) for i in range(args.count)]
    load_before = os.getloadavg()
    rows = []
    for mode in ("public-key", "share-keyed"):
        t = time.perf_counter()
        if mode == "public-key":
            raws = [pack_ciphertext(he.encryptFrac(v, scale=scale).to_bytes(compr_mode="none")) for v in vectors]
        else:
            raws = [enc.encrypt(he, v, scale, 0) for v in vectors]
        hospital = (time.perf_counter() - t) / args.count
        t = time.perf_counter()
        taken = [keys.load(raw, "upload", "hospital-1") for raw in raws]
        server = (time.perf_counter() - t) / args.count
        if mode == "public-key":
            assert all(a == unpack_ciphertext(r) for a, r in zip(taken, raws))
        noise = [noise_bits(ctx, shares, raw, v, scale) for raw, v in zip(taken[:5], vectors[:5])]
        rows.append({"upload": mode, "bytes": len(raws[0]), "hospital_ms": round(1e3 * hospital, 2),
                     "server_ms": round(1e3 * server, 2), "noise_max_bits": round(max(noise), 2)})
    load_after = os.getloadavg()
    print(table(rows, ["upload", "bytes", "hospital_ms", "server_ms", "noise_max_bits"]))
    print(f"upload keys (one hospital's, {args.holders} holders, in process): {key_seconds:.2f} s; "
          f"load {load_before[0]:.1f} -> {load_after[0]:.1f}")
    out = {"command": " ".join(sys.argv), "args": vars(args), "rows": rows, "upload_key_seconds": key_seconds,
           "load_average_before": load_before, "load_average_after": load_after, "machine": machine()}
    print(f"wrote {write(args.out, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
