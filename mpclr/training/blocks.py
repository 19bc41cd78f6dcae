"""The per-block arithmetic of encrypted training, for a shard of data blocks.

A `BlockEngine` holds some data blocks Z (and the masked copies ZM it derives) and, given the current
weights V, returns this shard's part of the gradient, already summed over its samples. It needs only
a Pyfhel object with the collective public and evaluation keys, so the server can run one per core in
worker processes (Pyfhel holds the GIL) and add their results. When a step would go below the refresh
level, it asks `refresh` (a callback to the server) to refresh its per-sample ciphertexts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from Pyfhel import PyCtxt

from ..errors import ProtocolError
from .layout import Layout


@dataclass
class Enc:
    ct: PyCtxt
    level: int


class BlockEngine:
    def __init__(
        self,
        he,
        primes,
        top: int,
        layout: Layout,
        features: int,
        q_coeffs: list[float],
        refresh_level: int,
        refresh: Callable[[list[Enc]], list[Enc]] | None = None,
    ):
        self.he = he
        self.primes = primes
        self.top = top
        self.layout = layout
        self.features = features
        self.q_coeffs = list(q_coeffs)  # q(u) = u^d' + q[0] u^(d'-1) + ... (monic, Horner order)
        self.refresh_level = refresh_level
        self.refresh = refresh
        self.Z: dict[tuple[int, int, int], Enc] = {}
        self.ZM: dict[tuple[int, int, int], Enc] = {}
        self._consts: dict = {}

    # ------------------------------------------------------------------ primitives
    def down(self, x: Enc, level: int) -> PyCtxt:
        if x.level < level:
            raise ProtocolError(f"internal: ciphertext at level {x.level} needed at {level}")
        ct = PyCtxt(copy_ctxt=x.ct) if x.level > level else x.ct
        for _ in range(x.level - level):
            self.he.mod_switch_to_next_ctxt(ct)
        return ct

    def mul(self, a: Enc, b: Enc) -> Enc:
        level = min(a.level, b.level)
        out = self.he.multiply(self.down(a, level), self.down(b, level), in_new_ctxt=True)
        self.he.relinearize(out)
        self.he.rescale_to_next(out)
        return Enc(out, level - 1)

    def dot(self, pairs: list[tuple[Enc, Enc]]) -> Enc:
        """Sum of products with one relinearization and one rescale (lazy relinearization)."""
        level = min(min(a.level, b.level) for a, b in pairs)
        acc = None
        for a, b in pairs:
            prod = self.he.multiply(self.down(a, level), self.down(b, level), in_new_ctxt=True)
            acc = prod if acc is None else self.he.add(acc, prod)
        self.he.relinearize(acc)
        self.he.rescale_to_next(acc)
        return Enc(acc, level - 1)

    def add_const(self, x: Enc, value: float) -> Enc:
        key = (value, x.level, float(x.ct.scale))
        pt = self._consts.get(key)
        if pt is None:
            pt = self.encode(np.full(self.layout.slots, value), float(x.ct.scale), x.level)
            self._consts[key] = pt
        return Enc(self.he.add_plain(x.ct, pt, in_new_ctxt=True), x.level)

    def encode(self, values: np.ndarray, scale: float, level: int):
        pt = self.he.encodeFrac(np.ascontiguousarray(values, dtype=np.float64), scale=scale)
        for _ in range(self.top - level):
            self.he.mod_switch_to_next_ptxt(pt, in_new_ptxt=False)
        return pt

    def mul_plain(self, x: Enc, pt) -> Enc:
        """x times a plaintext encoded at scale q_level, rescaled: x's scale is kept."""
        scale = float(x.ct.scale)
        ct = self.he.multiply_plain(x.ct, pt, in_new_ctxt=True)
        self.he.rescale_to_next(ct)
        ct.scale = scale
        return Enc(ct, x.level - 1)

    def ensure(self, items: list[Enc], levels_needed: int) -> list[Enc]:
        if min(x.level for x in items) - levels_needed < self.refresh_level:
            if self.refresh is None:
                raise ProtocolError("levels ran out inside a worker with no refresh callback")
            return self.refresh(items)
        return items

    # ------------------------------------------------------------------ data
    def add_block(self, g: int, b: int, j: int, ct: PyCtxt) -> None:
        key = (g, b, j)
        if key in self.Z:
            self.he.add(self.Z[key].ct, ct)
        else:
            self.Z[key] = Enc(ct, self.top)

    def blocks(self, g: int) -> list[int]:
        return sorted({b for (gg, b, j) in self.Z if gg == g})

    def prepare(self, masks: dict[tuple[int, int], np.ndarray]) -> None:
        """ZM = Z * mask (the mask holds R d_lead / n_k where the sample trains model k, else 0), made at
        the lowest level it is used at (refresh level + 1, where G = P * ZM lands on the refresh level):
        fewer primes make it cheaper to derive and to keep."""
        level = min(self.refresh_level + 2, self.top)
        for (g, b), mask in sorted(masks.items()):
            pt = self.encode(mask, float(self.primes[level]), level)
            for j in range(self.layout.groups[g].chunks(self.features)):
                z = Enc(self.down(self.Z[(g, b, j)], level), level)
                self.ZM[(g, b, j)] = self.mul_plain(z, pt)

    # ------------------------------------------------------------------ gradient
    def dot_segments(self, pairs: list[tuple[Enc, Enc]], steps: list[int]) -> Enc:
        """`dot`, with a rotate-and-sum over S, 2S, ... between its relinearization and its rescale: every
        segment of a packed block then holds the sum over all features. Before the rescale, the rotations'
        key-switching noise (SEAL's digits are not centred: about 2^9 in the coefficients at 'train') is
        divided by the level's prime with the rest; after it, that noise would reach the refresh 2^3 larger
        than the smudging is sized for. The keys are made for every level (mpclr.training.cv)."""
        level = min(min(a.level, b.level) for a, b in pairs)
        acc = None
        for a, b in pairs:
            prod = self.he.multiply(self.down(a, level), self.down(b, level), in_new_ctxt=True)
            acc = prod if acc is None else self.he.add(acc, prod)
        self.he.relinearize(acc)
        for step in steps:
            acc = self.he.add(acc, self.he.rotate(acc, int(step), in_new_ctxt=True), in_new_ctxt=True)
        self.he.rescale_to_next(acc)
        return Enc(acc, level - 1)

    def gradient_part(self, V: dict[tuple[int, int], Enc]) -> dict[tuple[int, int], Enc]:
        """sum over this shard's blocks of t' q(t'^2) ZM, per (group, chunk): not yet summed over the
        samples of a block; the refresh does that rotate-and-sum on exact integers, with no keys. In a packed
        group t is first summed over the segments (rotations: the features side by side)."""
        out = {}
        for group in self.layout.groups:
            g = group.index
            blocks = self.blocks(g)
            if not blocks:
                continue
            chunks = range(group.chunks(self.features))
            steps = self.layout.segment_steps(group)
            ts = [self.dot_segments([(self.Z[(g, b, j)], V[(g, j)]) for j in chunks], steps) for b in blocks]
            ts = self.ensure(ts, 2)
            us = [self.mul(t, t) for t in ts]
            acc = [self.add_const(u, self.q_coeffs[0]) for u in us]
            for a in self.q_coeffs[1:]:
                both = self.ensure(acc + us, 1)
                acc, us = both[: len(acc)], both[len(acc) :]
                acc = [self.add_const(self.mul(x, u), a) for x, u in zip(acc, us)]
            both = self.ensure(ts + acc, 1)
            ts, acc = both[: len(ts)], both[len(ts) :]
            ps = self.ensure([self.mul(t, x) for t, x in zip(ts, acc)], 1)
            for j in chunks:
                out[(g, j)] = self.dot([(p, self.ZM[(g, b, j)]) for p, b in zip(ps, blocks)])
        return out


def refresh_points(top: int, refresh_level: int, q_terms: int) -> list[int]:
    """The refreshes `BlockEngine.gradient_part` asks for per group, in order, each as a multiple of the
    group's blocks in the engine: its `ensure` calls replayed on levels alone (q_terms = len(q_coeffs)).
    The study manifest counts the training's gradient refreshes with it."""
    out = []
    lt = top - 1  # t = Z . V, both fresh
    if lt - 2 < refresh_level:
        out.append(1)
        lt = top
    lu = la = lt - 1  # u = t^2, acc = u + q_0
    for _ in range(q_terms - 1):
        if min(la, lu) - 1 < refresh_level:
            out.append(2)
            la = lu = top
        la = min(la, lu) - 1
    if min(lt, la) - 1 < refresh_level:
        out.append(2)
        lt = la = top
    if min(lt, la) - 1 - 1 < refresh_level:  # p = t * acc, then one more level for the product with ZM
        out.append(1)
    return out
