"""Encrypted training of all fold models at once, at the server (Pyfhel/SEAL), with collective refreshes.

Algorithm (mirrored exactly, in float64, by mpclr.plain.twin): HELR-style Nesterov accelerated gradient on
z_i = y'_i [1, x_i] (y' = +-1), with the sigmoid replaced by its least-squares polynomial p:

    g_k(v) = (1 / n_k) sum_{i not in fold k} p(-z_i . v) z_i ,    p(x) = 1/2 + c_1 x + c_3 x^3 + ...
    w_{t+1} = v_t + gamma_t g(v_t);     v_{t+1} = (1 - eta_t) w_{t+1} + eta_t w_t;     w_0 = v_0 = 0

Under encryption the data are encrypted as z / R (R: the sigmoid's interval), so t' = (z / R) . v = t / R
lies in [-1, 1] and, with u = t'^2 and d_k = c_k R^k (all of moderate size, unlike the c_k),
p(-t) = 1/2 - d_lead t' q(u) where q is monic:

    C_k  = (1 / 2 n_k) sum_{i not in fold k} z_i            each hospital's share, encrypted, once
    M_i  = [i not in fold k] * R d_lead / n_k                 the fold mask, public (plaintext)
    G    = rotate_and_sum( sum_blocks (t' M) * q(u) * z/R )  one level per product
    g    = C - G

(With c_k instead of d_k, the leading coefficient of degree 5 is 4e-5: folded into the mask it drowns in
CKKS's absolute encoding error.) t' M costs no level (t' waits for q(u) anyway), and nothing per fold is
derived from the rows: they are read as the hospitals sent them, every iteration.

Levels per iteration for degree 3: t (1), u (1), (t M) * q(u) (1), times z/R (1) = 4; then the Nesterov update
runs inside one batched collective refresh of public linear combinations (no level spent on gamma_t or
eta_t), which returns w_{t+1} and v_{t+1} fresh at the top level. When a preset has too few levels for a
step, the per-sample ciphertexts are refreshed first: the schedule adapts, the algorithm does not change.
The first iteration needs no encrypted arithmetic (v_0 = 0, so g = C).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
from Pyfhel import PyCtxt

from ..errors import ProtocolError
from ..protocols.refresh import RefreshProtocol
from .blocks import BlockEngine, Enc
from .kept import Kept, KeptCiphertexts
from .layout import Layout
from .spool import release_memory

__all__ = ["EncryptedTrainer", "TrainingPlan"]

# Below this many data blocks, worker processes cost more to start than they save.
_MIN_BLOCKS_FOR_WORKERS = 8


@dataclass
class TrainingPlan:
    """Public description of a training run: the same for the server, the parties and the twin."""

    sigmoid: np.ndarray  # coefficients c_0..c_deg of p, increasing powers (c_0 = 1/2, odd otherwise)
    schedule: list[tuple[float, float]]  # (gamma_t, eta_t) per iteration
    interval: float = 8.0  # R: the data are encrypted as z / R
    bound_bits: int = 8  # public bound on the values refreshed (weights, gradients): 2^bound_bits, masks hide up to it

    @property
    def degree(self) -> int:
        return len(self.sigmoid) - 1

    def monic(self) -> tuple[float, list[float]]:
        """(R * d_lead, coefficients of the monic q(u) below its leading 1, from u^(d'-1) down to u^0),
        with d_k = c_k R^k the coefficients in t' = t / R."""
        c = np.asarray(self.sigmoid, dtype=np.float64)
        r = float(self.interval)
        d = [float(c[k]) * r**k for k in range(1, len(c), 2)]  # d_1, d_3, ..., d_lead
        return r * d[-1], [x / d[-1] for x in reversed(d[:-1])]


@dataclass
class TrainingLog:
    seconds: dict = field(default_factory=dict)
    refreshes: int = 0
    refreshed_ciphertexts: int = 0
    workers: int = 0
    iterations: list = field(default_factory=list)


def refresh_level(ctx, plan: TrainingPlan, n: int) -> int:
    """The level the training's refreshes run at with n key holders (the lowest that holds their masks)."""
    return RefreshProtocol(ctx).min_level(plan.bound_bits, n)


def worker_count(workers: int | str, total_blocks: int) -> int:
    """Worker processes for training `total_blocks` data blocks ("auto": one per core when it pays)."""
    if workers == "auto":
        workers = (os.cpu_count() or 1) if total_blocks >= _MIN_BLOCKS_FOR_WORKERS else 0
    return max(0, min(int(workers), total_blocks))


class EncryptedTrainer:
    """Lives at the server: it sees ciphertexts, public constants and the layout, nothing else."""

    def __init__(
        self, server, layout: Layout, features: int, plan: TrainingPlan, participants=None, workers: int | str = "auto"
    ):
        self.server = server
        self.he = server.evaluator.he
        self.ctx = server.ctx
        self.layout = layout
        self.features = features  # d + 1, the intercept included
        self.plan = plan
        self.participants = participants
        self.top = self.ctx.top_level
        n = len(server.participants(participants))
        self.refresh_level = refresh_level(self.ctx, plan, n)
        self.mask_factor, self.q_coeffs = plan.monic()
        self.n_workers = worker_count(workers, sum(g.blocks for g in layout.groups))
        self.log = TrainingLog(workers=self.n_workers)
        self._pending: dict[tuple[int, int, int], list[bytes]] = {}  # each party's contribution per data block
        self._spool = None  # the hospitals' data blocks on disk (mpclr.training.spool), streamed per iteration
        # keys (group, chunk): a chunk is one feature, or k side by side in a packed group (mpclr.training.layout)
        self.C: dict[tuple[int, int], Enc] = {}  # constant part of the gradient, summed over parties
        self.W: dict[tuple[int, int], list[tuple[float, Enc]]] = {}  # w as a lazy combination of kept ciphertexts
        self._kept = KeptCiphertexts(self._load)  # w's older fresh ciphertexts as bytes (mpclr.training.kept)
        self.V: dict[tuple[int, int], Enc] = {}
        self._final: dict[tuple[int, int], Enc] = {}
        self._engine: BlockEngine | None = None
        self._pool = None
        self._polys: list = []  # the refreshes' slot-mask polynomials (packed groups), public
        self._post: dict = {}  # group, or (group, "unpack", segment) -> (polynomial index, galois elements)

    # ---------------------------------------------------------------- refresh
    def _refresh_enc(self, items: list[Enc]) -> list[Enc]:
        t0 = time.perf_counter()
        cts = self.server.refresh_raw(
            [x.ct for x in items],
            [x.level for x in items],
            [[(k, 1.0)] for k in range(len(items))],
            self.participants,
            bound_bits=self.plan.bound_bits,
            purpose="training/gradient",
        )
        self._account_refresh(len(items), time.perf_counter() - t0)
        return [Enc(c, self.top) for c in cts]

    def _refresh_bytes(self, items: list[tuple[bytes, int]]) -> list[tuple[bytes, int]]:
        fresh = self._refresh_enc([Enc(self._load(raw), level) for raw, level in items])
        return [(x.ct.to_bytes(compr_mode="none"), x.level) for x in fresh]

    def _account_refresh(self, count: int, seconds: float) -> None:
        release_memory()  # the hospitals' shares, computed in the network's threads, back to the system
        self.log.refreshes += 1
        self.log.refreshed_ciphertexts += count
        self.log.seconds["refresh"] = self.log.seconds.get("refresh", 0.0) + seconds

    def _load(self, raw: bytes) -> PyCtxt:
        ct = PyCtxt(pyfhel=self.he)
        ct.from_bytes(raw, scheme="ckks")
        return ct

    # ---------------------------------------------------------------- data
    def add_data(self, group: int, block: int, chunk: int, raw: bytes) -> None:
        """A party's contribution to a data block (its rows, zeros elsewhere). Checked here, loaded and
        added up by the engine that will hold the block (bytes go to worker processes untouched)."""
        from ..seal.format import CiphertextData

        raw = bytes(raw)
        level = self.ctx.check_ciphertext(CiphertextData.from_bytes(raw, "data block"), "data block")
        if level != self.top:
            raise ProtocolError(f"data block ({group}, {block}, {chunk}) arrived at level {level}, not the top")
        self._pending.setdefault((group, block, chunk), []).append(raw)

    def add_spool(self, spool) -> None:
        """Every data block of a Spool: held in memory as `add_data` does when the spool is, streamed from
        its file when it is on disk (checked here unless encrypt_study checked them as they arrived)."""
        if not spool.on_disk:
            for (g, b, j), raws in spool.items():
                for raw in raws:
                    self.add_data(g, b, j, raw)
            return
        if not spool.checked:
            from ..seal.format import CiphertextData

            for key, raws in spool.items():
                for raw in raws:
                    data = CiphertextData.from_bytes(raw, "data block")
                    if self.ctx.check_ciphertext(data, "data block") != self.top:
                        raise ProtocolError(f"data block {key} is not at the top level")
            spool.checked = True
        self._spool = spool

    def _has_block(self, key) -> bool:
        return key in self._pending or (self._spool is not None and key in self._spool)

    def chunks(self, group) -> range:
        return range(group.chunks(self.features))

    def add_constant(self, group: int, chunk: int, raw: bytes) -> None:
        """A party's share of the constant part C of the gradient (weights' layout); shares add up. C is first
        used one level above the refresh level (folded into G, `_linear`): hospitals send it there."""
        from ..seal.format import CiphertextData

        raw = bytes(raw)
        level = self.ctx.check_ciphertext(CiphertextData.from_bytes(raw, "constant part"), "constant part")
        if level <= self.refresh_level:
            raise ProtocolError(f"constant part ({group}, {chunk}) arrived at level {level}, at or below the "
                                f"refresh level {self.refresh_level}")
        ct = self.ctx.load_ciphertext(self.he, raw, "constant part")
        key = (group, chunk)
        if key in self.C:
            if self.C[key].level != level:
                raise ProtocolError(f"constant part ({group}, {chunk}) arrived at two levels")
            self.he.add(self.C[key].ct, ct)
        else:
            self.C[key] = Enc(ct, level)

    def _shards(self) -> list[list[tuple[int, int]]]:
        """(group, block) pairs per engine, balanced: all chunks of a block stay together."""
        pairs = [(g.index, b) for g in self.layout.groups for b in range(g.blocks)]
        k = max(self.n_workers, 1)
        return [pairs[i::k] for i in range(k)]

    def prepare(self, fold_of_row: np.ndarray, train_counts: np.ndarray) -> None:
        """Hand the data blocks (or where they are in the spool) and the fold masks to the engines (worker
        processes or this one)."""
        t0 = time.perf_counter()
        missing = [
            (g.index, b, c)
            for g in self.layout.groups
            for b in range(g.blocks)
            for c in self.chunks(g)
            if not self._has_block((g.index, b, c))
        ]
        missing += [(g.index, c) for g in self.layout.groups for c in self.chunks(g) if (g.index, c) not in self.C]
        if missing:
            raise ProtocolError(f"no party contributed data blocks or constant parts {missing[:3]}...")
        counts = np.asarray(train_counts, dtype=np.float64)
        self.gradient_gain = {g.index: self._gradient_gain(g, counts, self.features) for g in self.layout.groups}
        per_model = {g.index: self.mask_factor * self.gradient_gain[g.index] / counts for g in self.layout.groups}
        masks = {
            (g.index, b): self.layout.pack_mask(g, b, fold_of_row, per_model[g.index])
            for g in self.layout.groups
            for b in range(g.blocks)
        }
        shards = self._shards()
        spool = self._spool
        if self.n_workers:
            from .workers import WorkerPool

            init = {
                "context": self.ctx._context_bytes,
                "public_key": self.server.public_key,
                "relin_key": self.he.to_bytes_relin_key(compr_mode="none"),
                "rotate_key": self.he.to_bytes_rotate_key(compr_mode="none") if self.layout.packed else None,
                "layout": self.layout.describe(),
                "features": self.features,
                "q_coeffs": self.q_coeffs,
                "refresh_level": self.refresh_level,
                "top": self.top,
                "primes": list(self.ctx.primes),
            }
            if spool is not None:  # the workers read the blocks from the spool's file themselves
                init["spool"] = {"fd": spool.fileno(), "compact": bool(spool.compact),
                                 "keep": spool.threshold // self.n_workers}
            t1 = time.perf_counter()
            self._pool = WorkerPool(self.n_workers, init, self._refresh_bytes,
                                    coalesce=self.server.network.coalesce_rounds,
                                    pass_fds=() if spool is None else (spool.fileno(),))
            t2 = time.perf_counter()
            if spool is None:
                self._pool.send_blocks(
                    [
                        [(g, b, c, self._pending.pop((g, b, c))) for g, b in shard
                         for c in self.chunks(self.layout.groups[g])]
                        for shard in shards
                    ]
                )
            else:
                self._pool.send_locations(
                    [{(g, b, c): spool.locations((g, b, c)) for g, b in shard
                      for c in self.chunks(self.layout.groups[g])}
                     for shard in shards]
                )
            t3 = time.perf_counter()
            self._pool.prepare([{gb: masks[gb] for gb in shard} for shard in shards])
            self.log.seconds.update(
                {
                    "workers_start": t2 - t1,
                    "send_blocks": time.perf_counter() - t2,
                    "send_masks": time.perf_counter() - t3,
                }
            )
        else:
            self._engine = BlockEngine(
                self.he,
                list(self.ctx.primes),
                self.top,
                self.layout,
                self.features,
                self.q_coeffs,
                self.refresh_level,
                self._refresh_enc,
            )
            if spool is not None:
                self._engine.stream_from(spool.__getitem__, [gb for shard in shards for gb in shard],
                                         keep=spool.threshold)
            for (g, b, j), raws in self._pending.items():
                for raw in raws:
                    self._engine.add_block(g, b, j, self._load(raw))
            self._pending.clear()
            self._engine.prepare(masks)
        release_memory()  # the blocks handed to the engines: their bytes back to the system
        self.log.seconds["prepare"] = time.perf_counter() - t0
        self.log.seconds["send_blocks"] = self.log.seconds.get("send_blocks", 0.0) - self.log.seconds.get(
            "send_masks", 0.0
        )

    @staticmethod
    def _gradient_gain(group, counts: np.ndarray, features: int) -> float:
        """The public factor G carries into the refresh, put back exactly by the refresh's coefficient.

        The refresh floods every slot with the same absolute noise, and its rotate-and-sum adds up a
        block's slots: with a mask of 1 / n_k a slot's share of the gradient would be tiny beside it. The mask
        carries n-bar g / (8 B n_k) instead (n-bar the mean training count, B the group's blocks rounded
        up to a power of two). The gain g buys precision until G's noise, the rows' encryption noise
        carried through the products, grows with it; that noise also grows with the columns of z (d + 1),
        and the smudging must stay 2^14 above it. Measured at 10 hospitals, the largest training refresh
        input: 4 columns 2^10.9 at g = 16; 10 (lbw): 2^11.2 at g = 16 (2^10.4 at 1, its weights 6.6e-3
        from the twin's, 6.7e-4 at 16); 31 (breast cancer): 2^10.5 at 1, 2^11.7 at 4, 2^13.9 at 16. So
        g = 16 (10 / columns)^2, within [1, 16]. A slot of G, summed over B blocks, stays below 2.2 |z|
        per block and sample: inside the public bound 2^8 for |z| up to 100.

        A packed group (k features side by side) carries k features' noise in one ciphertext and the noise
        of its B blocks added up: sqrt(k B) times one block's single feature's, for which the above was
        measured. So a packed group takes max(B, sqrt(k B)) with B its blocks, not rounded up (synthetic 150 x
        3, k = 4, one block, at 10 hospitals: 2^11.5 with B alone, 2^10.7 with it; breast cancer, k = 8 and 5
        blocks: 6.3 instead of 8, its weights 1.27 times as precise, 2^10.5 at 10 hospitals)."""
        blocks = 1 << max(0, math.ceil(math.log2(max(group.blocks, 1))))
        spread = float(blocks) if group.segments == 1 else max(group.blocks, math.sqrt(group.segments * group.blocks))
        gain = min(16.0, max(1.0, 16.0 * (10.0 / features) ** 2))
        return float(np.mean(counts[list(group.models)])) * gain / (8.0 * spread)

    def _merge(self, parts: list[dict]) -> dict[tuple[int, int], Enc]:
        """Sum the engines' partial results per (group, feature)."""
        out: dict[tuple[int, int], Enc] = {}
        for part in parts:
            for key, (raw, level) in part.items():
                x = Enc(self._load(raw), level)
                if key in out:
                    a, b = out[key], x
                    lvl = min(a.level, b.level)
                    ca = _down(self.he, a, lvl)
                    self.he.add(ca, _down(self.he, b, lvl))
                    out[key] = Enc(ca, lvl)
                else:
                    out[key] = x
        return out

    # ---------------------------------------------------------------- training
    def _gradient_part(self) -> dict[tuple[int, int], Enc]:
        if self._pool is not None:
            t0 = time.perf_counter()
            V = {k: (v.ct.to_bytes(compr_mode="none"), v.level) for k, v in self.V.items()}
            t1 = time.perf_counter()
            parts = self._pool.gradient(V)  # emptied once sent
            t2 = time.perf_counter()
            merged = self._merge(parts)
            t3 = time.perf_counter()
            self.log.iterations.append(
                {
                    "send_s": t1 - t0,
                    "workers_s": t2 - t1,
                    "merge_s": t3 - t2,
                    "worker_timings": self._pool.timings[-len(parts) :],
                }
            )
            return merged
        return self._engine.gradient_part(self.V)

    def _fold_terms(self, terms: list[tuple]) -> list[tuple]:
        """The terms without a rotation whose ciphertexts have a level to spare (fresh ones), summed here
        under encryption into one: one plaintext product per term and one rescale, so the key holders make
        one masked-decryption share instead of several. The sum is divided by a power of two (put back
        exactly in the refresh's coefficient) so that it stays within the refresh's public bound whenever
        its terms are."""
        mine = self.foldable(terms, self.refresh_level)
        if len(mine) < 2:
            return terms
        weight = sum(abs(c) for c, _ in mine)
        shift = max(0, math.ceil(math.log2(weight))) if weight > 0 else 0
        level = min(x.level for _, x in mine)
        acc = self._linear([(c / 2.0**shift, x) for c, x in mine], level - 1, float(mine[0][1].ct.scale))
        return [t for t in terms if not any(t is m for m in mine)] + [(2.0**shift, acc)]

    def _linear(self, terms: list[tuple[float, Enc]], level: int, scale: float) -> Enc:
        """sum c x over fresh ciphertexts, landing at `level` with exactly `scale`: each term drops to level + 1,
        one plaintext product each (its value c, encoded at the scale that makes the rescale land on `scale`),
        one rescale for the sum."""
        prime = float(self.ctx.primes[level + 1])
        acc = None
        for coef, x in terms:
            ct = _down(self.he, x, level + 1)
            pt, _ = self.server.evaluator.encode(coef, self.ctx.params.slots, scale * prime / float(x.ct.scale),
                                                 level + 1)
            prod = self.he.multiply_plain(ct, pt, in_new_ctxt=True)
            prod.scale = scale * prime
            acc = prod if acc is None else self.he.add(acc, prod, in_new_ctxt=True)
        self.he.rescale_to_next(acc)
        acc.scale = scale
        return Enc(acc, level)

    def _refresh_round(self, inputs: list[Enc], outputs: list[list[tuple]], bound_bits: int) -> list[Enc]:
        t0 = time.perf_counter()
        fresh = self.server.refresh_raw(
            [x.ct for x in inputs],
            [x.level for x in inputs],
            outputs,
            self.participants,
            bound_bits=bound_bits,
            purpose="training/update",
            polys=self._polys,
        )
        self._account_refresh(len(inputs), time.perf_counter() - t0)
        return [Enc(ct, self.top) for ct in fresh]

    @staticmethod
    def foldable(terms: list[tuple], refresh_level: int) -> list[tuple]:
        """The terms `_fold_terms` sums into one (when there are two or more)."""
        return [t for t in terms if len(t) == 2 and t[1].level > refresh_level]

    @staticmethod
    def _merge_terms(terms: list[tuple]) -> list[tuple]:
        """Terms on the same ciphertext and rotations added up (C appears in v and in w), zero terms dropped."""
        merged: dict[tuple, list] = {}
        for coef, x, *rest in terms:
            key = (id(x), tuple(rest[0]) if rest else ())
            if key in merged:
                merged[key][0] += coef
            else:
                merged[key] = [coef, x, *rest]
        return [tuple(t) for t in merged.values() if t[0] != 0.0]

    def _first_update(self, gamma: float, eta: float) -> None:
        """v_1 = (1 - eta_0) gamma_0 C (w_0 = v_0 = 0): C refreshed with that coefficient, averaged over each
        lane's copies (one input per weight). Relabelling C's scale instead would spare the round but move
        every later scale of the iteration off the ladder by up to (1 - eta_0) gamma_0 to the 5th: the refresh
        inputs' noise with it, past what the smudging is sized for."""
        keys = list(self.C)
        inputs, outputs = [], []
        for g, j in keys:
            group = self.layout.groups[g]
            outputs.append([self._sum_term(group, len(inputs), gamma * (1.0 - eta) / group.samples_per_block)])
            inputs.append(self.C[(g, j)])
        for key, v in zip(keys, self._refresh_round(inputs, outputs, self.plan.bound_bits)):
            self.V[key] = v
            self.W[key] = [(gamma, self.C[key])]

    def _update(self, gamma: float, eta: float, grad: dict | None) -> None:
        """w' = v + gamma (C - G); v' = (1 - eta) w' + eta w, in one refresh round with one input per weight.

        G (per-sample, level 2) is rotated-and-summed over the samples inside the refresh, the fresh terms
        ((1 - eta) gamma C, (1 - eta) v and eta w, w kept as a combination of fresh ciphertexts only) are
        averaged over the lane's copies by the same rotate-and-sum: so they are added into G first, under
        encryption (plaintext products at level 3 landing on G's level and scale), and the key holders refresh
        one ciphertext per weight instead of three (two of them's bytes per round). After the round, w' is
        kept as (v' - eta w) / (1 - eta): a combination of fresh ciphertexts again, for the next round."""
        if grad is None:
            self._first_update(gamma, eta)
            return
        if eta == 1.0:
            raise ProtocolError("a momentum eta of 1 leaves w undetermined by v (Nesterov's eta is below 1)")
        inputs, outputs, keys = [], [], []
        for g in self.layout.groups:
            copies = g.samples_per_block  # a weight's copies per model and segment
            a = -gamma * (1.0 - eta) / self.gradient_gain[g.index]  # G's coefficient, after its sum over samples
            for j in self.chunks(g):
                key = (g.index, j)
                G = grad[key]
                fresh = self._merge_terms(
                    [(gamma * (1.0 - eta), self.C[key]), (1.0 - eta, self.V[key])]
                    + [(eta * c, x) for c, x in self.W[key]]
                )
                part = self._linear([(c / (a * copies), x) for c, x in self._kept.loaded(fresh)], G.level,
                                    float(G.ct.scale))
                self.he.add(part.ct, G.ct)  # Y = G + sum c / (a copies) x, at G's level and scale
                outputs.append([self._sum_term(g, len(inputs), a)])
                inputs.append(part)
                keys.append(key)
        # Y is G plus the fresh terms at most 2^bound_bits each: one bit more of bound for the sum
        fresh = self._refresh_round(inputs, outputs, self.plan.bound_bits + 1)
        for key, v in zip(keys, fresh):
            self.W[key] = self._merge_terms([(1.0 / (1.0 - eta), v)] + [(-eta / (1.0 - eta) * c, x)
                                                                      for c, x in self.W[key]])
            # the v before this one stays in w only: kept as bytes from now on (C and v stay loaded)
            self.W[key] = [(c, x if x is v or x is self.C[key] or isinstance(x, Kept) else self._kept.keep(x))
                           for c, x in self.W[key]]
            self.V[key] = v

    def _sum_elements(self, group, sign: int = 1) -> tuple[int, ...]:
        """Galois elements of the rotate-and-sum over a block's samples (in the weights' layout)."""
        from ..seal.format import galois_elt_from_step

        return tuple(galois_elt_from_step(sign * step, self.ctx.n) for step in self.layout.sum_steps(group))

    def _sum_term(self, group, index: int, coef: float) -> tuple:
        """A refresh term summing input `index` over a block's samples, broadcast in the weights' layout, times
        coef. Packed groups: a window sum over each segment, kept at the segment's first position by a slot
        mask (a public polynomial) and rotated-and-summed back over the segment (mpclr.protocols.refresh)."""
        if group.segments == 1:
            return (index, coef, self._sum_elements(group))
        if group.index not in self._post:
            from ..protocols.refresh import mask_polynomial

            self._polys.append(mask_polynomial(self.ctx, self.layout.first_positions(group)))
            self._post[group.index] = (len(self._polys) - 1, self._sum_elements(group, -1))
        return (index, coef, self._sum_elements(group), self._post[group.index])

    def _unpack_term(self, group, segment: int, index: int, coef: float) -> tuple:
        """A refresh term taking feature `segment` of a packed input to the evaluation's one-feature layout: the
        window sum over each segment, kept at this segment's first positions only (a slot mask) and
        rotated-and-summed over the whole lane, so the feature lands in every slot of its model."""
        from ..protocols.refresh import mask_polynomial
        from ..seal.format import galois_elt_from_step

        key = (group.index, "unpack", segment)
        if key not in self._post:
            self._polys.append(mask_polynomial(self.ctx, self.layout.segment_first_positions(group, segment)))
            lane = tuple(galois_elt_from_step(-step, self.ctx.n) for step in self.layout.lane_steps(group))
            self._post[key] = (len(self._polys) - 1, lane)
        return (index, coef, self._sum_elements(group), self._post[key])

    def _materialize_weights(self) -> None:
        """The final models w, fresh at the top level and averaged over each lane's copies (one more refresh
        round, one input per weight ciphertext: the fresh terms of w, folded; a group that unpacks outputs
        one ciphertext per feature, `_unpack_term`)."""
        keys, inputs, outputs = [], [], []
        for g, j in list(self.W):
            group = self.layout.groups[g]
            terms = self._kept.loaded(self._merge_terms(self.W[(g, j)]))
            [(coef, x)] = self._fold_terms(terms) or [(0.0, self.C[(g, j)])]
            if group.unpack:  # one output per feature of the chunk, in the evaluation's layout
                for f in range(group.segments):
                    feature = self.layout.feature_of(group, j, f)
                    if feature < self.features:
                        outputs.append([self._unpack_term(group, f, len(inputs), coef / group.samples_per_block)])
                        keys.append((g, feature))
            else:
                outputs.append([self._sum_term(group, len(inputs), coef / group.samples_per_block)])
                keys.append((g, j))
            inputs.append(x)
        fresh = self._refresh_round(inputs, outputs, self.plan.bound_bits)
        self.W = {k: [(1.0, x)] for k, x in zip(keys, fresh)}
        self._final = dict(zip(keys, fresh))

    def train(self, progress=None) -> TrainingLog:
        if self._engine is None and self._pool is None:
            raise ProtocolError("call prepare() before train()")
        t_start = time.perf_counter()
        try:
            for it, (gamma, eta) in enumerate(self.plan.schedule):
                t0 = time.perf_counter()
                grad = None if it == 0 else self._gradient_part()
                t1 = time.perf_counter()
                self._update(gamma, eta, grad)
                t2 = time.perf_counter()
                self.log.iterations.append({"iteration": it + 1, "gradient_s": t1 - t0, "update_refresh_s": t2 - t1})
                if progress is not None:
                    progress(it + 1, len(self.plan.schedule))
            self._materialize_weights()
        finally:
            self.close()
        self.log.seconds["train"] = time.perf_counter() - t_start
        return self.log

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._engine is not None:
            self._engine.close()
        self._kept.close()

    def weight_ciphertexts(self) -> dict[tuple[int, int], PyCtxt]:
        if not getattr(self, "_final", None):
            raise ProtocolError("the fold models are not trained yet")
        return {k: v.ct for k, v in self._final.items()}


def _down(he, x: Enc, level: int) -> PyCtxt:
    ct = PyCtxt(copy_ctxt=x.ct)
    for _ in range(x.level - level):
        he.mod_switch_to_next_ctxt(ct)
    return ct
