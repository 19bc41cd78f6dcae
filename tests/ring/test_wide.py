"""Exact wide-integer kernels of the collective refresh, against Python integers."""

import os
import random
from fractions import Fraction

import numpy as np
import pytest

import mpclr
from mpclr.federation import seal_context
from mpclr.ring.wide import Wide, combine_mod, crt_lift, dyadic, dyadic_row, random_wide


@pytest.fixture(scope="module")
def rings():
    fast = seal_context(mpclr.get_preset("fast"))
    train = seal_context(mpclr.get_preset("train"))
    return [fast.ring(1), fast.ring(2), train.ring(1)], train.ring(train.top_level)


def residues(ring, values):
    return np.stack([np.array([v % q for v in values], dtype=np.uint64) for q in ring.moduli])


def test_crt_lift_exact_and_centered(rings):
    g = random.Random(1)
    for ring in rings[0]:
        big = 1
        for q in ring.moduli:
            big *= q
        values = [g.randrange(-(big // 2), big // 2) for _ in range(ring.n)]
        values[:4] = [0, -1, big // 2 - 1, -(big // 2) + 1]
        assert crt_lift(ring, residues(ring, values)).to_ints() == values


def test_combine_matches_python_rounding(rings):
    lows, top = rings
    g = random.Random(2)
    ring = lows[2]
    vals = [[g.randrange(-(2**99), 2**99) for _ in range(ring.n)] for _ in range(3)]
    wides = [Wide.from_ints(v) for v in vals]
    coefs = [Fraction(0.731), Fraction(-1.25e-3), Fraction(3.0)]
    a, s = dyadic_row(coefs)
    for target in (ring, top):
        out = combine_mod(target, list(zip(wides, a)), s)
        for i in range(0, ring.n, 37):
            total = sum(ak * v[i] for ak, v in zip(a, vals))
            expect = (total + (1 << (s - 1))) >> s  # round half up, as the kernel does
            for r, q in enumerate(target.moduli):
                assert int(out[r, i]) == expect % q


def test_dyadic_is_close_and_bounded():
    for c in (1.0, -0.5, 1e-9, 123456.789, Fraction(1, 3)):
        a, s = dyadic(c)
        assert abs(a) < 2**62
        assert abs(Fraction(a, 2**s) - Fraction(c)) <= abs(Fraction(c)) * Fraction(1, 2**60)
    assert dyadic(0) == (0, 0)


@pytest.mark.parametrize("bits", [20, 63, 64, 65, 90, 126])
def test_random_wide_range(bits):
    n = 4000
    w = random_wide(os.urandom(16 * n), n, bits).to_ints()
    assert min(w) >= -(2 ** (bits - 1)) and max(w) < 2 ** (bits - 1)
    assert max(abs(x) for x in w).bit_length() >= bits - 3  # actually uses the range


def test_overflow_is_reported(rings):
    lows, top = rings
    big = Wide.from_ints([2**125] * top.n)
    with pytest.raises(OverflowError):
        combine_mod(top, [(big, 2**61)], 0)
