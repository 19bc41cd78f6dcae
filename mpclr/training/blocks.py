"""The per-block arithmetic of encrypted training, for a shard of data blocks.

A `BlockEngine` holds some data blocks Z (and each block's fold mask, in the clear: public) and, given the
current weights V, returns this shard's part of the gradient, already summed over its samples. It needs only
a Pyfhel object with the collective public and evaluation keys, so the server can run one per core in
worker processes (Pyfhel holds the GIL) and add their results. When a step would go below the refresh
level, it asks `refresh` (a callback to the server) to refresh its per-sample ciphertexts.

Where the data are: in memory (`add_block`), or streamed (`stream_from`): the hospitals' ciphertexts stay in
the server's spool file (mpclr.training.spool), and
each iteration reads them block by block (the next block's bytes read ahead while this one computes), so
the engine holds one block's ciphertexts, not its shard's. Either way, when no refresh falls inside an
iteration (the default design), the gradient runs block by block with the same operations in the same
order: streamed and in-memory engines give the same ciphertexts, bit for bit. A packed group (small
studies: k features side by side, mpclr.training.layout) streams the same way, its blocks' chunks in
place of features; in practice its rows stay in memory (a study small enough to pack is far below the
spool's threshold), and large studies, one feature per ciphertext, are the ones streamed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
        self.masks: dict[tuple[int, int], np.ndarray] = {}  # (group, block) -> its fold mask, public (`prepare`)
        self._consts: dict = {}
        self._source: Callable[[tuple[int, int, int]], list[bytes]] | None = None  # streamed: key -> contributions
        self._pairs: set[tuple[int, int]] = set()  # streamed: this engine's (group, block)
        self._reader: ThreadPoolExecutor | None = None
        self._calls = 0  # gradient_part calls so far
        self._keep, self._kept_bytes = 0, 0  # streamed: bytes of blocks it may keep loaded, and kept
        self._kept: dict[tuple[int, int], list] = {}
        self.read_wait = 0.0  # streamed: seconds the arithmetic waited on the spool's reads (all iterations)

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
        return self.dot_segments(pairs, ())

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

    def stream_from(self, source: Callable, pairs, keep: int = 0) -> None:
        """Stream this engine's (group, block) pairs: source(key) gives the hospitals' ciphertext bytes
        of a (group, block, feature), read per use. The first blocks up to `keep` bytes stay loaded after
        their first gradient (loading a block's ciphertexts costs about a sixth of its arithmetic: worth
        sparing while memory allows)."""
        self._source, self._pairs, self._keep = source, set(pairs), int(keep)
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool-read")

    def close(self) -> None:
        if self._reader is not None:
            self._reader.shutdown(wait=True)
            self._reader = None

    def blocks(self, g: int) -> list[int]:
        if self._source is not None:
            return sorted(b for gg, b in self._pairs if gg == g)
        return sorted({b for (gg, b, j) in self.Z if gg == g})

    def _chunks(self, g: int) -> range:
        """A block's data ciphertexts: one per feature, or ceil(features / k) in a packed group."""
        return range(self.layout.groups[g].chunks(self.features))

    def _load(self, raw: bytes) -> PyCtxt:
        ct = PyCtxt(pyfhel=self.he)
        ct.from_bytes(raw, scheme="ckks")
        return ct

    def _read(self, g: int, b: int) -> list:
        """A streamed block's bytes: every feature's contributions."""
        return [self._source((g, b, j)) for j in self._chunks(g)]

    def _fetch(self, g: int, blocks: list[int]):
        """(block, [Z_j]) for the group's blocks in order: from memory, or read from the spool one block
        ahead of the computation."""
        if self._source is None:
            for b in blocks:
                yield b, [self.Z[(g, b, j)] for j in self._chunks(g)]
            return
        def read(i):
            if i < len(blocks) and (g, blocks[i]) not in self._kept:
                return self._reader.submit(self._read, g, blocks[i])
            return None

        ahead = read(0)
        for i, b in enumerate(blocks):
            if (g, b) in self._kept:
                ahead = ahead or read(i + 1)
                yield b, self._kept[(g, b)]
                continue
            t0 = time.perf_counter()
            z_raw = ahead.result()
            self.read_wait += time.perf_counter() - t0
            ahead = read(i + 1)
            z = []
            for raws in z_raw:
                ct = self._load(raws[0])
                for raw in raws[1:]:  # a block two hospitals have rows in: their ciphertexts add up
                    self.he.add(ct, self._load(raw))
                z.append(Enc(ct, self.top))
            size = sum(len(raws[0]) for raws in z_raw)
            if self._kept_bytes + size <= self._keep:  # kept loaded, up to the engine's budget
                self._kept[(g, b)] = z
                self._kept_bytes += size
            yield b, z

    @property
    def masked_level(self) -> int:
        """The level the rows meet their fold mask's factor (refresh level + 1: G = P * Z mask lands on the
        refresh level)."""
        return min(self.refresh_level + 2, self.top) - 1

    def prepare(self, masks: dict[tuple[int, int], np.ndarray]) -> None:
        """Each block's fold mask: R d_lead / n_k where the sample trains model k, else 0. Nothing is derived
        from the rows here: the mask multiplies t (`_group_by_block`, at a level t has to spare) or the rows
        as they are used (`_group_by_stage`), so no per-fold copy of the rows is ever kept."""
        self.masks.update({k: np.asarray(v, dtype=np.float64) for k, v in masks.items()})

    def _mask_plain(self, g: int, b: int, level: int):
        """Block (g, b)'s mask encoded at scale q_level for a product that drops level's prime."""
        return self.encode(self.masks[(g, b)], float(self.primes[level]), level)

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
        """sum over this shard's blocks of t' q(t'^2) Z mask, per (group, chunk): not yet summed over the
        samples of a block; the refresh does that rotate-and-sum on exact integers, with no keys. In a packed
        group t is first summed over the segments (rotations: the features side by side)."""
        out = {}
        by_block = not refresh_points(self.top, self.refresh_level, len(self.q_coeffs))
        # streamed block by block, every other iteration runs backwards: the blocks read last are the ones
        # the page cache still holds (a spool larger than the cache read forwards each time would miss on
        # every block). The sums over blocks are exact modular additions: the order changes no bit.
        backwards = by_block and self._source is not None and self._calls % 2 == 1
        self._calls += 1
        for group in reversed(self.layout.groups) if backwards else self.layout.groups:
            blocks = self.blocks(group.index)
            if blocks:
                part = self._group_by_block if by_block else self._group_by_stage
                out.update(part(group.index, blocks[::-1] if backwards else blocks, V))
        return out

    def _sigmoid_part(self, t: Enc, mask) -> Enc:
        """p = (t mask) q(t^2) of one block (no refresh needed: the by-block path). t mask costs no level:
        t waits a level or more for q(t^2) anyway (degree 3: one, 5: two)."""
        u = self.mul(t, t)
        acc = self.add_const(u, self.q_coeffs[0])
        for a in self.q_coeffs[1:]:
            acc = self.add_const(self.mul(acc, u), a)
        return self.mul(self.mul_plain(t, mask), acc)

    def _group_by_block(self, g: int, blocks: list[int], V) -> dict[tuple[int, int], Enc]:
        """One block at a time: t, p = (t mask) q(t^2), and p Z added into each feature's sum (relinearized
        and rescaled once at the end, as `dot` does), at the level and scale `_group_by_stage` lands on."""
        chunks, steps = self._chunks(g), self.layout.segment_steps(self.layout.groups[g])
        sums: list = [None] * len(chunks)
        level = None
        for b, z in self._fetch(g, blocks):
            t = self.dot_segments([(z[j], V[(g, j)]) for j in chunks], steps)
            p = self._sigmoid_part(t, self._mask_plain(g, b, t.level))
            level = min(p.level, self.masked_level)
            pd = self.down(p, level)
            for j in chunks:
                prod = self.he.multiply(pd, self.down(z[j], level), in_new_ctxt=True)
                sums[j] = prod if sums[j] is None else self.he.add(sums[j], prod)
        out = {}
        for j, acc in enumerate(sums):
            self.he.relinearize(acc)
            self.he.rescale_to_next(acc)
            out[(g, j)] = Enc(acc, level - 1)
        return out

    def _group_by_stage(self, g: int, blocks: list[int], V) -> dict[tuple[int, int], Enc]:
        """Every block through each step together, so that a refresh serves all of them in one round
        (a design whose levels run out inside an iteration); holds a few ciphertexts per block."""
        data = list(self._fetch(g, blocks))
        chunks, steps = self._chunks(g), self.layout.segment_steps(self.layout.groups[g])
        ts = [self.dot_segments([(z[j], V[(g, j)]) for j in chunks], steps) for _, z in data]
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
        level = self.masked_level + 1  # the rows times their mask, here and now: Z mask at the masked level
        zm = []
        for b, z in data:
            pt = self._mask_plain(g, b, level)
            zm.append([self.mul_plain(Enc(self.down(z[j], level), level), pt) for j in chunks])
        return {(g, j): self.dot([(p, m[j]) for p, m in zip(ps, zm)]) for j in chunks}


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
    if min(lt, la) - 1 - 1 < refresh_level:  # p = t * acc, then one more level for the product with Z mask
        out.append(1)
    return out
