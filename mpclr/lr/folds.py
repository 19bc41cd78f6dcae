"""Public, stratified fold assignment over the global row order.

Fold ids are public: every party (and the server, which builds the per-fold masks) must agree on
them, so they come from a seed, never from the data values. Only the labels' class counts shape the
assignment (stratification); the per-row result reveals which fold a row is in, nothing else.
"""

from __future__ import annotations

import numpy as np

from ..data import binary_labels
from ..errors import DataError, ParameterError

__all__ = ["assign_folds", "check_fold_count", "check_stratifiable", "fold_ids_for", "training_masks",
           "fold_sizes"]


def check_fold_count(folds) -> int:
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise ParameterError(f"parameter folds must be an integer >= 2, got {folds!r}")
    return int(folds)


def check_stratifiable(y, folds: int, what: str = "the data") -> None:
    """Refuse when some fold would miss a class: each class needs at least `folds` rows."""
    folds = check_fold_count(folds)
    y = binary_labels(y)
    counts = {c: int((y == c).sum()) for c in (0, 1)}
    if min(counts.values()) < folds:
        raise DataError(f"{what}: {folds} folds cannot each hold both classes; class counts are "
                        f"0: {counts[0]}, 1: {counts[1]} (each class needs at least {folds} rows)")


def assign_folds(y, folds: int = 5, seed: int | None = 0, *, start: int = 0, strict: bool = True) -> np.ndarray:
    """Fold id (0..folds-1) of every row, stratified by class and fixed by `seed`.

    Rows of each class are shuffled and dealt round-robin from fold `start`; the second class continues
    the deal where the first stopped, so fold sizes differ by at most one row overall and each class's
    count per fold by at most one. seed=None draws fresh (unreproducible) public randomness.

    A hospital assigning only its own rows (the encrypted path) passes strict=False, since a fold may
    lack a class locally and still have it globally, and a start of its own, so that the hospitals'
    deals interleave and the global fold sizes stay balanced.
    """
    y = binary_labels(y)
    if strict:
        check_stratifiable(y, folds)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
        raise ParameterError(f"parameter seed must be an integer or None, got {seed!r}")
    rng = np.random.default_rng(seed)
    fold = np.empty(y.size, dtype=np.int64)
    dealt = int(start)
    for c in (0, 1):
        rows = rng.permutation(np.flatnonzero(y == c))
        fold[rows] = (dealt + np.arange(rows.size)) % folds
        dealt += rows.size
    return fold


def fold_ids_for(folds, y, seed: int | None = 0) -> np.ndarray:
    """The fold id of every row: assigned by `assign_folds` when `folds` is a count, else checked."""
    if isinstance(folds, int | np.integer) and not isinstance(folds, bool):
        return assign_folds(y, int(folds), seed)
    fold_ids = np.asarray(folds)
    n = len(y)
    if fold_ids.shape != (n,) or not np.issubdtype(fold_ids.dtype, np.integer):
        raise ParameterError(f"parameter folds must be a number of folds or {n} integer fold ids, got "
                             f"{fold_ids.dtype} of shape {fold_ids.shape}")
    return fold_ids


def training_masks(fold_ids, folds: int | None = None) -> np.ndarray:
    """(folds, n) 0/1 matrix: row i trains model k iff it is not in fold k."""
    fold_ids = np.asarray(fold_ids)
    if fold_ids.ndim != 1 or fold_ids.size == 0 or not np.issubdtype(fold_ids.dtype, np.integer):
        raise ParameterError(f"parameter fold_ids must be a non-empty 1-D integer array, got "
                             f"{fold_ids.dtype} of shape {fold_ids.shape}")
    k = int(fold_ids.max()) + 1 if folds is None else check_fold_count(folds)
    if fold_ids.min() < 0 or fold_ids.max() >= k:
        raise ParameterError(f"parameter fold_ids must lie in 0..{k - 1}, found "
                             f"{int(fold_ids.min())}..{int(fold_ids.max())}")
    if k < 2:
        raise ParameterError("parameter fold_ids: cross-validation needs at least 2 folds, all rows are in fold 0")
    return (fold_ids[None, :] != np.arange(k)[:, None]).astype(np.float64)


def fold_sizes(fold_ids, folds: int | None = None) -> np.ndarray:
    """Number of rows in each fold (public: it follows from the public assignment)."""
    fold_ids = np.asarray(fold_ids)
    k = int(fold_ids.max()) + 1 if folds is None else folds
    return np.bincount(fold_ids, minlength=k)
