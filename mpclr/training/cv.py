"""The encrypted side of x-fold cross-validation, driven by the server with the key holders.

`encrypt_study` runs the steps before training, each timed: fold assignment (each hospital stratifies
its own rows with its own secret randomness; the fold ids it sends back are public), standardization
statistics (encrypted per-hospital aggregates summed by the server; only the aggregate is
threshold-decrypted), and encryption of every hospital's rows. `EncryptedCV.train` then trains every
fold model in one pass. The models stay encrypted at the server: decrypting them is a separate, explicit act of the
key holders (`decrypt_models`). `save`/`load` let notebook steps hand a study on (ciphertexts only).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FormatError, PrivacyWarning, ProtocolError
from ..protocols.upload import is_share_keyed
from ..seal.format import CiphertextData, pack_ciphertext
from .encrypted import EncryptedTrainer, TrainingLog, TrainingPlan, refresh_level
from .layout import Layout
from .party import (
    aggregate_values,
    block_ciphertexts,
    blocks_per_round,
    ciphertext_bytes,
    packed_ciphertext_bytes,
    stats_from_aggregate,
)
from .spool import Spool, default_compact, release_memory

__all__ = ["EncryptedCV", "encrypt_study", "run_encrypted_cv", "TWO_HOSPITALS"]

TWO_HOSPITALS = (
    "a study with two hospitals: lr.encrypt sends each hospital the pooled means and standard deviations "
    "and the pooled fold sizes, so each learns the other's row count, per-feature sums and sums of "
    "squares (with three or more, only the sum over the others)"
)


@dataclass
class EncryptedCV:
    layout: Layout
    fold_of_row: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    curvature: float
    interval: float = 8.0  # the data blocks hold z / interval
    blocks: Spool = field(default_factory=Spool)  # (group, block, feature) -> hospitals' ciphertext bytes
    constants: dict = field(default_factory=dict)  # (group, feature) -> hospitals' ciphertext bytes
    seconds: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)  # (group, feature) -> ciphertext bytes, after training
    aggregate: np.ndarray | None = None  # what the researcher decrypted: pooled [rows, sums, cross-products]
    trainer: EncryptedTrainer | None = None

    @property
    def features(self) -> int:
        return len(self.mean) + 1

    @property
    def train_counts(self) -> np.ndarray:
        return np.array([(self.fold_of_row != k).sum() for k in range(self.layout.folds)])

    def train(self, fed, plan: TrainingPlan, participants=None, workers="auto", progress=None) -> TrainingLog:
        if plan.interval != self.interval:
            raise ProtocolError(
                f"the data were encrypted for the sigmoid interval {self.interval}, the plan uses "
                f"{plan.interval}: encrypt again"
            )
        t0 = time.perf_counter()
        self.rotation_keys(fed, participants)
        trainer = EncryptedTrainer(fed.server, self.layout, self.features, plan, participants, workers)
        trainer.add_spool(self.blocks)
        for (g, j), raws in self.constants.items():
            for raw in raws:
                trainer.add_constant(g, j, raw)
        trainer.prepare(self.fold_of_row, self.train_counts)
        log = trainer.train(progress)
        self.trainer = trainer
        self.weights = {k: ct.to_bytes(compr_mode="none") for k, ct in trainer.weight_ciphertexts().items()}
        self.seconds["training"] = time.perf_counter() - t0
        return log

    def rotation_keys(self, fed, participants=None) -> None:
        """A packed layout sums each block's features with rotations (mpclr.training.layout): the collective
        keys of those steps, for every level (the sum runs before the top level's rescale, which divides its
        key-switching noise away: mpclr.training.blocks)."""
        steps = self.rotation_steps()
        if steps:
            fed.generate_rotation_keys(steps, by=participants)

    def rotation_steps(self) -> list[int]:
        return sorted({s for g in self.layout.groups for s in self.layout.segment_steps(g)})

    def weight_handles(self, fed) -> dict:
        """The encrypted fold models as server handles, (group, chunk) -> Ciphertext."""
        if not self.weights:
            raise ProtocolError("the fold models have not been trained yet")
        return {k: fed.server.import_ciphertext(raw, self.layout.slots) for k, raw in self.weights.items()}

    def decrypt_models(self, fed, by=None) -> np.ndarray:
        """Threshold decryption of every fold model: (folds, d + 1), intercept first. This reveals the
        models to the researcher; the key holders named in `by` take part."""
        t0 = time.perf_counter()
        W = np.zeros((self.layout.folds, self.features))
        handles = self.weight_handles(fed)
        keys = list(handles)
        labels = [f"fold models: weights {j} of group {g}" for g, j in keys]
        for (g, j), values in zip(keys, fed.decrypt_many([handles[k] for k in keys], by=by, labels=labels)):
            for (k, f), v in self.layout.unpack_weights(self.layout.groups[g], j, values, self.features).items():
                W[k, f] = v
        fed.server.forget(*handles.values())
        self.seconds["decrypt_models"] = time.perf_counter() - t0
        return W

    # ------------------------------------------------------------------ persistence (public data only)
    def save(self, path) -> None:
        root = Path(path)
        (root / "ciphertexts").mkdir(parents=True, exist_ok=True)
        index = {"blocks": [], "constants": [], "weights": []}
        for kind, table in (("blocks", self.blocks), ("constants", self.constants)):
            for key, raws in table.items():
                for i, raw in enumerate(raws):
                    name = f"{kind}-{'-'.join(map(str, key))}-{i}.bin"
                    (root / "ciphertexts" / name).write_bytes(raw)
                    index[kind].append([list(key), name])
        for key, raw in self.weights.items():
            name = f"weights-{'-'.join(map(str, key))}.bin"
            (root / "ciphertexts" / name).write_bytes(raw)
            index["weights"].append([list(key), name])
        meta = {
            "layout": self.layout.describe(),
            "fold_of_row": self.fold_of_row.tolist(),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "curvature": self.curvature,
            "interval": self.interval,
            "seconds": self.seconds,
            "index": index,
        }
        (root / "encrypted_cv.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, path) -> EncryptedCV:
        root = Path(path)
        try:
            meta = json.loads((root / "encrypted_cv.json").read_text())
        except FileNotFoundError:
            raise FormatError(f"{root} holds no encrypted study (encrypted_cv.json missing)") from None
        out = cls(
            Layout.from_description(meta["layout"]),
            np.asarray(meta["fold_of_row"], dtype=np.int64),
            np.asarray(meta["mean"]),
            np.asarray(meta["std"]),
            float(meta["curvature"]),
            interval=float(meta["interval"]),
            seconds=meta["seconds"],
        )
        for key, name in meta["index"]["blocks"]:  # back into a spool: on disk again when large
            out.blocks.add(tuple(key), (root / "ciphertexts" / name).read_bytes())
        for key, name in meta["index"]["constants"]:
            out.constants.setdefault(tuple(key), []).append((root / "ciphertexts" / name).read_bytes())
        for key, name in meta["index"]["weights"]:
            out.weights[tuple(key)] = (root / "ciphertexts" / name).read_bytes()
        return out


def encrypt_study(fed, *, folds: int, interval: float = 8.0, participants=None,
                  bound_bits: int = TrainingPlan.bound_bits, spool=None, also=None) -> EncryptedCV:
    """Fold assignment, standardization from the encrypted aggregate, encrypted rows. folds=1 prepares
    one model on every row (fold ids all -1: no row held out), as EncryptedLogisticRegression trains.
    Every hospital must have its data loaded (Hospital.load_data), global row indices 0..n-1.
    Each hospital draws its folds from its own secret randomness: no seed fixes them (a resumed
    federation gets the same ones again). Two hospitals: a PrivacyWarning (TWO_HOSPITALS). spool: the
    byte threshold past which the rows go to disk (mpclr.training.spool; None: its default), or a Spool.
    also: a function of the EncryptedCV (its layout and scaling known, no rows yet) giving more uploads
    (Upload) that go in the same rounds as lr.encrypt (a secure evaluation's rows: one round fewer)."""
    s = fed.server
    names = [p.name for p in fed.hospitals]
    seconds = {}
    if len(names) == 2:
        warnings.warn(TWO_HOSPITALS, PrivacyWarning, stacklevel=2)

    t0 = time.perf_counter()
    # the pooled aggregate's request does not depend on the folds: both in one round (Node.call_sequence)
    replies, agg = s.call_sequence([("lr.folds", {p: {"folds": folds} for p in names}),
                                    ("lr.aggregate", {p: {} for p in names})])
    n_rows = sum(len(r["rows"]) for r in replies.values())
    fold_of_row = np.zeros(n_rows, dtype=np.int64)
    assigned = np.zeros(n_rows, dtype=bool)
    for r in replies.values():
        rows = np.asarray(r["rows"], dtype=np.int64)
        if rows.min() < 0 or rows.max() >= n_rows or np.any(assigned[rows]):
            raise ProtocolError("hospitals' global row indices must partition 0..n-1")
        assigned[rows] = True
        fold_of_row[rows] = r["folds"]
    if not assigned.all():
        raise ProtocolError("hospitals' global row indices must partition 0..n-1")
    low, high = (-1, -1) if folds == 1 else (0, folds - 1)  # folds=1: one model on every row, none held out
    if fold_of_row.min() < low or fold_of_row.max() > high:
        raise ProtocolError(f"fold ids must lie in {low}..{high} for {folds} folds, got "
                            f"{int(fold_of_row.min())}..{int(fold_of_row.max())}")
    counts = np.bincount(fold_of_row[fold_of_row >= 0], minlength=folds)  # rows each model holds out
    if folds > 1 and (np.any(counts == 0) or np.any(n_rows - counts == 0)):
        raise ProtocolError(f"every fold needs rows to test and rows to train on; fold sizes {counts.tolist()}")
    seconds["folds"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    total = None
    for p in names:
        raw = s.uploads.load(agg[p]["ciphertext"], f"{p}'s aggregate", p)
        h = s.import_ciphertext(raw, int(agg[p]["length"]))
        total = h if total is None else s.add(total, h)
    d = int(agg[names[0]]["features"])
    values = aggregate_values(
        fed.decrypt(total, by=participants, level=None, label="pooled count, sums and cross-products")
    )
    scaling, curvature = stats_from_aggregate(values, d)
    mean, std = scaling.mean, scaling.std
    seconds["scaling"] = time.perf_counter() - t0

    # features side by side where the folds are small (fold sizes public from here on, in lr.folds)
    layout = Layout(fed.params.slots, n_rows, folds, None if folds == 1 else counts, d + 1)

    t0 = time.perf_counter()
    out = EncryptedCV(
        layout,
        fold_of_row,
        mean,
        std,
        curvature,
        interval=float(interval),
        seconds=seconds,
        aggregate=np.asarray(values[: 1 + d + d * (d + 1) // 2]),
        blocks=spool if isinstance(spool, Spool) else Spool(spool, name="training-rows"),
    )
    request = {
        "layout": layout.describe(),
        "mean": mean.tolist(),
        "std": std.tolist(),
        "train_counts": (n_rows - counts).tolist(),
        "interval": float(interval),
        # the constant part is first used one level above the training's refresh level: sent there
        "constant_level": refresh_level(fed.ctx, TrainingPlan([], [], bound_bits=bound_bits),
                                        len(s.participants(participants))) + 1,
    }
    cts = sum(g.blocks * g.chunks(out.features) for g in layout.groups)
    if out.blocks.compact is None:  # MPCLR_SPOOL_COMPACT, else compact only when 64-bit words would not fit
        forced = default_compact()
        out.blocks.compact = forced if forced is not None else not out.blocks.fits(cts * ciphertext_bytes(fed.params))
    size = packed_ciphertext_bytes(fed.params) if out.blocks.compact else ciphertext_bytes(fed.params)
    out.blocks.reserve(cts * size, f"{n_rows} rows in the training layout")
    rows = Upload("lr.encrypt", request, names, blocks_per_round(fed.params, block_ciphertexts(layout, out.features)),
                  lambda p, reply: _take_training_rows(s, out, p, reply))
    upload_together(s, [rows, *(also(out) if also is not None else [])])
    out.blocks.checked = True  # every block's level and residues, as it arrived
    seconds["encryption"] = time.perf_counter() - t0
    return out


@dataclass
class Upload:
    """One upload in rounds: `step` asked of `names`, `per_round` blocks a request, take(hospital, reply)."""

    step: str
    request: dict
    names: list
    per_round: int
    take: Callable


def upload(server, step: str, request: dict, names, per_round: int, take) -> None:
    """An upload in rounds (lr.encrypt, lr.encrypt_eval): every hospital not done yet is asked, in parallel,
    for its next `per_round` blocks from where its last reply said to go on; take(hospital, reply) stores
    each reply. The next round is asked for while this one is stored (its start is in the replies), so
    the hospitals encrypt while the server checks and writes: two rounds' ciphertexts in memory at most."""
    upload_together(server, [Upload(step, request, list(names), per_round, take)])


def upload_together(server, uploads: list[Upload]) -> None:
    """Several uploads whose requests are all known now, side by side: each round asks every hospital for
    the next window of every upload it is not done with, those of one hospital in one message
    (Node.call_sequence: each request still gated, budgeted and audited alone). A round then carries
    up to one window of each upload."""

    def ask(starts: list[dict]) -> list[dict]:
        steps = [(u.step, {p: {**u.request, "start": i, "count": u.per_round} for p, i in st.items()})
                 for u, st in zip(uploads, starts) if st]
        if len(steps) == 1:
            replies = iter([server.call_many(*steps[0])])
        else:
            replies = iter(server.call_sequence(steps))
        return [next(replies) if st else {} for st in starts]

    starts = [{p: 0 for p in u.names} for u in uploads]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload") as ahead:
        pending = ahead.submit(ask, starts)
        while pending is not None:
            answered = pending.result()
            following = []
            for u, start, replies in zip(uploads, starts, answered):
                nxt_of = {}
                for p, reply in replies.items():
                    nxt = reply.get("next")
                    if nxt is not None and (not isinstance(nxt, int) or isinstance(nxt, bool) or nxt <= start[p]):
                        raise ProtocolError(f"{p} answered {u.step} from block {start[p]} with a next block {nxt!r}")
                    if nxt is not None:
                        nxt_of[p] = nxt
                following.append(nxt_of)
            pending = ahead.submit(ask, following) if any(following) else None
            starts = following
            for u, replies in zip(uploads, answered):
                for p in list(replies):
                    u.take(p, replies.pop(p))
            del answered
            release_memory()  # the round's replies, in the hospitals' threads' arenas, back to the system


def _take_training_rows(server, out: EncryptedCV, p: str, reply: dict) -> None:
    """A hospital's reply to one lr.encrypt round, checked (top level, a block of the layout) and stored."""
    ctx, what = server.ctx, f"{p}'s training rows"
    blocks = {(g.index, b) for g in out.layout.groups for b in range(g.blocks)}
    for g, b, j, raw in reply["blocks"]:
        key = (int(g), int(b), int(j))
        if key[:2] not in blocks or not 0 <= key[2] < out.layout.groups[key[0]].chunks(out.features):
            raise ProtocolError(f"{p} sent a data block outside the layout: {key}")
        seal = server.uploads.load(raw, what, p)  # every residue checked; share-keyed: switched
        if ctx.level_of(CiphertextData.from_bytes(seal, what).parms_id, what) != ctx.top_level:
            raise ProtocolError(f"{p} sent data block {key} below the top level")
        if out.blocks.compact and is_share_keyed(raw):
            raw = pack_ciphertext(seal)
        out.blocks.add(key, raw if out.blocks.compact else seal)
    for g, j, raw in reply["constant"]:
        out.constants.setdefault((int(g), int(j)), []).append(server.uploads.load(raw, what, p))


def run_encrypted_cv(
    fed, *, folds: int, plan: TrainingPlan, participants=None, workers="auto", progress=None
) -> EncryptedCV:
    """encrypt_study, then train."""
    out = encrypt_study(fed, folds=folds, interval=plan.interval, participants=participants)
    out.train(fed, plan, participants=participants, workers=workers, progress=progress)
    return out
