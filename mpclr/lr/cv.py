"""The encrypted side of x-fold cross-validation, driven by the server with the key holders.

Steps, each timed: fold assignment (each hospital stratifies its own rows, seeded; the fold ids are
public), standardization statistics (encrypted per-hospital aggregates, summed by the server; only
the aggregate is threshold-decrypted), encryption of the hospitals' rows in the public layout, then
training of every fold model in one pass. The fold models stay encrypted at the server: decrypting
them is a separate, explicit act of the key holders (`decrypt_models`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import ProtocolError
from .encrypted import EncryptedTrainer, TrainingPlan
from .layout import Layout
from .party import stats_from_aggregate

__all__ = ["EncryptedCV", "run_encrypted_cv"]


@dataclass
class EncryptedCV:
    layout: Layout
    fold_of_row: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    trainer: EncryptedTrainer
    seconds: dict = field(default_factory=dict)

    @property
    def train_counts(self) -> np.ndarray:
        return np.array([(self.fold_of_row != k).sum() for k in range(self.layout.folds)])

    def decrypt_models(self, fed, by=None) -> np.ndarray:
        """Threshold decryption of every fold model: (folds, d + 1), intercept first. This reveals the
        models to the researcher; the key holders named in `by` take part."""
        t0 = time.perf_counter()
        W = np.zeros((self.layout.folds, self.trainer.features))
        s = fed.server
        for (g, j), ct in self.trainer.weight_ciphertexts().items():
            h = s._put(ct, self.layout.slots, fed.ctx.top_level)
            values = fed.decrypt(h, by=by, label=f"fold models, feature {j}, group {g}")
            s.forget(h)
            for k, v in self.layout.unpack_models(self.layout.groups[g], values).items():
                W[k, j] = v
        self.seconds["decrypt_models"] = time.perf_counter() - t0
        return W


def run_encrypted_cv(
    fed, *, folds: int, plan: TrainingPlan, seed: int, participants=None, workers="auto", progress=None
) -> EncryptedCV:
    """All hospitals must have data loaded (DataProvider.load_data) with global row indices 0..n-1."""
    s = fed.server
    names = [p.name for p in fed.parties]
    seconds = {}

    t0 = time.perf_counter()
    replies = s.call_many("lr.folds", {p: {"folds": folds, "seed": int(seed) * 1000 + i} for i, p in enumerate(names)})
    n_rows = sum(len(r["rows"]) for r in replies.values())
    fold_of_row = np.full(n_rows, -1, dtype=np.int64)
    for r in replies.values():
        rows = np.asarray(r["rows"], dtype=np.int64)
        if rows.min() < 0 or rows.max() >= n_rows or np.any(fold_of_row[rows] >= 0):
            raise ProtocolError("hospitals' global row indices must partition 0..n-1")
        fold_of_row[rows] = r["folds"]
    if np.any(fold_of_row < 0):
        raise ProtocolError("hospitals' global row indices must partition 0..n-1")
    counts = np.bincount(fold_of_row, minlength=folds)
    if np.any(counts == 0) or np.any(n_rows - counts == 0):
        raise ProtocolError(f"every fold needs rows to test and rows to train on; fold sizes {counts.tolist()}")
    seconds["folds"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    agg = s.call_many("lr.aggregate", {p: {} for p in names})
    total = None
    for p in names:
        h = s.import_ciphertext(agg[p]["ciphertext"], int(agg[p]["length"]))
        total = h if total is None else s.add(total, h)
    d = (total.length - 1) // 2
    values = fed.decrypt(total, by=participants, level=None, label="standardization aggregate")
    mean, std = stats_from_aggregate(values, d)
    seconds["scaling"] = time.perf_counter() - t0

    layout = Layout(fed.params.slots, n_rows, folds)
    t0 = time.perf_counter()
    fed.generate_rotation_keys(layout.rotation_steps(), by=participants)
    seconds["rotation_keys"] = time.perf_counter() - t0

    trainer = EncryptedTrainer(s, layout, d + 1, plan, participants=participants, workers=workers)
    train_counts = n_rows - counts
    t0 = time.perf_counter()
    request = {
        "layout": layout.describe(),
        "mean": mean.tolist(),
        "std": std.tolist(),
        "train_counts": train_counts.tolist(),
    }
    for p in names:  # one hospital at a time: each reply holds all of its encrypted rows
        reply = s.call(p, "lr.encrypt", **request)
        for g, b, j, raw in reply["blocks"]:
            trainer.add_data(int(g), int(b), int(j), raw)
        for g, j, raw in reply["constant"]:
            trainer.add_constant(int(g), int(j), raw)
    seconds["encryption"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    trainer.prepare(fold_of_row, train_counts)
    trainer.train(progress)
    seconds["training"] = time.perf_counter() - t0
    return EncryptedCV(layout, fold_of_row, mean, std, trainer, seconds)
