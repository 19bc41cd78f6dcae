"""Encrypted comparison: a composite odd polynomial approximating sign on [-1, 1], fitted here, and its
evaluation on CKKS ciphertexts with exact level and scale bookkeeping.

The approximation
-----------------
CKKS evaluates only additions and multiplications, so [x > 0] is replaced by h(x) = (1 + F(x)) / 2 with
F = p_r o ... o p_1 a composition of odd polynomials (Cheon, Kim, Kim 2020: compositions of low-degree
polynomials reach a precision at far less depth than one polynomial). Every stage here is

- non-decreasing and at most 1 on [0, 1] (so F is monotone and every intermediate value stays in
  [-1, 1], what the collective refresh's masks are sized for), and
- the best such odd polynomial of its degree for its input range [l, 1]: the linear program
  max p(l) s.t. p <= 1, p' >= 0 on a dense grid of [0, 1] (Chebyshev basis), or Cheon et al.'s flat
  f_n(x) = sum_{i<=n} binom(2i, i) 4^-i x (1 - x^2)^i when that is better (near 1, where the solver's
  tolerance limits the fit).

After a stage, [l, 1] maps onto [p(l) / p(1), 1]. Monotone stages matter under encryption: minimax
stages (equi-oscillating on [l, 1], as in Lee et al. 2021) reach a precision with about half the
depth, but map values from the plateau back near l with slopes up to d^2, so CKKS noise grows by
orders of magnitude per cycle; measured here, slots that start at 0.05 diverged after four cycles.
With monotone stages a value is never demoted and the relative noise does not grow. A monotone odd
polynomial bounded by 1 has slope at most about d / 3 at 0 (1.5 for degree 3, 2.8 for 7, 5.4 for 15).

Stages come in refresh cycles that use the levels between two collective refreshes: degree 3 first
(its relinearizations at the top levels, where they are dearest), then degree 7, e.g. (3, 7) for 5
levels. The last cycle, one stage of degree 2^L - 1 on its L levels, keeps two levels free for the
label product and the aggregation mask. Cycles are added until the last one brings the error under
alpha, and the composite is certified on a dense grid of [0, 1]:

    |F(x) - sign(x)| <= alpha   for eps <= |x| <= 1,      F(x) in [0, 1] for 0 <= x < eps (odd, monotone),

so h is within alpha / 2 of [x > 0] outside (-eps, eps) and on the right side of 1/2 inside. A count
sum_i h(x_i) over n rows is exact after rounding when n alpha < 1 and at most one row of a count lies
within eps of its threshold (then its contribution still rounds to its side; several such rows can add
up to the wrong integer). With 5 levels per cycle and 4 in the last ('train'), alpha = 1e-6: eps = 2^-8
takes 5 cycles (depth 24), 2^-10 takes 6 and 2^-18 takes 10 (depth 49; `design_sign`).

Evaluation
----------
Stages are kept in the Chebyshev basis, whose coefficients stay near 1 (the monomial coefficients of a
degree-15 near-minimax stage reach 1e5 and would multiply the CKKS noise of the powers by as much). An
odd polynomial of degree 2^d - 1 is evaluated at depth d by p = q_0 + T_K q_1 (K = 2^(d-1), using
T_(K+j) = 2 T_K T_j - T_(K-j)), recursively; T_(2m) = (T_m + T_m) T_m - 1 costs one product; scalars are
multiplied into x at the level where their product is needed (one plaintext multiplication that lands
exactly on the level's scale), and all products that meet at one level share a single
relinearization. Every ciphertext stays on the parameter set's scale ladder (Delta_(l-1) =
Delta_l^2 / q_l), so sums never meet mismatched scales.

Slots are complex, and CKKS noise has an imaginary part as large as its real part. The composite is
built for real inputs: where the imaginary part of an input is as large as its real part (a score within
the noise of a threshold), the iterates leave the unit disk and diverge (measured before this was
handled). The caller therefore projects values on the reals, (z + conj(z)) / 2, at every collective
refresh (mpclr.evaluation.secure: the refresh applies the conjugation to its exact integers, no key needed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.polynomial import chebyshev as cheb
from Pyfhel import PyCtxt

from ..errors import ParameterError, ProtocolError
from ..training.blocks import Enc

__all__ = [
    "SignComposite", "design_sign", "narrowest_transition", "fit_odd_stage", "flat_stage", "cycle_degrees", "LadderOps"
]

_MAX_CYCLES = 12


# ================================================================================================
# fitting (public, float64)
def _grid(low: float, points: int) -> np.ndarray:
    """[0, 1], dense near 0 and near `low`."""
    return np.unique(np.concatenate([np.linspace(0.0, 1.0, points), np.geomspace(low / 100.0, 1.0, points)]))


def _odd_basis(x: np.ndarray, degree: int, derivative: bool = False) -> np.ndarray:
    """Columns T_1, T_3, ..., T_degree at x, or their derivatives T_k' = k U_(k-1) (three-term recurrences)."""
    x = np.asarray(x, dtype=np.float64)
    rows = np.empty((degree + 1, x.size))
    if derivative:  # U_0 = 1, U_1 = 2x, U_(k+1) = 2x U_k - U_(k-1); column k is k U_(k-1)
        rows[0] = 1.0
        if degree >= 1:
            rows[1] = 2.0 * x
        for k in range(1, degree):
            rows[k + 1] = 2.0 * x * rows[k] - rows[k - 1]
        return (np.arange(1, degree + 1, 2)[:, None] * rows[0:degree:2]).T
    rows[0] = 1.0
    if degree >= 1:
        rows[1] = x
    for k in range(1, degree):
        rows[k + 1] = 2.0 * x * rows[k] - rows[k - 1]
    return rows[1::2].T


@lru_cache(maxsize=512)
def fit_odd_stage(low: float, degree: int, points: int = 1000) -> tuple[float, ...]:
    """Chebyshev coefficients a_0..a_degree (even ones 0) of the odd polynomial of `degree` that is
    non-decreasing and at most 1 on [0, 1] and as large as possible at `low` (a linear program)."""
    from scipy.optimize import linprog

    if not 0.0 < low < 1.0 or degree < 1 or degree % 2 == 0:
        raise ParameterError(f"a sign stage needs 0 < low < 1 and an odd degree, got low={low}, degree={degree}")
    x = _grid(low, points)
    value, slope = _odd_basis(x, degree), _odd_basis(x, degree, derivative=True)
    res = linprog(
        -_odd_basis(np.array([low]), degree)[0],  # maximise p(low)
        A_ub=np.vstack([value, -slope]),  # p <= 1, p' >= 0
        b_ub=np.concatenate([np.ones(len(x)), np.zeros(len(x))]),
        bounds=[(None, None)] * value.shape[1],
        method="highs",
    )
    if not res.success:  # pragma: no cover - p = 0 is always feasible
        raise ParameterError(f"fitting a sign stage at {low} failed: {res.message}")
    full = np.zeros(degree + 1)
    full[1::2] = res.x
    return tuple(float(c) for c in full)


@lru_cache(maxsize=16)
def flat_stage(degree: int) -> tuple[float, ...]:
    """Chebyshev coefficients of f_n, n = (degree - 1) / 2 (see the module docstring)."""
    n = (degree - 1) // 2
    x = np.polynomial.Polynomial([0.0, 1.0])
    out = np.polynomial.Polynomial([0.0])
    for i in range(n + 1):
        out = out + math.comb(2 * i, i) / 4**i * x * (1 - x * x) ** i
    full = np.zeros(degree + 1)
    c = cheb.poly2cheb(out.coef)
    full[: len(c)] = c
    full[0::2] = 0.0
    return tuple(float(v) for v in full)


def cycle_degrees(levels: int) -> tuple[int, ...]:
    """Stage degrees filling the `levels` levels of a refresh cycle: depth-2 stages (degree 3) first, where
    relinearizations are dearest (more primes), then depth-3 stages (degree 7), e.g. 5 -> (3, 7),
    4 -> (3, 3), 6 -> (7, 7)."""
    if levels < 2:
        raise ParameterError(f"a refresh cycle needs at least 2 levels for a sign stage, got {levels}")
    threes, rest = divmod(levels, 3)
    if rest == 1:
        threes, rest = threes - 1, 4
    return (3,) * (rest // 2) + (7,) * threes


@dataclass(frozen=True)
class SignComposite:
    """F = p_r o ... o p_1 with |F(x) - sign(x)| <= error for transition <= |x| <= 1 (see module doc).

    cycles: the stages (Chebyshev coefficients, odd) of each refresh cycle, every one non-decreasing on
    [0, 1] with maximum 1 there except possibly the very last (maximum within `error` of 1)."""

    transition: float
    error: float
    cycles: tuple[tuple[tuple[float, ...], ...], ...]
    noise: float = 0.0  # the refresh noise bound the design holds under (comparison-domain units)
    first_noise: float = 0.0  # ... and the bound on the inputs' noise before the first cycle

    @property
    def stages(self) -> list[tuple[float, ...]]:
        return [s for cycle in self.cycles for s in cycle]

    @property
    def degrees(self) -> list[list[int]]:
        return [[len(s) - 1 for s in cycle] for cycle in self.cycles]

    @property
    def depth(self) -> int:
        return sum(math.ceil(math.log2(len(s))) for s in self.stages)

    def evaluate(self, x) -> np.ndarray:
        """F(x) in float64: the reference the encrypted evaluation approximates."""
        y = np.asarray(x, dtype=np.float64)
        for s in self.stages:
            y = cheb.chebval(y, s)
        return y

    def step(self, x) -> np.ndarray:
        """h(x) = (1 + F(x)) / 2, the soft [x > 0]."""
        return 0.5 * (1.0 + self.evaluate(x))

    def describe(self) -> dict:
        return {
            "transition": self.transition,
            "error": self.error,
            "refresh_noise": self.noise,
            "input_noise": self.first_noise,
            "stage_degrees_per_refresh_cycle": self.degrees,
            "depth": self.depth,
        }


def _stage(low: float, degree: int) -> tuple[tuple[float, ...], float]:
    """The better of the fitted and the flat stage of this degree, normalised to maximum 1 on [0, 1]:
    (coefficients, value at `low`)."""
    best = None
    for coef in (fit_odd_stage(low, degree), flat_stage(degree)):
        top = float(cheb.chebval(1.0, coef))  # non-decreasing: the maximum on [0, 1] is at 1
        coef = tuple(c / top for c in coef)
        at_low = float(cheb.chebval(low, coef))
        if best is None or at_low > best[1]:
            best = (coef, at_low)
    return best


def _cycle(low: float, degrees) -> tuple[list, float]:
    stages = []
    for d in degrees:
        coef, low = _stage(low, d)
        stages.append(coef)
        low = min(low, 1.0 - 2.0**-45)  # converged: later stages only polish
    return stages, low


def _image(stages, lo: float, hi: float) -> tuple[float, float]:
    """min and max of the stages' composition over [lo, hi] (a dense grid; hi may exceed 1 by noise)."""
    x = np.unique(np.concatenate([np.linspace(lo, hi, 20001), np.geomspace(lo, hi, 20001)]))
    for coef in stages:
        x = cheb.chebval(x, coef)
    return float(x.min()), float(x.max())


def _noisy_cycles(transition: float, error: float, plan, noise: float, first_noise: float):
    """Cycles for inputs that carry refresh noise: first_noise (at most, per slot) before the first
    cycle, noise after every other one. The values of |x| >= transition are tracked as an interval
    [lo, hi], widened by the noise at every refresh; None when the noise swamps the transition.
    plan(i) gives cycle i's (stage degrees if it is not the last, closing stage degrees)."""
    lo, hi = transition - first_noise, 1.0 + first_noise
    cycles = []
    while len(cycles) < _MAX_CYCLES:
        if lo <= 0.0 or hi > 1.5:  # a value may cross zero, or leave the refresh's bound
            return None
        middle, last = plan(len(cycles))
        closing, _ = _cycle(lo, last)
        c_lo, c_hi = _image(closing, lo, hi)
        if 1.0 - c_lo <= error / 2 and c_hi - 1.0 <= error / 2:
            cycles.append(tuple(closing))
            return cycles
        stages, _ = _cycle(lo, middle)
        cycles.append(tuple(stages))
        lo, hi = _image(stages, lo, hi)
        lo, hi = lo - noise, hi + noise
    return None


@lru_cache(maxsize=64)
def design_sign(
    transition: float,
    error: float = 1e-6,
    cycle_levels: int = 5,
    last_levels: int = 4,
    noise: float = 0.0,
    first_noise: float | None = None,
    first_levels: int | None = None,
) -> SignComposite:
    """The composite with the fewest refresh cycles such that |F - sign| <= error on transition <= |x| <= 1,
    certified on a dense grid. Middle cycles use `cycle_levels` levels (stages of `cycle_degrees`), the
    last one `last_levels` (one stage of degree 2^last_levels - 1, at most 31).

    noise: a bound on the refresh noise every collective refresh adds to a value (its smudging, in units
    of the comparison domain), first_noise (default: noise) the bound on what the inputs carry before the
    first cycle. The bound then holds for inputs whose noiseless value lies beyond the transition.
    first_levels: the levels of the first cycle when the inputs start below the top (then one stage of
    degree 2^first_levels - 1, the steepest a cycle can be: it widens the values before the first refresh
    adds its noise); a first cycle that is also the last lands where the last one does."""
    if not 0.0 < transition < 0.5:
        raise ParameterError(f"parameter transition must be in (0, 0.5), got {transition!r}")
    if not 0.0 < error < 0.1:
        raise ParameterError(f"parameter error must be in (0, 0.1), got {error!r}")
    first_noise = noise if first_noise is None else first_noise
    if noise < 0 or first_noise < 0:
        raise ParameterError(f"refresh noise bounds must be non-negative, got {noise}, {first_noise}")
    middle = cycle_degrees(cycle_levels)
    if last_levels < 2 or (first_levels is not None and first_levels < 2):
        raise ParameterError(f"every refresh cycle needs at least 2 levels, got {last_levels}, {first_levels}")
    last = (2 ** min(last_levels, 5) - 1,)

    def plan(i: int):
        if i == 0 and first_levels is not None:
            return (2 ** min(first_levels, 5) - 1,), (2 ** min(first_levels, last_levels, 5) - 1,)
        return middle, last

    if noise == 0.0 and first_noise == 0.0:
        low, cycles = float(transition), []
        while True:
            stages_if_not_last, closing_degrees = plan(len(cycles))
            closing, at_low = _cycle(low, closing_degrees)
            if 1.0 - at_low <= error / 2:
                cycles.append(tuple(closing))
                break
            stages, low = _cycle(low, stages_if_not_last)
            cycles.append(tuple(stages))
            if len(cycles) >= _MAX_CYCLES:
                raise ParameterError(
                    f"no composite of {_MAX_CYCLES} cycles reaches error {error} at transition {transition}"
                )
    else:
        cycles = _noisy_cycles(float(transition), float(error), plan, float(noise), float(first_noise))
        if cycles is None:
            raise ParameterError(
                f"no composite of {_MAX_CYCLES} cycles reaches error {error} at transition {transition:.3g} "
                f"under refresh noise {noise:.3g} (inputs {first_noise:.3g}): the transition must be wider"
            )
    comp = SignComposite(float(transition), float(error), tuple(cycles), float(noise), float(first_noise))
    x = np.unique(np.concatenate([np.linspace(0.0, 1.0, 200001), np.geomspace(transition / 100, 1.0, 200001)]))
    f = comp.evaluate(x)
    plateau = x >= transition
    measured = max(float(1.0 - f[plateau].min()), float(f.max() - 1.0), float(-f.min()))
    if measured > error or np.diff(f).min() < -1e-8:
        raise ParameterError(f"composite sign misses its bound: error {measured:.3g} > {error:.3g} or not monotone")
    return comp


def narrowest_transition(
    error: float,
    cycle_levels: int,
    last_levels: int,
    noise: float,
    first_noise: float,
    finest: float,
    first_levels: int | None = None,
) -> float:
    """The narrowest transition 2^-k / 2^-(k + 1/2) (no narrower than `finest`) that `design_sign` can
    certify under these refresh noise bounds."""
    for half_bits in range(int(round(-2 * math.log2(finest))), 1, -1):
        eps = 2.0 ** (-half_bits / 2)
        if eps >= 0.25:
            break
        try:
            design_sign(eps, error, cycle_levels, last_levels, noise, first_noise, first_levels)
            return eps
        except ParameterError:
            continue
    raise ParameterError(f"refresh noise {noise:.3g} (inputs {first_noise:.3g}) leaves no usable comparison")


# ================================================================================================
# homomorphic evaluation on the scale ladder
class LadderOps:
    """CKKS arithmetic that keeps every ciphertext at its level's ladder scale.

    he: a Pyfhel with the relinearization key (and rotation keys for rotations); primes: q_0, q_1, ...
    (SEAL's order); ladder: the scale of each level; top: the top level."""

    def __init__(self, he, primes, ladder, top: int, slots: int):
        self.he = he
        self.primes = [int(q) for q in primes]
        self.ladder = [float(s) for s in ladder]
        self.top = int(top)
        self.slots = int(slots)
        self._plain: dict = {}
        self.rotate_level: int | None = None  # rotation keys made for levels up to this one only (None: all)

    # ------------------------------------------------------------------ plaintexts
    def encode(self, values, scale: float, level: int, key=None):
        """values (scalar or slot vector) encoded at `scale`, switched down to `level`; cached by key."""
        if key is not None:
            hit = self._plain.get((key, scale, level))
            if hit is not None:
                return hit
        v = np.asarray(values, dtype=np.float64)
        if v.ndim == 0:
            v = np.full(self.slots, float(v))
        pt = self.he.encodeFrac(np.ascontiguousarray(v), scale=scale)
        for _ in range(self.top - level):
            self.he.mod_switch_to_next_ptxt(pt, in_new_ptxt=False)
        if key is not None:
            self._plain[(key, scale, level)] = pt
        return pt

    # ------------------------------------------------------------------ levels and scalars
    def _switch(self, x: Enc, level: int) -> PyCtxt:
        if level > x.level:
            raise ProtocolError(f"internal: ciphertext at level {x.level} needed at level {level}")
        ct = PyCtxt(copy_ctxt=x.ct)
        for _ in range(x.level - level):
            self.he.mod_switch_to_next_ctxt(ct)
        return ct

    def cmul(self, x: Enc, value, level: int, key=None) -> Enc:
        """value * x (a public scalar, or a slot vector named by `key` for caching) landing at
        `level` < x.level on its ladder scale: x drops to level + 1, then one plaintext multiplication
        with the scale that makes the rescale land exactly on the ladder."""
        if level >= x.level:
            raise ProtocolError(f"internal: cmul from level {x.level} to {level}")
        if np.ndim(value) == 0:
            key = ("scalar", float(value))
        ct = self._switch(x, level + 1)
        scale = self.ladder[level] * self.primes[level + 1] / float(x.ct.scale)
        pt = self.encode(value, scale, level + 1, key=key)
        self.he.multiply_plain(ct, pt)
        self.he.rescale_to_next(ct)
        ct.scale = self.ladder[level]
        return Enc(ct, level)

    def down(self, x: Enc, level: int) -> Enc:
        """x at a lower level on that level's scale (a multiplication by 1, or nothing)."""
        if level == x.level:
            return x
        return self.cmul(x, 1.0, level)

    def add_plain(self, x: Enc, values, key=None) -> Enc:
        if np.ndim(values) == 0:
            key = ("scalar", float(values))
        pt = self.encode(values, float(x.ct.scale), x.level, key=key)
        return Enc(self.he.add_plain(x.ct, pt, in_new_ctxt=True), x.level)

    def add(self, a: Enc, b: Enc) -> Enc:
        level = min(a.level, b.level)
        a, b = self.down(a, level), self.down(b, level)
        return Enc(self.he.add(a.ct, b.ct, in_new_ctxt=True), level)

    def sub(self, a: Enc, b: Enc) -> Enc:
        level = min(a.level, b.level)
        a, b = self.down(a, level), self.down(b, level)
        return Enc(self.he.sub(a.ct, b.ct, in_new_ctxt=True), level)

    def double(self, x: Enc) -> Enc:
        """2 x without a level (an addition)."""
        return Enc(self.he.add(x.ct, x.ct, in_new_ctxt=True), x.level)

    def total(self, items: list[Enc]) -> Enc:
        level = min(x.level for x in items)
        acc = PyCtxt(copy_ctxt=self.down(items[0], level).ct)
        for x in items[1:]:
            self.he.add(acc, self.down(x, level).ct)
        return Enc(acc, level)

    # ------------------------------------------------------------------ products
    def dot(self, pairs: list[tuple[Enc, Enc]]) -> Enc:
        """sum a_i * b_i with one relinearization and one rescale; all operands at one level."""
        level = pairs[0][0].level
        acc = None
        for a, b in pairs:
            if a.level != level or b.level != level:
                raise ProtocolError("internal: dot operands at different levels")
            prod = self.he.multiply(a.ct, b.ct, in_new_ctxt=True)
            acc = prod if acc is None else self.he.add(acc, prod, in_new_ctxt=True)
        self.he.relinearize(acc)
        self.he.rescale_to_next(acc)
        acc.scale = self.ladder[level - 1]
        return Enc(acc, level - 1)

    def mul(self, a: Enc, b: Enc) -> Enc:
        level = min(a.level, b.level)
        return self.dot([(self.down(a, level), self.down(b, level))])

    def _check_rotation(self, x: Enc) -> None:
        if self.rotate_level is not None and x.level > self.rotate_level:  # SEAL would not notice: garbage
            raise ProtocolError(f"internal: rotation at level {x.level}, keys made up to level {self.rotate_level}")

    def rotate(self, x: Enc, step: int) -> Enc:
        self._check_rotation(x)
        return Enc(self.he.rotate(x.ct, int(step), in_new_ctxt=True), x.level)

    def rotate_sum(self, x: Enc, steps) -> Enc:
        """x + rot(x, s_1), then the same with s_2, ...: with steps m, 2m, ..., every slot sums its
        residue class mod m over the window the steps span."""
        self._check_rotation(x)
        ct = x.ct
        for step in steps:
            ct = self.he.add(ct, self.he.rotate(ct, int(step), in_new_ctxt=True), in_new_ctxt=True)
        return Enc(ct, x.level)

    # ------------------------------------------------------------------ odd polynomials (Chebyshev)
    def chebyshev_odd(self, x: Enc, coef, target: int | None = None) -> Enc:
        """sum a_k T_k(x) for odd Chebyshev coefficients a_0..a_d at depth ceil(log2(d + 1)), landing at
        `target` (default: as high as the depth allows)."""
        coef = [float(c) for c in coef]
        degree = len(coef) - 1
        depth = math.ceil(math.log2(degree + 1))
        target = x.level - depth if target is None else target
        if target < 0 or x.level - depth < target:
            raise ProtocolError(f"a degree-{degree} polynomial from level {x.level} cannot land at level {target}")
        powers = [x]  # powers[i] = T_(2^i)(x) at level x.level - i
        for _ in range(depth - 1):
            t = powers[-1]
            powers.append(self.add_plain(self.dot([(self.double(t), t)]), -1.0))
        terms = {k: a for k, a in enumerate(coef) if k % 2 == 1 and a != 0.0}
        return self._eval(powers, {}, terms, target)

    def _power(self, powers, memo, i: int, level: int) -> Enc:
        if (i, level) not in memo:
            memo[(i, level)] = self.down(powers[i], level)
        return memo[(i, level)]

    def _eval(self, powers, memo, terms: dict[int, float], target: int) -> Enc:
        pairs: list[tuple[Enc, Enc]] = []
        ready: list[Enc] = []
        self._collect(powers, memo, terms, target, pairs, ready)
        if pairs:
            ready.append(self.dot(pairs))
        return self.total(ready)

    def _collect(self, powers, memo, terms, target, pairs, ready) -> None:
        """p = q_0 + T_K q_1: the products of q_0 and T_K * q_1 all land at `target`, one relinearization."""
        degree = max(terms)
        if degree == 1:
            ready.append(self.cmul(powers[0], terms[1], target))
            return
        d = math.ceil(math.log2(degree + 1))
        k = 1 << (d - 1)
        lo = {j: a for j, a in terms.items() if j < k}
        hi: dict[int, float] = {}
        for j, a in terms.items():
            if j > k:  # a T_(k+i) = 2a T_k T_i - a T_(k-i)
                hi[j - k] = hi.get(j - k, 0.0) + 2.0 * a
                lo[2 * k - j] = lo.get(2 * k - j, 0.0) - a
        lo = {j: a for j, a in lo.items() if a != 0.0}
        if lo:
            self._collect(powers, memo, lo, target, pairs, ready)
        if hi:
            hi_ct = self._eval(powers, memo, hi, target + 1)
            pairs.append((self._power(powers, memo, d - 1, target + 1), hi_ct))
