"""Keystore encryption at rest: what it costs a hospital.

    python benchmarks/keystore.py                 # preset train, 3 hospitals (about a minute)

A hospital answers every message from its keystore: it loads the hospital's Hospital (identity, key
share, threshold share, protocol secrets), answers, saves it again, and keeps the reply (a secret file)
for a retried request (mpclr.deploy.hospital.HospitalRuntime._protocol). With encryption at rest every secret
file read or written goes through AES-256-GCM, and the key is derived (scrypt) once per process.

Measures: scrypt (once per process and keystore), AES-GCM seal and open per MB, and the keystore part
of one message at a real hospital state (load + save of the Hospital, and a reply of 1 and 8 MB
written and read back), plain and encrypted. Writes benchmarks/results/keystore.json.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write  # noqa: E402

import mpclr  # noqa: E402
from mpclr import keystore_crypto as kc  # noqa: E402
from mpclr.keystore import Keystore  # noqa: E402


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="train")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--name", default="keystore")
    args = ap.parse_args()

    # scrypt: a new salt each time, so nothing is cached
    scrypt = []
    for _ in range(3):
        t0 = time.perf_counter()
        kc._derive(b"a passphrase for the benchmark", secrets.token_bytes(16), **kc.SCRYPT)
        scrypt.append(time.perf_counter() - t0)

    work = Path(tempfile.mkdtemp(prefix="mpclr-keystore-bench-"))
    key = kc.KeystoreKey.open(work / "enc", "a passphrase for the benchmark", create=True)
    blob = os.urandom(8 << 20)
    sealed = key.seal(work / "enc" / "secret-x.bin", blob)
    seal_s = best(lambda: key.seal(work / "enc" / "secret-x.bin", blob), args.repeat) / 8
    open_s = best(lambda: key.unseal(work / "enc" / "secret-x.bin", sealed), args.repeat) / 8

    fed = mpclr.Federation(hospitals=3, threshold=2, preset=args.preset)
    dp = fed.hospitals[0]
    rows = []
    for label, store in (("plain", Keystore(work / "plain", create=True)),
                         ("encrypted", Keystore(work / "enc" / "session", create=True, key=key))):
        dp.save(store)
        secret_bytes = sum(p.stat().st_size for p in store.path.iterdir() if p.name.startswith("secret-"))
        row = {"keystore": label, "secret MB": round(secret_bytes / 1e6, 2),
               "load+save ms": 1000 * best(lambda s=store: (dp.load(s), dp.save(s)), args.repeat)}
        for mb in (1, 8):
            reply = os.urandom(mb << 20)
            row[f"reply {mb} MB ms"] = 1000 * best(lambda s=store, r=reply: (s.put_secret("reply-x", r),
                                                                            s.get_secret("reply-x")), args.repeat)
        rows.append(row)
    fed.close()
    plain, enc = rows
    per_message = enc["load+save ms"] - plain["load+save ms"]
    per_mb_reply = (enc["reply 8 MB ms"] - plain["reply 8 MB ms"]) / 8
    res = {
        "scrypt": {**kc.SCRYPT, "seconds": scrypt},
        "aes_gcm_ms_per_MB": {"seal": 1000 * seal_s, "open": 1000 * open_s},
        "preset": args.preset,
        "per_message": rows,
        "overhead_ms": {"state_load_save": per_message, "reply_per_MB_write_read": per_mb_reply},
    }
    print(f"scrypt n={kc.SCRYPT['n']} r={kc.SCRYPT['r']} p={kc.SCRYPT['p']}: "
          + ", ".join(f"{s:.2f}" for s in scrypt) + " s (once per process and keystore)")
    print(f"AES-256-GCM: seal {1000 * seal_s:.2f} ms/MB, open {1000 * open_s:.2f} ms/MB")
    print(table(rows, list(rows[0])))
    print(f"added per message: {per_message:.1f} ms for the hospital's state, {per_mb_reply:.2f} ms per MB of reply "
          "(written once, read back only for a retried request)")
    print(write(args.name, res))


if __name__ == "__main__":
    main()
