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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError

__all__ = ["Group", "Layout"]


@dataclass(frozen=True)
class Group:
    index: int
    models: tuple[int, ...]  # fold ids trained in this group
    samples_per_block: int
    blocks: int
    m: int  # model slots per sample (a power of two, at least len(models))


class Layout:
    def __init__(self, slots: int, n_rows: int, folds: int):
        if slots < 2 or slots & (slots - 1):
            raise ParameterError(f"slot count must be a power of two, got {slots}")
        if not 1 <= folds <= slots:
            raise ParameterError(f"parameter folds must be in [1, {slots}], got {folds}")
        if n_rows < 1:
            raise ParameterError("no rows to lay out")
        self.slots, self.n_rows, self.folds = slots, n_rows, folds
        padded = 1 << (folds - 1).bit_length()
        if n_rows <= slots // padded:
            self.groups = [Group(0, tuple(range(folds)), slots // padded, 1, padded)]
            return
        groups, start = [], 0
        for bit in reversed(range(folds.bit_length())):
            size = 1 << bit
            if folds & size:
                b = slots // size
                groups.append(Group(len(groups), tuple(range(start, start + size)), b, -(-n_rows // b), size))
                start += size
        self.groups = groups

    def describe(self) -> dict:
        return {
            "slots": self.slots,
            "rows": self.n_rows,
            "folds": self.folds,
            "groups": [
                {"models": list(g.models), "samples_per_block": g.samples_per_block, "blocks": g.blocks}
                for g in self.groups
            ],
        }

    def rotation_steps(self) -> list[int]:
        steps = set()
        for g in self.groups:
            step = g.m
            while step < self.slots:
                steps.add(step)
                step *= 2
        return sorted(steps)

    def sum_steps(self, group: Group) -> list[int]:
        """Rotations whose rotate-and-sum adds up all samples of a block, per model slot."""
        out, step = [], group.m
        while step < self.slots:
            out.append(step)
            step *= 2
        return out

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

    def pack_mask(self, group: Group, block: int, fold_of_row: np.ndarray, per_model: np.ndarray) -> np.ndarray:
        """Slot vector with per_model[k] where the block's sample trains model k (not in fold k), else 0."""
        out = np.zeros((group.samples_per_block, group.m))
        span = self.rows_of_block(group, block)
        folds = np.asarray(fold_of_row)[span.start : span.stop]
        for j, k in enumerate(group.models):  # unused model slots (j >= len(models)) stay zero
            out[: len(span), j] = np.where(folds != k, per_model[k], 0.0)
        return out.reshape(-1)

    def pack_models(self, group: Group, per_model: np.ndarray) -> np.ndarray:
        """Slot vector carrying per_model[k] in every slot of model k (a weight's layout)."""
        row = np.zeros(group.m)
        row[: len(group.models)] = [per_model[k] for k in group.models]
        return np.tile(row, group.samples_per_block)

    def unpack_models(self, group: Group, slots: np.ndarray) -> dict[int, float]:
        """Each model's value from a weight-layout slot vector (averaged over its copies)."""
        v = np.asarray(slots, dtype=np.float64)[: self.slots].reshape(group.samples_per_block, group.m)
        return {k: float(v[:, j].mean()) for j, k in enumerate(group.models)}

    def blocks_with_rows(self, group: Group, rows: np.ndarray) -> list[int]:
        rows = np.asarray(rows)
        return sorted(set((rows // group.samples_per_block).tolist()))
