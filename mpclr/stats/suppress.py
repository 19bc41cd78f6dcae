"""Which pooled counts are small, decided under encryption: the researcher never decrypts a small count.

Each hospital sends, per cell, its count clipped at min_cell m and divided by the public bound
B = m x hospitals (twice: slots 0..K-1 and K..2K-1). The pooled clipped sum C' is below m exactly when the
pooled count C is (if any hospital holds m or more, C' >= m), and C' lies in [0, B], so the comparison's
domain is small whatever the row count: the transition is 1 / (2B), a few refresh cycles.

At the server (mpclr.evaluation.comparison's composite sign, the secure evaluation's machinery):
  x = C'/B - (0.5/B in the first half, (m - 0.5)/B in the second)
  h = (1 + F(x)) / 2                    [C >= 1] in the first half, [C >= m] in the second
  s = Re(h - rot_K(h))                  one collective refresh applies the rotation and the projection on
                                        the reals to its exact integers (no key switch, no rotation key)
so slot i < K holds [1 <= C_i < m]: 1 for a small non-zero cell, 0 for an empty or a large one. A public
0/1 mask keeps the slots the researcher is to see (mpclr.stats.table1: the class sizes first, then the
cells of the columns shown); everything else is zeroed before decryption.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..evaluation.comparison import LadderOps, design_sign
from ..protocols.refresh import RefreshProtocol
from ..seal.format import galois_elt_from_step
from ..training.blocks import Enc

__all__ = ["small_cell_flags", "composite", "ERROR"]

ERROR = 1e-6  # |h - [x > 0]| <= ERROR / 2 outside the transition: flags round exactly


class _Engine:
    def __init__(self, fed, by, purpose: str):
        self.server = fed.server
        self.ctx = fed.server.ctx
        self.by = by
        self.purpose = purpose  # the refresh rounds' label: the hospitals budget them by it
        ctx = self.ctx
        self.ops = LadderOps(self.server.evaluator.he, ctx.primes, ctx.scale_ladder, ctx.top_level, ctx.params.slots)
        self.parties = len(self.server.participants(by))
        self.refreshes = 0

    def refresh(self, x: Enc, terms) -> Enc:
        """One collective refresh of x with output sum_t a_t T_t(x) (terms: (coefficient, galois elements))."""
        ct = self.server.refresh_raw([x.ct], [x.level], [[(0, a, elts) for a, elts in terms]], self.by,
                                     bound_bits=1, purpose=self.purpose)[0]
        self.refreshes += 1
        return Enc(ct, self.ctx.top_level)


def composite(ctx, bound: float, parties: int):
    """The test's composite sign polynomial: public, from the preset, the clipping bound and the number of
    key holders refreshing (their smudging sets the noise each refresh adds, as for the secure evaluation:
    six standard deviations of a slot's share of it, in units of the comparison domain)."""
    top = ctx.top_level
    level = RefreshProtocol(ctx).min_level(1, parties)
    delta = min(ctx.scale_ladder[level:])
    sigma = RefreshProtocol(ctx).noise_sigma(level)  # the smudging and the shares' rounding on the wire
    noise = 6.0 * sigma * math.sqrt(parties * ctx.params.n / 2) / delta
    return design_sign(0.5 / bound, ERROR, top - level, top - 2, noise, 0.0)


def small_cell_flags(fed, flags, cells: int, min_cell: int, bound: float, by=None, purpose: str = "table1"):
    """The server's handle of s (see the module docstring; its first `cells` slots) for the pooled clipped
    counts `flags` (a server Ciphertext of 2 * cells slots); and what it cost. `purpose` labels its
    refresh rounds (purpose#k), as the study manifest budgets them."""
    t0 = time.perf_counter()
    eng = _Engine(fed, by, purpose)
    ctx, ops = eng.ctx, eng.ops
    conj = 2 * ctx.n - 1
    entry = eng.server.evaluator.get(flags)
    offsets = np.concatenate([np.full(cells, 0.5 / bound), np.full(cells, (min_cell - 0.5) / bound)])
    x = ops.add_plain(Enc(entry.ct, entry.level), -offsets)
    comp = composite(ctx, bound, eng.parties)
    for i, cycle in enumerate(comp.cycles):
        if i:
            x = eng.refresh(x, [(0.5, (conj,))])  # the real part only: imaginary noise never builds up
        for j, coef in enumerate(cycle):
            if i == len(comp.cycles) - 1 and j == len(cycle) - 1:
                coef = [a / 2.0 for a in coef]  # h = F / 2 + 1 / 2
            x = ops.chebyshev_odd(x, coef)
    h = ops.add_plain(x, 0.5)
    rot = galois_elt_from_step(cells, ctx.n)
    # 2 Re(h) - (h + rot h + conj(h + rot h)) / 2 = Re(h - rot_K h)
    s = eng.refresh(h, [(1.0, (conj,)), (-0.5, (rot, conj))])
    handle = eng.server.evaluator.put(s.ct, cells, s.level)  # the first `cells` slots are the tests
    cost = {"refreshes": eng.refreshes, "composite": comp.describe(), "seconds": time.perf_counter() - t0}
    return handle, cost
