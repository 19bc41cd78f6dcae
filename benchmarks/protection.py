"""What a hospital's protections cost (issue 13), measured inside one run of the deployed default study.

    python benchmarks/protection.py                          # paper scale: 49,152 x 10, 10 folds, 3 hospitals
    python benchmarks/protection.py --data synthetic:2000x5 --folds 5     # a quick look

The study of `python -m mpclr.deploy` (mpclr.deploy.study:encrypted_cv: training, secure evaluation, fold
models decrypted), run in one process with every hospital's audit log on disk, as at a hospital. Timers wrap
the code issue 13 added to a hospital's path (a call's time excludes the timed calls inside it):
  aead         ChaCha20-Poly1305 of share-carrying envelopes (both ends; plain envelopes keep their MAC)
  c1_checks    RequestGuard.admit: the uniformity test and replay memory of every c1 a hospital answers
  key_checks   the installed public key against the signed shares, the relinearization round-one check
  policy       the manifest gate: Policy.admit / settle / audit (the ledger), without the log's writes
  audit_log    AuditLog.write: one JSON line per request, written and fsynced
Every hospital's handling runs in this one process, one after another, so the summed seconds are what all
three hospitals spend together; deployed, each spends its own share in parallel, so the fraction of the
deployed study's wall time is at most this fraction. Writes benchmarks/results/protection.json.
"""

from __future__ import annotations

import functools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write  # noqa: E402
from deployment import hospitals_for, in_process, study_arguments  # noqa: E402

from mpclr import wire  # noqa: E402
from mpclr.roles import guard, hospital, policy, researcher  # noqa: E402

SECONDS: dict[str, float] = {}
CALLS: dict[str, int] = {}
_stack: list[list[float]] = []  # per open timed call: [time spent in timed calls nested in it]


def _timed(category: str, fn):
    """Time `fn` under `category`, excluding what timed calls inside it spend (counted under theirs)."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        _stack.append([0.0])
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            spent = time.perf_counter() - t0
            (nested,) = _stack.pop()
            SECONDS[category] = SECONDS.get(category, 0.0) + spent - nested
            CALLS[category] = CALLS.get(category, 0) + 1
            if _stack:
                _stack[-1][0] += spent

    return wrapper


class _TimedAEAD:
    """wire's ChaCha20Poly1305, with encrypt and decrypt timed."""

    _real = wire.ChaCha20Poly1305

    def __init__(self, key):
        self._aead = self._real(key)
        self.encrypt = _timed("aead", self._aead.encrypt)
        self.decrypt = _timed("aead", self._aead.decrypt)


def instrument() -> None:
    wire.ChaCha20Poly1305 = _TimedAEAD
    guard.RequestGuard.admit = _timed("c1_checks", guard.RequestGuard.admit)
    for module in (hospital, researcher):
        module.check_public_key = _timed("key_checks", module.check_public_key)
    hospital.check_round_one = _timed("key_checks", hospital.check_round_one)
    for name in ("admit", "settle", "audit"):
        setattr(policy.Policy, name, _timed("policy", getattr(policy.Policy, name)))
    policy.AuditLog.write = _timed("audit_log", policy.AuditLog.write)


def main() -> int:
    ap = study_arguments(__doc__, data="synthetic:49152x10", folds=10)
    ap.add_argument("--name", default="protection")
    args = ap.parse_args()
    instrument()
    with tempfile.TemporaryDirectory(prefix="mpclr-protection-") as work:
        _, X, y = hospitals_for(args, Path(work))
        run = in_process(args, X, y, audit_dir=Path(work) / "audit")
        lines = sum(1 for _ in (Path(work) / "audit").rglob("audit.jsonl"))
    total = sum(SECONDS.values())
    whole = run["seconds"]["total"]
    rows = [{"what": k, "calls": CALLS[k], "seconds": v, "percent_of_study": 100 * v / whole}
            for k, v in sorted(SECONDS.items(), key=lambda kv: -kv[1])]
    rows.append({"what": "all protections", "calls": sum(CALLS.values()), "seconds": total,
                 "percent_of_study": 100 * total / whole})
    print(f"\nThe deployed default study in one process ({args.data}, {args.folds} folds, {args.hospitals} hospitals, "
          f"{args.preset}): {whole:.1f} s, {lines} audit logs on disk")
    print(table(rows, ["what", "calls", "seconds", "percent_of_study"]))
    path = write(args.name, {"args": vars(args), "study_seconds": run["seconds"], "protections": rows,
                             "bytes_per_hospital": run["bytes_per_hospital"]})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
