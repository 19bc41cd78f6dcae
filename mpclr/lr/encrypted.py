"""Encrypted training of all fold models at once, at the server (Pyfhel/SEAL), with collective refreshes.

Algorithm (mirrored exactly, in float64, by mpclr.lr.twin): HELR-style Nesterov accelerated gradient on
z_i = y'_i [1, x_i] (y' = +-1), with the sigmoid replaced by its least-squares polynomial p:

    g_k(v) = (1 / n_k) sum_{i not in fold k} p(-z_i . v) z_i ,    p(x) = 1/2 + c_1 x + c_3 x^3 + ...
    w_{t+1} = v_t + gamma_t g(v_t);     v_{t+1} = (1 - eta_t) w_{t+1} + eta_t w_t;     w_0 = v_0 = 0

Under encryption, with u = t^2 and t = z . v, p(-t) = 1/2 - t * c_lead * q(u) where q is monic:

    C_k  = (1 / 2 n_k) sum_{i not in fold k} z_i            encrypted, once
    ZM_i = z_i * [i not in fold k] * c_lead / n_k            the masked copy, derived once by the server
    G    = rotate_and_sum( sum_blocks t * q(u) * ZM )        one level per product
    g    = C - G

Levels per iteration for degree 3: t (1), u (1), t * q(u) (1), times ZM (1) = 4; then the Nesterov update
runs inside one batched collective refresh of public linear combinations (no level spent on gamma_t or
eta_t), which returns w_{t+1} and v_{t+1} fresh at the top level. When a preset has too few levels for a
step, the per-sample ciphertexts are refreshed first: the schedule adapts, the algorithm does not change.
The first iteration needs no encrypted arithmetic (v_0 = 0, so g = C).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from Pyfhel import PyCtxt

from ..errors import ProtocolError
from ..protocols.refresh import RefreshProtocol
from .layout import Group, Layout

__all__ = ["EncryptedTrainer", "TrainingPlan"]


@dataclass
class TrainingPlan:
    """Public description of a training run: the same for the server, the parties and the twin."""

    sigmoid: np.ndarray  # coefficients c_0..c_deg of p, increasing powers (c_0 = 1/2, odd otherwise)
    schedule: list[tuple[float, float]]  # (gamma_t, eta_t) per iteration
    bound_bits: int = 6  # public bound on |weights|, gradients: 2^bound_bits (refresh masks hide up to it)
    boost_bits: int = 0

    @property
    def degree(self) -> int:
        return len(self.sigmoid) - 1

    def monic(self) -> tuple[float, list[float]]:
        """(c_lead, coefficients of q(u) below its leading 1, from u^(d'-1) down to u^0)."""
        c = np.asarray(self.sigmoid, dtype=np.float64)
        lead = float(c[-1])
        odd = [float(c[k]) for k in range(1, len(c), 2)]  # c_1, c_3, ..., c_lead
        return lead, [x / lead for x in reversed(odd[:-1])]


@dataclass
class _Ct:
    ct: PyCtxt
    level: int


@dataclass
class TrainingLog:
    seconds: dict = field(default_factory=dict)
    refreshes: int = 0
    refreshed_ciphertexts: int = 0
    iterations: list = field(default_factory=list)


class EncryptedTrainer:
    """Lives at the server: it sees ciphertexts, public constants and the layout, nothing else."""

    def __init__(self, server, layout: Layout, features: int, plan: TrainingPlan, participants=None):
        self.server = server
        self.he = server._he
        self.ctx = server.ctx
        self.layout = layout
        self.features = features  # d + 1, the intercept included
        self.plan = plan
        self.participants = participants
        self.top = self.ctx.top_level
        n = len(server.participants(participants))
        self.refresh_level = RefreshProtocol(self.ctx).min_level(plan.bound_bits, n, 1 << plan.boost_bits)
        # encrypted state, by group then feature (and block for data)
        self.Z: dict[tuple[int, int, int], _Ct] = {}
        self.ZM: dict[tuple[int, int, int], _Ct] = {}
        self.C: dict[tuple[int, int], _Ct] = {}
        self.W: dict[tuple[int, int], _Ct] = {}
        self.V: dict[tuple[int, int], _Ct] = {}
        self.log = TrainingLog()
        self._consts: dict = {}

    # ---------------------------------------------------------------- low-level helpers
    def _down(self, x: _Ct, level: int) -> PyCtxt:
        if x.level < level:
            raise ProtocolError(f"internal: ciphertext at level {x.level} needed at {level}")
        ct = PyCtxt(copy_ctxt=x.ct) if x.level > level else x.ct
        for _ in range(x.level - level):
            self.he.mod_switch_to_next_ctxt(ct)
        return ct

    def _mul(self, a: _Ct, b: _Ct) -> _Ct:
        level = min(a.level, b.level)
        ca, cb = self._down(a, level), self._down(b, level)
        out = self.he.multiply(ca, cb, in_new_ctxt=True)
        self.he.relinearize(out)
        self.he.rescale_to_next(out)
        return _Ct(out, level - 1)

    def _dot(self, pairs: list[tuple[_Ct, _Ct]]) -> _Ct:
        """sum of products with one relinearization and one rescale (lazy relinearization)."""
        level = min(min(a.level, b.level) for a, b in pairs)
        acc = None
        for a, b in pairs:
            prod = self.he.multiply(self._down(a, level), self._down(b, level), in_new_ctxt=True)
            acc = prod if acc is None else self.he.add(acc, prod)
        self.he.relinearize(acc)
        self.he.rescale_to_next(acc)
        return _Ct(acc, level - 1)

    def _add_const(self, x: _Ct, value: float) -> _Ct:
        key = (value, x.level, float(x.ct.scale))
        pt = self._consts.get(key)
        if pt is None:
            pt = self.he.encodeFrac(np.full(self.layout.slots, value), scale=float(x.ct.scale))
            for _ in range(self.top - x.level):
                self.he.mod_switch_to_next_ptxt(pt, in_new_ptxt=False)
            self._consts[key] = pt
        return _Ct(self.he.add_plain(x.ct, pt, in_new_ctxt=True), x.level)

    def _rotate_sum(self, x: _Ct, group: Group) -> _Ct:
        ct = x.ct
        for step in self.layout.sum_steps(group):
            ct = self.he.add(ct, self.he.rotate(ct, step, in_new_ctxt=True), in_new_ctxt=True)
        return _Ct(ct, x.level)

    def _refresh(self, items: list[_Ct]) -> list[_Ct]:
        if not items:
            return []
        t0 = time.perf_counter()
        cts = self.server.refresh_raw(
            [x.ct for x in items],
            [x.level for x in items],
            [[(k, 1.0)] for k in range(len(items))],
            self.participants,
            bound_bits=self.plan.bound_bits,
            boost_bits=self.plan.boost_bits,
        )
        self._account_refresh(len(items), time.perf_counter() - t0)
        return [_Ct(c, self.top) for c in cts]

    def _account_refresh(self, count: int, seconds: float) -> None:
        self.log.refreshes += 1
        self.log.refreshed_ciphertexts += count
        self.log.seconds["refresh"] = self.log.seconds.get("refresh", 0.0) + seconds

    def _ensure(self, items: list[_Ct], levels_needed: int) -> list[_Ct]:
        """Refresh the batch if spending `levels_needed` would go below the refresh level."""
        if min(x.level for x in items) - levels_needed < self.refresh_level:
            return self._refresh(items)
        return items

    # ---------------------------------------------------------------- data
    def add_data(self, group: int, block: int, feature: int, raw: bytes) -> None:
        """A party's contribution to a data block (its rows, zeros elsewhere); contributions add up."""
        ct = self.ctx.load_ciphertext(self.he, raw, "data block")
        key = (group, block, feature)
        if key in self.Z:
            self.he.add(self.Z[key].ct, ct)
        else:
            self.Z[key] = _Ct(ct, self.top)

    def prepare(self, fold_of_row: np.ndarray, train_counts: np.ndarray) -> None:
        """Derive the masked copies ZM (one level, used later at lower levels anyway) and the constant
        part C of the gradient (rotate-and-sum of a masked copy)."""
        t0 = time.perf_counter()
        lead, _ = self.plan.monic()
        inv_n = 1.0 / np.asarray(train_counts, dtype=np.float64)
        for g in self.layout.groups:
            for b in range(g.blocks):
                mask = self.layout.pack_mask(g, b, fold_of_row, lead * inv_n)
                half = self.layout.pack_mask(g, b, fold_of_row, 0.5 * inv_n)
                for j in range(self.features):
                    z = self.Z.get((g.index, b, j))
                    if z is None:
                        raise ProtocolError(f"no party contributed data block {b} of group {g.index}, feature {j}")
                    self.ZM[(g.index, b, j)] = self._mul_plain(z, mask)
                    c = self._mul_plain(z, half)
                    key = (g.index, j)
                    self.C[key] = c if key not in self.C else _Ct(self.he.add(self.C[key].ct, c.ct), c.level)
            for j in range(self.features):
                self.C[(g.index, j)] = self._rotate_sum(self.C[(g.index, j)], g)
        self.log.seconds["prepare"] = time.perf_counter() - t0

    def _mul_plain(self, x: _Ct, values: np.ndarray) -> _Ct:
        """x * values, rescaled; the plaintext is encoded at the prime dropped so x's scale is kept."""
        pt = self.he.encodeFrac(np.ascontiguousarray(values, dtype=np.float64), scale=float(self.ctx.primes[x.level]))
        for _ in range(self.top - x.level):
            self.he.mod_switch_to_next_ptxt(pt, in_new_ptxt=False)
        ct = self.he.multiply_plain(x.ct, pt, in_new_ctxt=True)
        scale = float(x.ct.scale)
        self.he.rescale_to_next(ct)
        ct.scale = scale
        return _Ct(ct, x.level - 1)

    # ---------------------------------------------------------------- training
    def _gradient_part(self) -> dict[tuple[int, int], _Ct]:
        """G per (group, feature): rotate_and_sum(sum_b t q(u) ZM), for the current V."""
        _, q_coeffs = self.plan.monic()
        out = {}
        for g in self.layout.groups:
            v = [self.V[(g.index, j)] for j in range(self.features)]
            ts = [self._dot([(self.Z[(g.index, b, j)], v[j]) for j in range(self.features)]) for b in range(g.blocks)]
            # q(u) by Horner on u = t^2, refreshing the per-sample batch whenever levels run out
            ts = self._ensure(ts, 2)
            us = [self._mul(t, t) for t in ts]
            acc = [self._add_const(u, q_coeffs[0]) for u in us]
            for a in q_coeffs[1:]:
                pairs = self._ensure(acc + us, 1)
                acc, us = pairs[: len(acc)], pairs[len(acc) :]
                acc = [self._add_const(self._mul(x, u), a) for x, u in zip(acc, us)]
            pairs = self._ensure(ts + acc, 1)
            ts, acc = pairs[: len(ts)], pairs[len(ts) :]
            ps = [self._mul(t, x) for t, x in zip(ts, acc)]
            ps = self._ensure(ps, 1)
            for j in range(self.features):
                dot = self._dot([(ps[b], self.ZM[(g.index, b, j)]) for b in range(g.blocks)])
                out[(g.index, j)] = self._rotate_sum(dot, g)
        return out

    def _update(self, gamma: float, eta: float, grad: dict | None) -> None:
        """w' = v + gamma (C - G); v' = (1 - eta) w' + eta w, in one batched refresh-combine round."""
        items: list[_Ct] = []
        index: dict[int, int] = {}

        def ref(x: _Ct) -> int:
            if id(x) not in index:
                index[id(x)] = len(items)
                items.append(x)
            return index[id(x)]

        outputs, keys = [], []
        for g in self.layout.groups:
            for j in range(self.features):
                key = (g.index, j)
                w_terms = [(ref(self.C[key]), gamma)]
                v_terms = [(ref(self.C[key]), (1 - eta) * gamma)]
                if grad is not None:
                    w_terms += [(ref(self.V[key]), 1.0), (ref(grad[key]), -gamma)]
                    v_terms += [
                        (ref(self.V[key]), 1 - eta),
                        (ref(grad[key]), -(1 - eta) * gamma),
                        (ref(self.W[key]), eta),
                    ]
                outputs += [w_terms, v_terms]
                keys.append(key)
        t0 = time.perf_counter()
        fresh = self.server.refresh_raw(
            [x.ct for x in items],
            [x.level for x in items],
            outputs,
            self.participants,
            bound_bits=self.plan.bound_bits,
            boost_bits=self.plan.boost_bits,
        )
        self._account_refresh(len(items), time.perf_counter() - t0)
        for n, key in enumerate(keys):
            self.W[key] = _Ct(fresh[2 * n], self.top)
            self.V[key] = _Ct(fresh[2 * n + 1], self.top)

    def train(self, progress=None) -> TrainingLog:
        t_start = time.perf_counter()
        for it, (gamma, eta) in enumerate(self.plan.schedule):
            t0 = time.perf_counter()
            grad = None if it == 0 else self._gradient_part()
            t1 = time.perf_counter()
            self._update(gamma, eta, grad)
            t2 = time.perf_counter()
            self.log.iterations.append({"iteration": it + 1, "gradient_s": t1 - t0, "update_refresh_s": t2 - t1})
            if progress is not None:
                progress(it + 1, len(self.plan.schedule))
        self.log.seconds["train"] = time.perf_counter() - t_start
        return self.log

    def weight_ciphertexts(self) -> dict[tuple[int, int], PyCtxt]:
        return {k: v.ct for k, v in self.W.items()}
