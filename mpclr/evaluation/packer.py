"""The packer: the agreed counts of many comparison results gathered into as few ciphertexts as possible
before they are key-switched to the researcher."""

from __future__ import annotations

import math

import numpy as np

from ..training.blocks import Enc
from .comparison import LadderOps
from .layout import EvalLayout


class Packer:
    """Places count ciphertexts (level 1, after the rotate-and-sum) into as few ciphertexts as possible
    and masks everything else to zero (level 0), so that a decryption reveals exactly the agreed counts.

    Groups whose folds fill a lane (one copy): every slot of a lane holds the lane's count, so results
    are masked into consecutive blocks of one shared ciphertext, no rotation. Groups with copies: the
    counts sit at position 0 of each copy; up to 1 + log2(P) results share a ciphertext, the i-th rotated
    left by 2^(i-1) m to position P - 2^(i-1) of the copy before (keys of the rotate-and-sum)."""

    def __init__(self, ops: LadderOps, layout: EvalLayout):
        self.ops, self.layout = ops, layout
        self.block = max(g.m for g in layout.groups)
        self.shared: list[tuple[Enc | None, list]] = []
        self.shared_used = 0
        self.own: list[tuple[Enc, list]] = []

    def add(self, group: int, results: list[tuple[Enc, str, list]]) -> None:
        """results: (ciphertext, kind, [(copy, lane, theta)]) of one group."""
        grp = self.layout.groups[group]
        slots = self.layout.slots
        if grp.copies == 1:
            for enc, kind, entries in results:
                if not self.shared or self.shared_used + self.block > slots:
                    self.shared.append((None, []))
                    self.shared_used = 0
                base = self.shared_used
                self.shared_used += self.block
                mask = np.zeros(slots)
                acc, table = self.shared[-1]
                for _, j, theta in entries:
                    mask[base + j] = 1.0
                    table.append((base + j, grp.models[j], kind, theta))
                if enc is not None:  # None: counting only (mpclr.manifest)
                    part = self.ops.cmul(enc, mask, 0)
                    self.shared[-1] = (part if acc is None else self.ops.add(acc, part), table)
            return
        offsets = [0] + [1 << i for i in range(int(math.log2(grp.positions)))]
        span = grp.copies * grp.positions
        for start in range(0, len(results), len(offsets)):
            table, acc = [], None
            for (enc, kind, entries), off in zip(results[start : start + len(offsets)], offsets):
                mask = np.zeros(slots)
                for beta, j, theta in entries:
                    slot = ((beta * grp.positions - off) % span) * grp.m + j
                    mask[slot] = 1.0
                    table.append((slot, grp.models[j], kind, theta))
                if enc is not None:
                    part = self.ops.cmul(self.ops.rotate(enc, off * grp.m) if off else enc, mask, 0)
                    acc = part if acc is None else self.ops.add(acc, part)
            self.own.append((acc, table))

    def finish(self) -> list[tuple[Enc, list]]:
        return [(ct, table) for ct, table in self.shared if table] + self.own
