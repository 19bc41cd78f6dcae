"""Stratified fold assignment: each class spread over the folds, fold sizes balanced.

- `secret_folds` assigns a hospital's own rows in the encrypted study. Its fold ids go to the server
  and are public, so every random choice (where the deal starts, the order within each class) comes
  from a secret key the hospital drew from the OS CSPRNG and keeps in its keystore. A deal an observer
  can replay (a public seed) gives labels away: matching the replayed per-class deals against the
  fold ids in row order tells which rows share a class. With the secret key, the fold ids are, given
  the class counts, a uniformly random stratified assignment: a row's fold tells no more about its
  label than that fold's class mix, which is the hospital's own to within one row per class.
- `assign_folds` uses a public seed, for plaintext references that run on their own (the twin and
  scikit-learn given a fold count, the accuracy benchmarks). In a study they use the hospitals' ids.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..data import binary_labels, check_fold_count, check_stratifiable
from ..errors import ParameterError

__all__ = ["assign_folds", "secret_folds", "check_fold_count", "check_stratifiable", "fold_ids_for",
           "training_masks", "fold_sizes"]


def _deal(y: np.ndarray, folds: int, orders, start: int) -> np.ndarray:
    """Deal the rows of class 0 (in orders[0]), then of class 1 (orders[1]), round-robin from fold
    `start`: fold sizes differ by at most one row, and so does each class's count per fold."""
    fold = np.empty(y.size, dtype=np.int64)
    dealt = int(start)
    for rows in orders:
        fold[rows] = (dealt + np.arange(rows.size)) % folds
        dealt += rows.size
    return fold


def assign_folds(y, folds: int = 5, seed: int | None = 0, *, strict: bool = True) -> np.ndarray:
    """Fold id (0..folds-1) of every row, stratified by class and fixed by the public `seed` (numpy's
    generator; seed=None draws fresh, unreproducible randomness). For plaintext references only: the
    seed fixes which rows share a fold and a class, so it must never assign a hospital's rows (that is
    `secret_folds`). strict=False allows a fold without one of the classes."""
    y = binary_labels(y)
    if strict:
        check_stratifiable(y, folds)
    folds = check_fold_count(folds)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
        raise ParameterError(f"parameter seed must be an integer or None, got {seed!r}")
    rng = np.random.default_rng(seed)
    return _deal(y, folds, [rng.permutation(np.flatnonzero(y == c)) for c in (0, 1)], 0)


def secret_folds(y, folds: int, key: bytes, rows=None) -> np.ndarray:
    """A hospital's stratified fold ids for its own rows, every random choice drawn from its secret
    `key` (32 bytes from the OS CSPRNG, kept in its keystore): where its deal starts, uniform over
    the folds, and the order of each class, uniform (sorted by 128-bit random keys).

    SHAKE-256 expands the key with the fold count, labels and global row numbers: the same rows get the
    same assignment again (a saved federation resumes its study), other rows or another fold count an
    independent one. A fold may lack a class here; the study needs both only in the pooled folds. The
    secret starts keep pooled fold sizes within one row per hospital of each other, with nothing public.
    """
    y = binary_labels(y)
    folds = check_fold_count(folds)
    if not isinstance(key, bytes | bytearray) or len(key) < 32:
        raise ParameterError("parameter key: a fold key is at least 32 secret bytes (256 bits), got "
                             + (f"{len(key)} bytes" if isinstance(key, bytes | bytearray) else type(key).__name__))
    rows = np.arange(y.size) if rows is None else np.asarray(rows, dtype=np.int64)
    if rows.shape != y.shape:
        raise ParameterError(f"{y.size} labels but {rows.size} row numbers")
    xof = hashlib.shake_256(b"mpclr/folds/v1\x00" + bytes(key) + folds.to_bytes(4, "little")
                            + np.asarray(y, "<i1").tobytes() + rows.astype("<i8").tobytes())
    words = np.frombuffer(xof.digest(8 * (1 + 2 * y.size)), dtype="<u8")
    start = int(words[0]) % folds  # bias below folds / 2^64
    hi, lo = words[1 : 1 + y.size], words[1 + y.size :]
    orders = []
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        orders.append(idx[np.lexsort((lo[idx], hi[idx]))])  # ties: probability below n^2 / 2^129
    return _deal(y, folds, orders, start)


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
