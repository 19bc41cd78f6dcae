"""How all fold models share ciphertext slots (public: every party and the server compute the same).

The x fold models of cross-validation are trained in one encrypted pass. Models are grouped by the
binary decomposition of the fold count (10 = 8 + 2), and within a group's ciphertexts the slots
interleave samples and models, model-minor:

    slot = sample_in_block * m + model_in_group          (m = model slots in the group, a power of two)

When all rows fit in one block even with m rounded up to a power of two (small data sets), a single
group holds every model (5 folds in m = 8 slots, three unused): the data take one block either way,
and there are half as many weight ciphertexts to refresh.

so a ciphertext holds B = slots / m samples, each repeated once per model. Data ciphertexts carry a
feature of z = y' [1, x] for B samples; weight ciphertexts carry each model's weight in every slot of
that model. A rotate-and-sum by m, 2m, 4m, ... B m / 2 sums over samples and lands the result already
broadcast in the weights' layout. No slot is wasted when the row count fills the blocks.

Small studies (each fold fits a lane several times) pack k features side by side ("segments", k a power of
two, given the public fold sizes): a ciphertext holds k segments of S = slots / k slots, segment f feature
c k + f of chunk c, and inside a segment samples and models as above:

    slot = f * S + sample_in_block * m + model_in_group          (k = 1: the layout above)

A block then holds S / m samples, and a weight ciphertext carries k features (each in its segment, in every
slot of its model): breast cancer's 31 weights take 4 ciphertexts instead of 31, so a fold model is 4
refresh outputs per iteration, not 31. The features' sum t = z . w is a rotate-and-sum over S, 2S, ...
(log2 k rotations per block, keys at the level t lands at); the sum over a block's samples, inside the
refresh, is a rotate-and-sum over one segment's window (m, ..., S / 2), a slot mask keeping its first
position (a public polynomial on the refresh's exact integers) and a rotate-and-sum back over the segment,
so the weights arrive broadcast in their segments. k is the secure evaluation's copies per lane (at most
the features' next power of two), so that the evaluation scores its rows with the same weight ciphertexts:
one evaluation copy per segment.

Where a fold fills a lane (paper scale, 49,152 x 10: the evaluation holds one copy per lane), the training
can pack TRAIN_SEGMENTS features side by side all the same (`Group.unpack`; off by default, see there): its
weights are about k times fewer refresh outputs in every round but the last, and the last refresh round
outputs the evaluation's one-feature weights instead (per feature, the window sum kept at its own segment's
first positions and rotated-and-summed over the whole lane: every slot of its model). The price: a block
holds k times fewer samples (so a hospital uploads ceil((d + 1) / k) k / (d + 1) times the data ciphertexts,
and the sigmoid runs on k times as many blocks), log2 k rotation keys, and a weight averaged over its
segment's copies, not its lane's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError

__all__ = ["Group", "Layout", "segments_for", "TRAIN_SEGMENTS"]

# features side by side in the training where a fold fills a lane (the evaluation's layout takes one feature
# per ciphertext there; 1: one feature per ciphertext, no unpacking). Paper scale, d = 10, 3 hospitals, from
# 707.2 MB (benchmarks/bytes.py --plan): k = 2 saves 44 MB per hospital, 4 saves 78 (refreshes -99, uploads +9,
# keys +12; 628.7 MB measured), 8 only 24 (its uploads 16 / 11 times as many). Off: with k = 4 the training
# took 3.1 times as long (268.9 s against 87.7, back to back at load 8-12; k = 2: 180.4 s), the sigmoid running
# on 4 times as many blocks, each a quarter used (README, "Bytes per hospital")
TRAIN_SEGMENTS = 1


@dataclass(frozen=True)
class Group:
    index: int
    models: tuple[int, ...]  # fold ids trained in this group
    samples_per_block: int
    blocks: int
    m: int  # model slots per sample (a power of two, at least len(models))
    segments: int = 1  # k features side by side (a power of two; 1: one feature per ciphertext)
    unpack: bool = False  # the last refresh outputs one feature per ciphertext (the evaluation's layout)

    @property
    def final_segments(self) -> int:
        """Features side by side in the trained weights (the secure evaluation's layout)."""
        return 1 if self.unpack else self.segments

    def final_chunks(self, features: int) -> int:
        """Weight ciphertexts of the trained model: one per feature where the last refresh unpacks."""
        return int(features) if self.unpack else self.chunks(features)

    def chunks(self, features: int) -> int:
        """Weight (and data) ciphertexts per block: ceil(features / k)."""
        return -(-int(features) // self.segments)

    @property
    def segment_slots(self) -> int:
        return self.samples_per_block * self.m


def _next_pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


def segments_for(slots: int, m: int, sizes, features: int) -> int:
    """Features packed side by side in a group of stride m whose folds have `sizes` rows: the secure
    evaluation's copies per lane (slots / m over the largest fold's next power of two, as
    mpclr.evaluation.layout places them), at most the features' next power of two; 1 where a fold fills a lane."""
    lane = slots // m
    positions = min(_next_pow2(max(max(int(x) for x in sizes), 2)), lane)
    return max(1, min(lane // positions, _next_pow2(features)))


class Layout:
    """fold_sizes and features (public once the folds are dealt): pack features side by side where the
    folds are small (`segments_for`); without them, one feature per ciphertext."""

    def __init__(self, slots: int, n_rows: int, folds: int, fold_sizes=None, features: int | None = None):
        if slots < 2 or slots & (slots - 1):
            raise ParameterError(f"slot count must be a power of two, got {slots}")
        if not 1 <= folds <= slots:
            raise ParameterError(f"parameter folds must be in [1, {slots}], got {folds}")
        if n_rows < 1:
            raise ParameterError("no rows to lay out")
        self.slots, self.n_rows, self.folds = slots, n_rows, folds
        padded = 1 << (folds - 1).bit_length()
        if n_rows <= slots // padded:
            groups = [Group(0, tuple(range(folds)), slots // padded, 1, padded)]
        else:
            groups, start = [], 0
            for bit in reversed(range(folds.bit_length())):
                size = 1 << bit
                if folds & size:
                    b = slots // size
                    groups.append(Group(len(groups), tuple(range(start, start + size)), b, -(-n_rows // b), size))
                    start += size
        self.fold_sizes = None if fold_sizes is None else tuple(int(x) for x in fold_sizes)
        self.features = None if features is None else int(features)
        if self.fold_sizes is not None and self.features is not None and folds > 1:
            if len(self.fold_sizes) != folds or sum(self.fold_sizes) != n_rows:
                raise ParameterError(f"fold sizes {list(self.fold_sizes)} do not give {n_rows} rows in {folds} folds")
            packed = []
            for g in groups:
                k = segments_for(slots, g.m, [self.fold_sizes[i] for i in g.models], self.features)
                unpack = k == 1 and self.features > 1 and TRAIN_SEGMENTS > 1
                if unpack:
                    k = min(TRAIN_SEGMENTS, _next_pow2(self.features))
                b = slots // (g.m * k)
                packed.append(Group(g.index, g.models, b, -(-n_rows // b), g.m, k, unpack))
            groups = packed
        self.groups = groups

    @property
    def packed(self) -> bool:
        return any(g.segments > 1 for g in self.groups)

    def describe(self) -> dict:
        return {
            "slots": self.slots,
            "rows": self.n_rows,
            "folds": self.folds,
            "fold_sizes": None if self.fold_sizes is None else list(self.fold_sizes),
            "features": self.features,
            "groups": [
                {"models": list(g.models), "samples_per_block": g.samples_per_block, "blocks": g.blocks,
                 "segments": g.segments, **({"unpack": True} if g.unpack else {})}
                for g in self.groups
            ],
        }

    @classmethod
    def from_description(cls, spec: dict) -> Layout:
        return cls(int(spec["slots"]), int(spec["rows"]), int(spec["folds"]), spec.get("fold_sizes"),
                   spec.get("features"))

    def rotation_steps(self) -> list[int]:
        steps = set()
        for g in self.groups:
            steps.update(_doublings(g.m, self.slots))
        return sorted(steps)

    def sum_steps(self, group: Group) -> list[int]:
        """Rotations whose rotate-and-sum adds up all samples of a block, per model slot (packed: a window of
        one segment, exact at each segment's first position)."""
        return _doublings(group.m, group.segment_slots)

    def segment_steps(self, group: Group) -> list[int]:
        """Rotations whose rotate-and-sum adds up the segments (the features of a chunk): S, 2S, ..."""
        return _doublings(group.segment_slots, self.slots)

    def first_positions(self, group: Group) -> np.ndarray:
        """The slot mask of every segment's first sample position (all models): where a window sum is exact."""
        out = np.zeros((group.segments, group.samples_per_block, group.m))
        out[:, 0, :] = 1.0
        return out.reshape(-1)

    def segment_first_positions(self, group: Group, segment: int) -> np.ndarray:
        """The slot mask of one segment's first sample position (all models): where the last refresh of an
        unpacking group takes a feature's window sum from, before broadcasting it over the lane."""
        out = np.zeros((group.segments, group.samples_per_block, group.m))
        out[segment, 0, :] = 1.0
        return out.reshape(-1)

    def lane_steps(self, group: Group) -> list[int]:
        """Rotations whose rotate-and-sum adds up every position of a model's lane: m, 2m, ..., slots / 2."""
        return _doublings(group.m, self.slots)

    def feature_of(self, group: Group, chunk: int, segment: int) -> int:
        return chunk * group.segments + segment

    def rows_of_block(self, group: Group, block: int) -> range:
        b = group.samples_per_block
        return range(block * b, min((block + 1) * b, self.n_rows))

    def pack_rows(self, group: Group, block: int, values: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Slot vector of a data block: values[r] (one per global row) repeated over the group's models.

        With `rows` (the global row indices a party holds; values then has one entry per held row) only
        those rows are filled and the rest stay zero, so parties' blocks add up at the server."""
        out = np.zeros((group.samples_per_block, group.m))
        span = self.rows_of_block(group, block)
        if rows is None:
            out[: len(span)] = np.asarray(values, dtype=np.float64)[span.start : span.stop, None]
        else:
            rows = np.asarray(rows)
            sel = (rows >= span.start) & (rows < span.stop)
            out[rows[sel] - span.start] = np.asarray(values, dtype=np.float64)[sel, None]
        return out.reshape(-1)

    def pack_chunk(self, group: Group, block: int, chunk: int, Z: np.ndarray, rows: np.ndarray | None = None):
        """Slot vector of a data block's chunk: Z[r, c k + f] in segment f (one column per feature, rows as
        in pack_rows); features beyond Z's columns stay zero. k = 1: pack_rows of column c."""
        Z = np.asarray(Z, dtype=np.float64)
        out = np.zeros((group.segments, group.segment_slots))
        for f in range(group.segments):
            j = self.feature_of(group, chunk, f)
            if j < Z.shape[1]:
                out[f] = self.pack_rows(group, block, Z[:, j], rows)
        return out.reshape(-1)

    def pack_mask(self, group: Group, block: int, fold_of_row: np.ndarray, per_model: np.ndarray) -> np.ndarray:
        """Slot vector with per_model[k] where the block's sample trains model k (not in fold k), else 0 (in
        every segment)."""
        out = np.zeros((group.samples_per_block, group.m))
        span = self.rows_of_block(group, block)
        folds = np.asarray(fold_of_row)[span.start : span.stop]
        for j, k in enumerate(group.models):  # unused model slots (j >= len(models)) stay zero
            out[: len(span), j] = np.where(folds != k, per_model[k], 0.0)
        return np.tile(out.reshape(-1), group.segments)

    def pack_models(self, group: Group, per_model: np.ndarray) -> np.ndarray:
        """Slot vector carrying per_model[k] in every slot of model k (a weight's layout, one feature)."""
        row = np.zeros(group.m)
        row[: len(group.models)] = [per_model[k] for k in group.models]
        return np.tile(row, self.slots // group.m)

    def pack_weights(self, group: Group, chunk: int, W: np.ndarray) -> np.ndarray:
        """A weight ciphertext's slot vector: W[k, c k + f] in every slot of model k in segment f (W: one row
        per fold, one column per feature)."""
        W = np.asarray(W, dtype=np.float64)
        out = np.zeros((group.segments, group.samples_per_block, group.m))
        for f in range(group.segments):
            j = self.feature_of(group, chunk, f)
            if j < W.shape[1]:
                out[f, :, : len(group.models)] = [W[k, j] for k in group.models]
        return out.reshape(-1)

    def unpack_models(self, group: Group, slots: np.ndarray) -> dict[int, float]:
        """Each model's value from a one-feature weight-layout slot vector (averaged over its copies)."""
        v = np.asarray(slots, dtype=np.float64)[: self.slots].reshape(-1, group.m)
        return {k: float(v[:, j].mean()) for j, k in enumerate(group.models)}

    def unpack_weights(self, group: Group, chunk: int, slots: np.ndarray, features: int) -> dict[tuple, float]:
        """{(model, feature): value} from a trained weight ciphertext's slots (each averaged over its segment;
        a group that unpacks: chunk is the feature, averaged over the lane)."""
        if group.unpack:
            return {(k, chunk): v for k, v in self.unpack_models(group, slots).items()} if chunk < features else {}
        v = np.asarray(slots, dtype=np.float64)[: self.slots].reshape(group.segments, -1, group.m)
        out = {}
        for f in range(group.segments):
            j = self.feature_of(group, chunk, f)
            if j < features:
                out.update({(k, j): float(v[f, :, i].mean()) for i, k in enumerate(group.models)})
        return out

    def blocks_with_rows(self, group: Group, rows: np.ndarray) -> list[int]:
        return np.unique(np.asarray(rows, dtype=np.int64) // group.samples_per_block).tolist()


def _doublings(step: int, limit: int) -> list[int]:
    """step, 2 step, 4 step, ... below limit: the rotations of a rotate-and-sum over limit / step positions."""
    out = []
    while step < limit:
        out.append(step)
        step *= 2
    return out
