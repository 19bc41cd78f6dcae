"""What a hospital computes on its own rows before anything leaves it (encrypted).

Standardization statistics and the step size: each hospital encrypts [rows, sum x_j, sum x_j x_k (j <= k)]
of its own rows; the server adds them and only the aggregate is decrypted: the pooled row count, means,
and cross-products, from which the means and standard deviations (scaling) and the largest eigenvalue
of the correlation matrix (the twin's step size) follow. Training data: z = y' [1, (x - mean) / std] with
y' = 2y - 1, packed into the public layout (its rows in their slots, zeros elsewhere) and encrypted
under the collective key, one ciphertext per (group, block, feature) it has rows in.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .layout import Layout

__all__ = ["aggregate_vector", "unpack_aggregate", "design_rows", "pack_blocks", "constant_part", "fold_sizes",
           "upload_blocks", "block_ciphertexts", "blocks_per_round", "upload_rounds", "upload_window",
           "ciphertext_bytes"]


# The aggregate is encrypted as 2^40 times its values (a power of two: exact in float64). Its decryption's
# smudging is sized against a fresh encryption's noise, which does not grow with the values: at scale 2^45
# alone it would cost about 2^-9 absolute, too much for the sums of squares of a column of small values
# (breast cancer's 20th: variance 7e-6); 2^40 larger, the values keep about float64's precision.
AGGREGATE_SHIFT_BITS = 40


def aggregate_vector(X: np.ndarray) -> np.ndarray:
    """[n, sum_j x_j (d values), sum_i x_ij x_ik for j <= k (d (d + 1) / 2 values)] of this party's rows,
    times 2^AGGREGATE_SHIFT_BITS (undone by `aggregate_values`)."""
    X = np.asarray(X, dtype=np.float64)
    upper = np.triu_indices(X.shape[1])
    return np.concatenate([[X.shape[0]], X.sum(axis=0), (X.T @ X)[upper]]) * 2.0**AGGREGATE_SHIFT_BITS


def aggregate_values(decrypted: np.ndarray) -> np.ndarray:
    """The pooled [n, sums, cross-products] from the decrypted sum of the parties' aggregate vectors."""
    return np.asarray(decrypted, dtype=np.float64) / 2.0**AGGREGATE_SHIFT_BITS


def aggregate_length(d: int) -> int:
    return 1 + d + d * (d + 1) // 2


def unpack_aggregate(values: np.ndarray, d: int) -> tuple[float, np.ndarray, np.ndarray]:
    """(n, sums (d,), cross-products (d, d), symmetric) from a decrypted aggregate vector: what the
    researcher reads from the one value the study decrypts before training."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < aggregate_length(d):
        raise DataError(f"the aggregate holds {values.size} values, {aggregate_length(d)} expected for {d} features")
    cross = np.zeros((d, d))
    cross[np.triu_indices(d)] = values[1 + d : aggregate_length(d)]
    return float(values[0]), values[1 : 1 + d].copy(), cross + np.triu(cross, 1).T


def stats_from_aggregate(values: np.ndarray, d: int):
    """(Standardization, curvature) from a decrypted aggregate vector: pooled means and standard
    deviations, and the largest eigenvalue of the standardized Gram matrix (the twin's step size)."""
    from ..plain.twin import curvature_from_aggregates, standardize_from_aggregates

    n, sums, cross = unpack_aggregate(values, d)
    if not n >= 2:
        raise DataError(f"the decrypted aggregate row count is {n:g}: too few rows")
    scaling = standardize_from_aggregates(round(n), sums, np.diag(cross))
    return scaling, curvature_from_aggregates(round(n), sums, cross)


def design_rows(X: np.ndarray, y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """z = y' [1, (x - mean) / std], one row per sample: the twin's z-rows of the standardized features."""
    from ..plain.twin import make_z

    return make_z((np.asarray(X, dtype=np.float64) - mean) / std, y)


def pack_blocks(layout: Layout, rows: np.ndarray, z: np.ndarray, only=None, order=None):
    """Yield (group, block, chunk, slot vector) for every block holding some of this party's rows (z is
    already divided by the sigmoid's interval R, as the trainer expects; a chunk is one feature, or k side by
    side in a packed group); with `only`, a set of (group, block) with some of its rows, those blocks only.
    Each block's rows are found by bisection in the sorted rows (`order`: argsort of rows, if already
    known): the work is the block's, not the hospital's (a million rows make a thousand blocks)."""
    rows = np.asarray(rows)
    order = np.argsort(rows, kind="stable") if order is None else order
    ordered = rows[order]
    for g in layout.groups:
        mine = layout.blocks_with_rows(g, rows) if only is None else sorted(b for i, b in only if i == g.index)
        for b in mine:
            span = layout.rows_of_block(g, b)
            lo, hi = np.searchsorted(ordered, [span.start, span.stop])
            mine = order[lo:hi]
            for c in range(g.chunks(z.shape[1])):
                yield g.index, b, c, layout.pack_chunk(g, b, c, z[mine], rows[mine])


def upload_blocks(layout: Layout) -> list[tuple[int, int]]:
    """Every (group, block) of the training layout in upload order: a block's place in it is its index
    in the rounds of lr.encrypt."""
    return [(g.index, b) for g in layout.groups for b in range(g.blocks)]


UPLOAD_ROUND_BYTES = 64 << 20  # about what one hospital's reply to one upload round carries


def ciphertext_bytes(params) -> int:
    """Bytes of a fresh ciphertext in SEAL's form (two polynomials, every prime but the special one)."""
    return 2 * params.n * (len(params.coeff_bits) - 1) * 8


def block_ciphertexts(layout: Layout, columns: int) -> int:
    """Ciphertexts of one data block of the training layout, at most: `columns` (d + 1), or its chunks
    where the layout packs features side by side (breast cancer: 4, not 31). What an upload round's
    size is counted in."""
    return max(g.chunks(columns) for g in layout.groups)


def packed_ciphertext_bytes(params) -> int:
    """Bytes of a fresh ciphertext in the packed wire form (residues at their primes' bit widths), at most."""
    return 2 * sum((params.n * int(b) + 7) // 8 for b in params.coeff_bits[:-1]) + 256


def blocks_per_round(params, columns: int) -> int:
    """Data blocks a hospital encrypts per round of an upload (lr.encrypt, lr.encrypt_eval), `columns`
    ciphertexts each (block_ciphertexts; EvalLayout.block_ciphertexts): a reply of about
    UPLOAD_ROUND_BYTES, so that neither the hospital nor the server holds a whole study's rows at once;
    rows fitting in one round go in one round, as before."""
    return max(1, UPLOAD_ROUND_BYTES // (int(columns) * ciphertext_bytes(params)))


def upload_rounds(blocks: int, params, columns: int) -> int:
    """The most rounds an upload of `blocks` blocks takes for one hospital (all of them its own)."""
    return max(1, -(-int(blocks) // blocks_per_round(params, columns)))


def upload_window(fields, own: list[int], params, columns: int, step: str) -> tuple[list[int], int | None]:
    """The blocks a hospital encrypts in one round of an upload: of its own blocks (their places in the
    upload order, ascending), those from `start` on, at most `count` and at most `blocks_per_round`; and
    where the next round starts (None: nothing left)."""
    from ..errors import ProtocolError

    start, count = fields.get("start", 0), fields.get("count", blocks_per_round(params, columns))
    for name, value, low in (("start", start, 0), ("count", count, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ProtocolError(f"{step}: field {name} must be an integer of at least {low}, got {value!r}")
    ahead = [i for i in own if i >= start]
    take = ahead[: min(count, blocks_per_round(params, columns))]
    rest = ahead[len(take):]
    return take, (rest[0] if rest else None)


def fold_sizes(y: np.ndarray, folds: int, key: bytes, rows: np.ndarray) -> np.ndarray:
    """Rows per fold of a hospital's own assignment (mpclr.plain.folds.secret_folds with its fold key), so
    that the study's manifest can count the secure evaluation's layout before the study starts. Public
    once the folds are assigned (lr.folds shows the server every row's fold)."""
    from ..plain.folds import secret_folds

    return np.bincount(secret_folds(y, folds, key, rows), minlength=folds)


def constant_part(layout: Layout, z: np.ndarray, own_folds: np.ndarray, train_counts: np.ndarray):
    """Yield (group, chunk, slot vector) of this party's share of C_k = (1 / 2 n_k) sum_{i not in fold k} z_i,
    in the weights' layout: the constant part of the gradient, summed by the server over parties."""
    own_folds = np.asarray(own_folds)
    n = np.asarray(train_counts, dtype=np.float64)
    C = np.zeros((layout.folds, z.shape[1]))
    for k in range(layout.folds):
        C[k] = 0.5 * z[own_folds != k].sum(axis=0) / n[k]
    for g in layout.groups:
        for c in range(g.chunks(z.shape[1])):
            yield g.index, c, layout.pack_weights(g, c, C)
