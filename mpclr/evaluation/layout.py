"""Where each test row sits for secure evaluation (public: every party and the server compute the same).

Training repeats every sample once per model of its group (mpclr.training.layout); scoring needs each row only
once, with its own fold's model. The evaluation layout keeps the training groups (10 folds = 8 + 2) and
their slot pattern, but puts each row only in the slot of the model that did not see it:

    slot = (copy * P + position) * m + lane          lane = index of the row's fold in its group

(m is the group's slot stride, a power of two; a group may leave lanes unused, e.g. 10 folds in m = 16
when the training layout puts every model in one group). A weight ciphertext of the group already holds
model models[lane] in every slot of that lane, so a row's score is sum_j x_j * W_j slot by slot: no
rotation, no mask, one level.

`position` is the row's rank among its fold's rows (global row order). A fold larger than a lane
(slots / m rows) is split over ciphertexts of P = slots / m positions. Smaller folds take P = the next
power of two of the largest fold in the group and are repeated in `copies` = slots / (m P) copies, so
that one comparison ciphertext tests each row against `copies` thresholds at once. A rotate-and-sum
over m, 2m, ..., (P / 2) m then leaves at slot copy * P * m + lane the sum over that fold's rows in
that copy.

Where folds fill whole lanes, each group's last ciphertext is partly empty; two such ciphertexts whose
rows fit together share one block (the second group's rows in the slots the first leaves free in their
residue classes), so 49,152 rows in 10 folds take 6 blocks, not 7. The rows of a shared block are scored with
their own group's weights, kept apart by plaintext masks (one level, before the scores' refresh), and
counted apart the same way.

The features are sent in every copy (the scores are computed in every copy: no refresh copies them).
Where the training packs k features side by side (mpclr.training.layout: k segments, k = these copies, or
fewer with few features), a weight ciphertext holds feature c k + f in segment f, and the rows' features are
sent the same way: chunk c's ciphertext holds feature c k + f in the copies of segment f, so a block takes
ceil((d + 1) / k) feature ciphertexts (breast cancer: 4, not 30), and a rotate-and-sum over the segments
(S, 2S, ...: the training's own keys) leaves every copy with the whole score. Labels are sent in every
copy. Slots without a row (padding) are zero in every party's data; the evaluation gives them a threshold
above every score, so they count for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ProtocolError
from ..training.layout import Layout

__all__ = ["EvalGroup", "EvalLayout", "Member", "party_vectors", "own_blocks"]


@dataclass(frozen=True)
class EvalGroup:
    index: int
    models: tuple[int, ...]  # fold ids of the lanes
    m: int  # slot stride: lanes per position, a power of two >= len(models)
    positions: int  # P: rows per lane per copy, a power of two
    copies: int
    ciphertexts: int
    sizes: tuple[int, ...]  # rows of each lane's fold
    segments: int = 1  # the training's features side by side (mpclr.training.layout): copies / segments each

    @property
    def lanes(self) -> int:
        return len(self.models)

    def rotate_sum_steps(self) -> list[int]:
        """m, 2m, ..., (P / 2) m: sums each lane over the positions of one copy."""
        out, step = [], self.m
        while step < self.m * self.positions:
            out.append(step)
            step *= 2
        return out


def _next_pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


@dataclass(frozen=True)
class Member:
    """Part of a data block: logical ciphertext `ciphertext` of `group`. A block shared by two groups gives
    its second member the slots the first leaves free in each of its lanes' residue classes."""

    group: int
    ciphertext: int


class EvalLayout:
    """features: the training's columns (d + 1, the intercept included), when its layout packs them."""

    def __init__(self, slots: int, fold_of_row, folds: int, features: int | None = None):
        fold_of_row = np.asarray(fold_of_row, dtype=np.int64)
        if fold_of_row.ndim != 1 or fold_of_row.size == 0:
            raise ProtocolError("the evaluation layout needs the public fold id of every row")
        if fold_of_row.min() < 0 or fold_of_row.max() >= folds:
            raise ProtocolError(f"fold ids must lie in 0..{folds - 1}")
        self.slots, self.folds = int(slots), int(folds)
        self.fold_of_row = fold_of_row
        self.n_rows = fold_of_row.size
        sizes = np.bincount(fold_of_row, minlength=folds)
        self.features = None if features is None else int(features)
        self.train_layout = Layout(self.slots, self.n_rows, self.folds, sizes if folds > 1 else None, self.features)
        # rank of each row among its fold's rows, in global row order
        self.rank = np.empty(self.n_rows, dtype=np.int64)
        for k in range(folds):
            idx = np.flatnonzero(fold_of_row == k)
            self.rank[idx] = np.arange(idx.size)
        self.groups: list[EvalGroup] = []
        self.group_of_fold = np.empty(folds, dtype=np.int64)
        self.lane_of_fold = np.empty(folds, dtype=np.int64)
        for g in self.train_layout.groups:
            lane_len = self.slots // g.m
            biggest = max(int(sizes[k]) for k in g.models)
            positions = min(_next_pow2(max(biggest, 2)), lane_len)
            self.groups.append(
                EvalGroup(
                    g.index,
                    tuple(g.models),
                    g.m,
                    positions,
                    lane_len // positions,
                    -(-biggest // positions),
                    tuple(int(sizes[k]) for k in g.models),
                    g.final_segments,
                )
            )
            for j, k in enumerate(g.models):
                self.group_of_fold[k] = g.index
                self.lane_of_fold[k] = j
        self._plan_blocks()

    def _plan_blocks(self) -> None:
        """One data block per logical ciphertext, except that the partial last ciphertexts of two groups
        whose folds fill whole lanes share one block when they fit: the first keeps its usual slots, the
        second takes, lane by lane, the free slots of its residue class (strides are powers of two, so
        the classes nest). The rows of a shared block need their own group's weights: plaintext masks."""
        self.blocks: list[tuple[Member, ...]] = []
        self._where: dict[tuple[int, int], int] = {}  # (group, ciphertext) -> block
        self._table: dict[tuple[int, int], np.ndarray] = {}  # (group, ciphertext) -> slot of (lane, position)
        partial = []
        for grp in self.groups:
            for c in range(grp.ciphertexts):
                if grp.copies == 1 and c == grp.ciphertexts - 1 and self.used_positions(grp.index, c) < grp.positions:
                    partial.append((grp.index, c))
                    continue
                self._where[(grp.index, c)] = len(self.blocks)
                self.blocks.append((Member(grp.index, c),))
        partial.sort(key=lambda gc: -self.used_positions(*gc) * self.groups[gc[0]].m)
        while partial:
            first = partial.pop(0)
            block = len(self.blocks)
            self._where[first] = block
            members = [Member(*first)]
            taken = self._slots(first)
            for i, second in enumerate(partial):
                table = self._fit(second, taken)
                if table is not None:
                    partial.pop(i)
                    self._where[second], self._table[second] = block, table
                    members.append(Member(*second))
                    break
            self.blocks.append(tuple(members))

    def _lane_rows(self, group: int, ciphertext: int) -> list[int]:
        grp = self.groups[group]
        return [max(0, min(grp.positions, n - ciphertext * grp.positions)) for n in grp.sizes]

    def _slots(self, gc: tuple[int, int]) -> np.ndarray:
        """Slot of every (lane, position) of a logical ciphertext (copy 0); -1 where no row."""
        if gc in self._table:
            return self._table[gc]
        grp = self.groups[gc[0]]
        out = np.full((grp.lanes, grp.positions), -1, dtype=np.int64)
        for j, rows in enumerate(self._lane_rows(*gc)):
            out[j, :rows] = np.arange(rows) * grp.m + j
        return out

    def _fit(self, gc: tuple[int, int], taken: np.ndarray) -> np.ndarray | None:
        """Slots for gc's rows among those a block's first member (slot table `taken`) leaves free, or None."""
        grp = self.groups[gc[0]]
        free = np.ones(self.slots, dtype=bool)
        free[taken[taken >= 0]] = False
        out = np.full((grp.lanes, grp.positions), -1, dtype=np.int64)
        for j, rows in enumerate(self._lane_rows(*gc)):
            cand = np.flatnonzero(free & (np.arange(self.slots) % grp.m == j))
            if cand.size < rows:
                return None
            out[j, :rows] = cand[:rows]
        return out

    def used_positions(self, group: int, ciphertext: int) -> int:
        """Positions of a logical ciphertext that hold a row in some lane."""
        return max(self._lane_rows(group, ciphertext))

    # ------------------------------------------------------------------ wire form
    def describe(self) -> dict:
        return {"slots": self.slots, "folds": self.folds, "fold_of_row": np.asarray(self.fold_of_row, "<i4").tobytes(),
                "features": self.features}

    @classmethod
    def from_description(cls, spec: dict) -> EvalLayout:
        return cls(int(spec["slots"]), np.frombuffer(bytes(spec["fold_of_row"]), dtype="<i4"), int(spec["folds"]),
                   spec.get("features"))

    def columns(self, block: int, d: int) -> list[int]:
        """The data columns of a block: d features then the label (column d); in a packed group the
        ceil((d + 1) / k) chunks of features then the label."""
        grp = self.groups[self.blocks[block][0].group]
        if grp.segments == 1:
            return list(range(d + 1))
        return [*range(-(-(d + 1) // grp.segments)), d]

    def block_ciphertexts(self, d: int) -> int:
        """Ciphertexts of one data block at most (its columns): what an upload round's size is counted in."""
        return max(len(self.columns(b, d)) for b in range(len(self.blocks)))

    # ------------------------------------------------------------------ placement
    def groups_of(self, block: int) -> list[int]:
        return [mem.group for mem in self.blocks[block]]

    def shared(self, block: int) -> bool:
        """A block holding rows of two groups (their scores and counts are kept apart by masks)."""
        return len(self.blocks[block]) > 1

    def place(self, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(block, group, slot in copy 0) of each global row; its other copies follow every P m slots."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_rows):
            raise ProtocolError(f"row indices must lie in 0..{self.n_rows - 1}")
        folds = self.fold_of_row[rows]
        g = self.group_of_fold[folds]
        lane = self.lane_of_fold[folds]
        positions = np.array([grp.positions for grp in self.groups])[g]
        c, p = np.divmod(self.rank[rows], positions)
        block = np.empty(rows.size, dtype=np.int64)
        slot = np.empty(rows.size, dtype=np.int64)
        for key in set(zip(g.tolist(), c.tolist())):
            sel = (g == key[0]) & (c == key[1])
            block[sel] = self._where[key]
            slot[sel] = self._slots(key)[lane[sel], p[sel]]
        return block, g, slot

    def pack(self, block: int, rows, values, copies: int | None = None, group: int | None = None) -> np.ndarray:
        """Slot vector of one data block: values[i] at the slots of rows[i] (in the first `copies` copies,
        default all; only rows of `group` if given), zeros elsewhere."""
        rows = np.asarray(rows, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        b, g, first = self.place(rows)
        sel = b == block
        if group is not None:
            sel &= g == group
        out = np.zeros(self.slots)
        for grp_index in set(g[sel].tolist()):
            grp = self.groups[grp_index]
            pick = sel & (g == grp_index)
            span = grp.positions * grp.m
            for copy in range(grp.copies if copies is None else copies):
                out[first[pick] + copy * span] = values[pick]
        return out

    def rows_of_block(self, block: int) -> np.ndarray:
        """The global rows placed in a block, ascending (every row placed once, then looked up: a block's
        work is its own rows', not the study's)."""
        if getattr(self, "_by_block", None) is None:
            blocks, _, _ = self.place(np.arange(self.n_rows))
            order = np.argsort(blocks, kind="stable")
            self._by_block = (order, np.searchsorted(blocks[order], np.arange(len(self.blocks) + 1)))
        order, bounds = self._by_block
        return order[bounds[block] : bounds[block + 1]]

    def occupied(self, block: int, copies: int | None = None, group: int | None = None) -> np.ndarray:
        """True at the slots that hold a row (in the first `copies` copies; of `group` only if given)."""
        rows = self.rows_of_block(block)
        return self.pack(block, rows, np.ones(rows.size), copies, group) > 0

    def threshold_vector(self, block: int, thresholds: dict, pad: float) -> np.ndarray:
        """thresholds[group][lane, copy] at the slots of that lane and copy that hold a row of the block,
        `pad` at every other slot."""
        out = np.full(self.slots, float(pad))
        for mem in self.blocks[block]:
            grp = self.groups[mem.group]
            t = np.asarray(thresholds.get(mem.group, np.full((grp.lanes, grp.copies), pad)), dtype=np.float64)
            if t.shape != (grp.lanes, grp.copies):
                raise ProtocolError(
                    f"group {mem.group} needs thresholds of shape {(grp.lanes, grp.copies)}, got {t.shape}"
                )
            full = np.full((grp.m, grp.copies), float(pad))
            full[: grp.lanes] = t
            grid = np.broadcast_to(full.T[:, None, :], (grp.copies, grp.positions, grp.m)).reshape(-1)
            rows = self.occupied(block, group=mem.group)
            out[rows] = grid[rows]
        return out

    def count_slots(self, group: int) -> np.ndarray:
        """(copies, lanes) slot indices where a rotate-and-sum leaves each copy's per-lane sums."""
        grp = self.groups[group]
        return np.arange(grp.copies)[:, None] * grp.positions * grp.m + np.arange(grp.lanes)[None, :]


def party_vectors(layout: EvalLayout, rows, X, y, mean, std, scale: float, only=None):
    """Yield (block, column, slot vector) for every data block holding some of this party's rows (with
    `only`, a set of blocks, those only): columns 0..d-1 are the standardized features divided by `scale`
    (the training's mean and std), column d the label, each in every copy (the scores are computed in
    every copy: no refresh copies them); in a packed group columns 0.. are chunks, feature c k + f (1..d;
    0 is the intercept, the server's) in the copies of segment f. Everything else stays zero, so the
    parties' ciphertexts add up at the server."""
    X = np.asarray(X, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    std = np.where(np.asarray(std) > 0, std, 1.0)
    blocks, _, _ = layout.place(rows)
    order = np.argsort(blocks, kind="stable")
    d = X.shape[1]
    for block in sorted(set(blocks.tolist())):
        if only is not None and block not in only:
            continue
        lo, hi = np.searchsorted(blocks[order], [block, block + 1])
        mine = order[lo:hi]  # this block's rows only: packing it costs its rows, not the hospital's
        cols = np.hstack([(X[mine] - mean) / std / float(scale), np.asarray(y, dtype=np.float64)[mine, None]])
        here = rows[mine]
        grp = layout.groups[layout.blocks[block][0].group]
        if grp.segments == 1:
            for j in range(d + 1):
                yield block, j, layout.pack(block, here, cols[:, j])
            continue
        per = grp.copies // grp.segments
        for c in layout.columns(block, d)[:-1]:
            out = np.zeros(layout.slots)
            for f in range(grp.segments):
                j = c * grp.segments + f  # the training's feature index: x_(j-1)
                if 1 <= j <= d:
                    out += layout.pack(block, here, cols[:, j - 1], copies=(f + 1) * per) - layout.pack(
                        block, here, cols[:, j - 1], copies=f * per)
            yield block, c, out
        yield block, d, layout.pack(block, here, cols[:, d])


def own_blocks(layout: EvalLayout, rows) -> list[int]:
    """The blocks holding some of a hospital's rows, ascending (its part of lr.encrypt_eval's rounds)."""
    blocks, _, _ = layout.place(np.asarray(rows, dtype=np.int64))
    return sorted(set(blocks.tolist()))
