"""What a hospital computes on its own rows before anything leaves it (encrypted).

Standardization statistics: each hospital encrypts [rows, sum x_j, sum x_j^2] of its own rows; the
server adds them and only the aggregate is decrypted. Training data: z = y' [1, (x - mean) / std] with
y' = 2y - 1, packed into the public layout (its rows in their slots, zeros elsewhere) and encrypted
under the collective key, one ciphertext per (group, block, feature) it has rows in.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .layout import Layout

__all__ = ["aggregate_vector", "design_rows", "pack_blocks", "constant_part", "local_folds"]


def aggregate_vector(X: np.ndarray) -> np.ndarray:
    """[n, sum_j x_j (d values), sum_j x_j^2 (d values)] of this party's rows."""
    X = np.asarray(X, dtype=np.float64)
    return np.concatenate([[X.shape[0]], X.sum(axis=0), (X * X).sum(axis=0)])


def stats_from_aggregate(values: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Pooled mean and standard deviation from a decrypted aggregate vector."""
    values = np.asarray(values, dtype=np.float64)
    n = values[0]
    if not n >= 1:
        raise DataError(f"the decrypted aggregate row count is {n}: no rows?")
    mean = values[1 : 1 + d] / n
    var = values[1 + d : 1 + 2 * d] / n - mean**2
    return mean, np.sqrt(np.maximum(var, 0.0))


def design_rows(X: np.ndarray, y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """z = y' [1, (x - mean) / std], one row per sample (y' = +1 for label 1, -1 for label 0)."""
    X = np.asarray(X, dtype=np.float64)
    std = np.where(np.asarray(std) > 0, std, 1.0)
    sign = 2.0 * np.asarray(y, dtype=np.float64) - 1.0
    return sign[:, None] * np.hstack([np.ones((X.shape[0], 1)), (X - mean) / std])


def pack_blocks(layout: Layout, rows: np.ndarray, z: np.ndarray):
    """Yield (group, block, feature, slot vector) for every block holding some of this party's rows."""
    rows = np.asarray(rows)
    for g in layout.groups:
        for b in layout.blocks_with_rows(g, rows):
            for j in range(z.shape[1]):
                yield g.index, b, j, layout.pack_rows(g, b, z[:, j], rows)


def local_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Stratified fold ids for this party's own rows (seeded, so public and reproducible): each class is
    shuffled and dealt round-robin from a random start. A fold id says nothing about a row's label."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    out = np.empty(len(y), dtype=np.int64)
    start = int(rng.integers(folds))
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        idx = idx[rng.permutation(len(idx))]
        out[idx] = (start + np.arange(len(idx))) % folds
        start = (start + len(idx)) % folds
    return out


def constant_part(layout: Layout, z: np.ndarray, own_folds: np.ndarray, train_counts: np.ndarray):
    """Yield (group, feature, slot vector) of this party's share of C_k = (1 / 2 n_k) sum_{i not in fold k} z_i,
    in the weights' layout: the constant part of the gradient, summed by the server over parties."""
    own_folds = np.asarray(own_folds)
    n = np.asarray(train_counts, dtype=np.float64)
    for g in layout.groups:
        for j in range(z.shape[1]):
            per_model = np.zeros(layout.folds)
            for k in g.models:
                per_model[k] = 0.5 * z[own_folds != k, j].sum() / n[k]
            yield g.index, j, layout.pack_models(g, per_model)
