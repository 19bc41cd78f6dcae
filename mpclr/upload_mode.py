"""Which way a study's hospitals upload (Params.upload): "auto", the default, is resolved from the study's
plan before the key ceremony, to the mode that sends fewer bytes.

Share-keyed uploads (mpclr.protocols.upload) send one polynomial where the public key sends two, but each
hospital first sends its part of every key holder's upload key (upk.share: n keys of top_level + 2 digits
over all the primes; 24 MB per hospital at 'train' with 3 hospitals) and the server switches every upload.
So they pay only when the polynomials they save, half of the hospitals' public-key upload bytes, outweigh
the keys: a study of tens of thousands of rows, not breast cancer. The count is exact for contiguous row
ranges: every ciphertext a hospital uploads for the study (lr.aggregate, lr.encrypt's blocks holding its rows
and its constant part, lr.encrypt_eval's), from the layouts the study's steps use, at the level each is sent
at and the wire's prime widths. It takes milliseconds; benchmarks/bytes.py --plan, which counts every
message of the study, needs the whole manifest and the measured key ceremony of an earlier run.

The resolved mode goes into the plan's parameter set (mpclr.manifest.StudyPlan), so the manifest, the
session's parameter fingerprint and every hospital see the same concrete mode; a hospital refuses "auto".
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ParameterError

__all__ = ["AUTO", "resolve", "planned_mode", "for_study", "upload_key_bytes", "public_key_upload_bytes"]

AUTO = "auto"
UNPLANNED = "public-key"  # no study plan (keys only, exploration, statistics): a handful of vectors


def _poly(ctx, primes: int) -> int:
    """Bytes of one polynomial on the first `primes` primes as the wire packs it (mpclr.ring.packing)."""
    return sum(math.ceil(ctx.n * q.bit_length() / 8) for q in ctx.primes[:primes])


def upload_key_bytes(ctx, key_holders: int) -> int:
    """What a hospital sends for the upload keys: a share of every key holder's key, top_level + 1
    digits (U_i) and one more (V_i), each a polynomial over every prime, the special one included."""
    return key_holders * (ctx.top_level + 2) * _poly(ctx, len(ctx.primes))


def public_key_upload_bytes(ctx, rows: list[int], features: int, folds: int, fold_sizes=None,
                            evaluation: bool = True, constant_level: int | None = None) -> list[int]:
    """Bytes each hospital (rows[i] contiguous rows, in order) would upload under the public key: two
    polynomials per ciphertext at its level. The evaluation's fold assignment is each hospital's secret;
    its rows are taken as dealt evenly over the folds, as a random assignment deals them."""
    from .evaluation.layout import EvalLayout, own_blocks
    from .training.layout import Layout

    n, d, top = int(sum(rows)), int(features), ctx.top_level
    if folds > 1 and fold_sizes is None:
        fold_sizes = [len(a) for a in np.array_split(np.arange(n), folds)]
    layout = Layout(ctx.params.slots, n, int(folds), fold_sizes if folds > 1 else None, d + 1)
    level_bytes = [2 * _poly(ctx, lv + 1) for lv in range(top + 1)]
    constants = sum(g.chunks(d + 1) for g in layout.groups) * level_bytes[top if constant_level is None
                                                                              else constant_level]
    ev = None
    if evaluation and folds > 1:
        # fold k's rows spread evenly over the row order, as a random assignment spreads them
        sizes = np.asarray(fold_sizes, dtype=np.int64)
        where = np.concatenate([(np.arange(s) + 0.5) / s for s in sizes])
        ev = EvalLayout(ctx.params.slots, np.repeat(np.arange(folds), sizes)[np.argsort(where, kind="stable")],
                        int(folds), d + 1)
        label_level = 3 if any(ev.shared(b) for b in range(len(ev.blocks))) else 2  # SecureEvaluation's
    out, start = [], 0
    for count in rows:
        own = np.arange(start, start + int(count))
        start += int(count)
        cts = 1 + sum(len(layout.blocks_with_rows(g, own)) * g.chunks(d + 1) for g in layout.groups)
        total = cts * level_bytes[top] + constants
        if ev is not None:
            for b in own_blocks(ev, own):
                total += (len(ev.columns(b, d)) - 1) * level_bytes[top] + level_bytes[min(label_level, top)]
        out.append(total)
    return out


def resolve(plan) -> str:
    """The concrete upload mode of a study plan (mpclr.manifest.StudyPlan): its own if given, else
    share-keyed only when the polynomials share-keyed uploads save (half the public-key upload bytes)
    outweigh the upload keys, summed over the hospitals (the traffic the study puts on the network)."""
    from .seal.context import seal_context
    from .training.encrypted import TrainingPlan, refresh_level

    params = plan.params
    if params.upload != AUTO:
        return params.upload
    ctx = seal_context(params)
    holders = len(plan.key_holders)
    rows = list(plan.hospital_rows) or [len(a) for a in np.array_split(np.arange(int(plan.rows)), holders)]
    if sum(rows) != int(plan.rows):
        raise ParameterError(f"the hospitals' rows {rows} do not add up to the plan's {plan.rows}")
    constant_level = refresh_level(ctx, TrainingPlan([], [], bound_bits=plan.bound_bits), int(plan.threshold)) + 1
    sent = public_key_upload_bytes(ctx, rows, plan.features, plan.folds, plan.fold_sizes,
                                   plan.evaluation is not None, min(constant_level, ctx.top_level))
    return "share-keyed" if sum(sent) / 2 > len(rows) * upload_key_bytes(ctx, holders) else "public-key"


def planned_mode(manifest) -> str | None:
    """The upload mode a study manifest's plan records (merged manifests: their parts'), or None."""
    plan = getattr(manifest, "plan", None) or {}
    modes = {p["upload"] for p in [plan, *plan.get("parts", [])] if isinstance(p, dict) and p.get("upload")}
    if len(modes) > 1:
        raise ParameterError(f"study manifest {manifest.name!r}: its parts plan different upload modes {sorted(modes)}")
    return next(iter(modes), None)


def for_study(params, manifest):
    """The parameter set a federation runs with under this manifest: "auto" resolved to the manifest's
    planned mode (public-key when it plans no study); a concrete mode kept, if the plan agrees."""
    planned = planned_mode(manifest)
    if params.upload == AUTO:
        return params.with_(upload=planned or UNPLANNED)
    if planned is not None and planned != params.upload:
        raise ParameterError(f"parameter upload is {params.upload!r} but the study manifest plans "
                             f"{planned!r} uploads: make the manifest with the same parameter set")
    return params
