"""Exact arithmetic of the collective refresh on integers of any width (RNS channels), against Python integers."""

import math
import os
import random
from fractions import Fraction

import numpy as np
import pytest

import mpclr
from mpclr.federation import seal_context
from mpclr.ring.wide import (
    Channels,
    combine,
    dyadic,
    dyadic_row,
    lift,
    mask_bytes,
    multiply_round,
    random_masks,
    rotate_and_sum,
)


@pytest.fixture(scope="module")
def ctx():
    return seal_context(mpclr.get_preset("train"))


@pytest.fixture(scope="module")
def top(ctx):
    return ctx.ring(ctx.top_level)


def same(ch: Channels, values) -> bool:
    ref = Channels.from_ints(ch.ring, values)
    return np.array_equal(ch.rows, ref.rows) and np.array_equal(ch.low, ref.low)


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_lift_is_exact_and_centered_beyond_128_bits(ctx, top, level):
    low = ctx.ring(level)
    big_q = math.prod(low.moduli)
    g = random.Random(level)
    values = [g.randrange(-(big_q // 4), big_q // 4) for _ in range(low.n)]
    values[:4] = [0, -1, big_q // 4 - 1, -(big_q // 4) + 1]
    ch, ratio = lift(low, low.from_int_list(values), top)
    assert same(ch, values)
    assert ratio == pytest.approx(max(abs(v) for v in values) / big_q, rel=1e-9)
    if level == 3:
        assert big_q.bit_length() > 190  # far beyond the old 126-bit kernels


def test_lift_refuses_values_near_half_the_modulus(ctx, top):
    low = ctx.ring(2)
    big_q = math.prod(low.moduli)
    with pytest.raises(OverflowError, match="exact lift"):
        lift(low, low.from_int_list([big_q // 3] + [0] * (low.n - 1)), top)


def _aut(values, elt, n):
    out = [0] * n
    for i, x in enumerate(values):
        j = (i * elt) % (2 * n)
        out[j % n] = -x if j >= n else x
    return out


def test_rotate_and_sum_is_the_signed_permutation(top):
    g = random.Random(3)
    n = top.n
    values = [g.randrange(-(2**200), 2**200) for _ in range(n)]
    elts = [3, 9, 2 * n - 1]
    out = rotate_and_sum(Channels.from_ints(top, values), elts)
    expect = values
    for e in elts:
        expect = [x + y for x, y in zip(expect, _aut(expect, e, n))]
    assert same(out, expect)


def test_multiply_round_is_the_rounded_negacyclic_product(top):
    """A slot mask applied on the refresh's exact integers: round(x p / 2^s) modulo X^N + 1, against Python
    integers (p sparse, so that the reference stays cheap)."""
    g = random.Random(5)
    n = top.n
    values = [g.randrange(-(2**190), 2**190) for _ in range(n)]
    poly = np.zeros(n, dtype=np.int64)
    support = g.sample(range(n), 5)
    for i in support:
        poly[i] = g.randrange(-(2**50), 2**50)
    shift = 50
    out = multiply_round(Channels.from_ints(top, values), top.ntt(top.from_signed(poly), inplace=True), shift)
    expect = [0] * n
    for i in support:
        for j, v in enumerate(values):
            k = i + j
            term = int(poly[i]) * v
            expect[k % n] += -term if k >= n else term
    expect = [(x + (1 << (shift - 1))) >> shift for x in expect]
    assert same(out, expect)


@pytest.mark.parametrize("bits", [2, 63, 64, 65, 115, 128, 129, 200])
def test_masks_are_the_uniform_integers_of_their_bytes(top, bits):
    n = top.n
    raw = os.urandom(mask_bytes(n, bits))
    m = random_masks(raw, top, bits)
    words = np.frombuffer(raw, dtype="<u8").reshape(-1, n)
    ints = [sum(int(words[k, i]) << (64 * k) for k in range(words.shape[0])) % (1 << bits) - (1 << (bits - 1))
            for i in range(n)]
    assert same(m, ints)
    assert min(ints) >= -(2 ** (bits - 1)) and max(ints) < 2 ** (bits - 1)
    if bits >= 8:
        assert max(abs(x) for x in ints).bit_length() >= bits - 3  # actually uses the range
    with pytest.raises(ValueError, match="random bytes"):
        random_masks(raw[:-8], top, bits)


@pytest.mark.parametrize("shift_cap", [0, 1, 37, 63, 64])
def test_combine_matches_python_rounding(top, shift_cap):
    g = random.Random(2 + shift_cap)
    n = top.n
    vals = [[g.randrange(-(2**180), 2**180) for _ in range(n)] for _ in range(3)]
    coefs = [Fraction(0.731), Fraction(-1.25e-3), Fraction(3.0)]
    a = [int(round(c * 2**shift_cap)) for c in coefs]
    out = combine([(Channels.from_ints(top, v), ak) for v, ak in zip(vals, a)], shift_cap)
    for i in range(0, n, 41):
        total = sum(ak * v[i] for ak, v in zip(a, vals))
        expect = (total + (1 << (shift_cap - 1))) >> shift_cap if shift_cap else total
        for r, q in enumerate(top.moduli):
            assert int(out[r, i]) == expect % q


def test_dyadic_is_close_bounded_and_shift_capped():
    for c in (1.0, -0.5, 123456.789, Fraction(1, 3), 0.731):
        a, s = dyadic(c)
        assert abs(a) < 2**62 and s <= 64
        assert abs(Fraction(a, 2**s) - Fraction(c)) <= abs(Fraction(c)) * Fraction(1, 2**60)
    a, s = dyadic(1e-9)  # small coefficients keep the 2^64 cap: a / 2^64 within 2^-65 absolute
    assert s == 64 and abs(Fraction(a, 2**64) - Fraction(1e-9)) <= Fraction(1, 2**65)
    assert dyadic(0) == (0, 0)
    a, s = dyadic_row([0.5, 1e-9, 3.0])
    assert s <= 64 and all(abs(x) < 2**62 for x in a)
