"""The composite sign approximation (fitted in float64) and its evaluation on threshold-CKKS ciphertexts."""

import numpy as np
import pytest
from numpy.polynomial import chebyshev as cheb

import mpclr
from mpclr.errors import ParameterError
from mpclr.evaluation.comparison import (
    LadderOps,
    cycle_degrees,
    design_sign,
    fit_odd_stage,
    flat_stage,
    narrowest_transition,
)
from mpclr.training.blocks import Enc


@pytest.fixture(scope="module")
def fed():
    f = mpclr.Federation(manifest="exploration", hospitals=2, preset="train")
    yield f
    f.close()


def ops_of(fed):
    ctx = fed.ctx
    return LadderOps(fed.server.evaluator.he, ctx.primes, ctx.scale_ladder, ctx.top_level, ctx.params.slots)


def enc(fed, values):
    h = fed.hospitals[0].encrypt(values)
    return Enc(fed.server.evaluator.get(h).ct, h.level)


def dec(fed, x: Enc, scale_bits: int = 0):
    """Threshold decryption; values multiplied by 2^scale_bits first (additions) for more precision."""
    ops = ops_of(fed)
    for _ in range(scale_bits):
        x = ops.double(x)
    h = fed.server.evaluator.put(x.ct, fed.ctx.params.slots, x.level)
    try:
        return fed.decrypt(h, level=None) / 2.0**scale_bits
    finally:
        fed.server.forget(h)


# ------------------------------------------------------------------------------------------------ float
def test_cycle_degrees_fill_the_levels():
    for levels in range(2, 9):
        degrees = cycle_degrees(levels)
        assert sum(int(np.ceil(np.log2(d + 1))) for d in degrees) == levels
    assert cycle_degrees(5) == (3, 7)
    with pytest.raises(ParameterError):
        cycle_degrees(1)


def test_flat_stage_is_cheon_f():
    x = np.linspace(-1, 1, 101)
    assert np.allclose(cheb.chebval(x, flat_stage(3)), (3 * x - x**3) / 2)
    assert np.allclose(cheb.chebval(x, flat_stage(5)), (15 * x - 10 * x**3 + 3 * x**5) / 8)


@pytest.mark.parametrize("degree", [3, 7, 15])
def test_fitted_stage_is_monotone_bounded_and_beats_the_flat_one(degree):
    low = 1e-3
    coef = fit_odd_stage(low, degree)
    x = np.linspace(0, 1, 200001)
    p = cheb.chebval(x, coef)
    assert np.all(np.diff(p) >= -1e-9) and p.max() <= 1 + 1e-9 and abs(p[0]) < 1e-12
    assert cheb.chebval(-x, coef) == pytest.approx(-p)  # odd
    # degree 3: the flat f_1 is already optimal (slope 3/2 at 0); higher degrees gain on it
    gain = 1.0 if degree == 3 else 1.05
    assert cheb.chebval(low, coef) >= gain * cheb.chebval(low, flat_stage(degree)) - 1e-12


@pytest.mark.parametrize("bits", [8, 12, 18])
def test_composite_meets_its_certified_bound(bits):
    eps, alpha = 2.0**-bits, 1e-6
    comp = design_sign(eps, alpha, 5, 4)
    assert all(sum(int(np.ceil(np.log2(len(s)))) for s in c) == 5 for c in comp.cycles[:-1])
    assert sum(int(np.ceil(np.log2(len(s)))) for s in comp.cycles[-1]) <= 4
    x = np.unique(np.r_[np.geomspace(eps, 1, 300001), np.linspace(eps, 1, 300001)])
    f = comp.evaluate(x)
    assert np.abs(f - 1).max() <= alpha
    assert np.allclose(comp.evaluate(-x), -f)
    inside = np.linspace(0, eps, 10001)
    g = comp.evaluate(inside)
    assert g.min() >= -1e-12 and g.max() <= 1 + alpha and np.all(np.diff(g) >= -1e-9)
    assert np.allclose(comp.step(x), 1.0, atol=alpha) and np.allclose(comp.step(-x), 0.0, atol=alpha)


def test_a_design_under_refresh_noise_holds_for_every_noisy_path():
    """Issue 12: each refresh adds smudging of up to `noise` to every value. The design tracks the values
    beyond the transition as an interval widened by the noise at every refresh, so the bound holds for any
    noise within it (here the worst: always against the sign), and refuses transitions the noise swamps."""
    noise, eps, alpha = 2.0**-11, 2.0**-8, 1e-6
    comp = design_sign(eps, alpha, 5, 5, noise, noise)
    x = np.geomspace(eps, 1, 20001)
    for push in (-1.0, 1.0):  # every refresh pushes every value by the full noise, down or up
        y = x + push * noise
        for i, cycle in enumerate(comp.cycles):
            if i:
                y = y + push * noise
            for coef in cycle:
                y = cheb.chebval(y, coef)
        assert np.abs(y - 1).max() <= alpha
    with pytest.raises(ParameterError, match="under refresh noise"):
        design_sign(2.0**-12, alpha, 5, 5, noise, noise)
    assert narrowest_transition(alpha, 5, 5, noise, noise, 2.0**-18) <= eps
    assert narrowest_transition(alpha, 5, 5, 0.0, 0.0, 2.0**-18) == 2.0**-18


def test_finer_transitions_cost_more_cycles():
    assert len(design_sign(2.0**-8).cycles) < len(design_sign(2.0**-12).cycles) < len(design_sign(2.0**-18).cycles)
    with pytest.raises(ParameterError):
        design_sign(0.7)


# ------------------------------------------------------------------------------------------------ CKKS
def test_chebyshev_evaluation_on_the_ladder(fed):
    ops = ops_of(fed)
    x = np.linspace(-1, 1, fed.ctx.params.slots)
    c = enc(fed, x)
    for coef in (fit_odd_stage(1e-3, 7), fit_odd_stage(0.05, 15), flat_stage(3)):
        depth = int(np.ceil(np.log2(len(coef))))
        out = ops.chebyshev_odd(c, coef)
        assert out.level == c.level - depth
        assert float(out.ct.scale) == fed.ctx.scale_ladder[out.level]
        assert np.abs(dec(fed, out, 10) - cheb.chebval(x, coef)).max() < 1e-5
    # a landing level below the natural one (scalars multiplied in where the product needs them)
    low = ops.chebyshev_odd(c, flat_stage(7), target=1)
    assert low.level == 1 and np.abs(dec(fed, low, 10) - cheb.chebval(x, flat_stage(7))).max() < 1e-5


def test_composite_with_collective_refreshes_keeps_the_sign(fed):
    """The whole composite under encryption, refreshed (real part) between cycles with the preset's sized
    smudging, designed for that smudging's bound: outside the transition every slot lands on sign(x) up
    to the decryption's smudging; inside it stays in [-1, 1]; nothing diverges."""
    from mpclr.protocols.refresh import RefreshProtocol

    from ..checks import decryption_flooding, refresh_flooding

    ops, s, ctx = ops_of(fed), fed.server, fed.ctx
    proto = RefreshProtocol(ctx)
    level = proto.min_level(1, fed.n)
    noise = 6 * refresh_flooding(fed.params, fed.n)
    cycles, last = ctx.top_level - level, ctx.top_level - 2
    eps = narrowest_transition(1e-6, cycles, last, noise, noise, 2.0**-18)
    comp = design_sign(eps, 1e-6, cycles, last, noise, noise)
    assert comp.noise == noise and eps > noise  # the transition is wider than the noise it must survive
    g = np.random.default_rng(5)
    x = g.uniform(-1, 1, ctx.params.slots)
    x[:2000] = g.uniform(-4 * eps, 4 * eps, 2000)
    x[2000:2100] = g.uniform(-1e-7, 1e-7, 100)
    conj = 2 * ctx.n - 1
    c = enc(fed, x)
    for i, cycle in enumerate(comp.cycles):
        if i:  # refreshed, projected on the reals: (c + conj(c)) / 2
            c = Enc(s.refresh_raw([c.ct], [c.level], [[(0, 0.5, (conj,))]], bound_bits=1)[0], ctx.top_level)
        for coef in cycle:
            c = ops.chebyshev_odd(c, coef)
    v = dec(fed, c)
    tol = 1e-6 + 6 * decryption_flooding(fed.params, fed.n)  # the decryption's own smudging, 6 sigma
    outside = np.abs(x) >= eps
    assert np.abs(v[outside] - np.sign(x[outside])).max() < tol
    assert np.abs(v).max() < 1 + tol
