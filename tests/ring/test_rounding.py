"""Rounded shares (mpclr.ring.rounding) against exact Python integers: the error bound, sizes, edge values."""

import math

import numpy as np
import pytest

from mpclr.errors import FormatError
from mpclr.protocols.share import Share
from mpclr.ring.rns import Ring, _is_prime
from mpclr.ring.rounding import keep_bits, round_poly, unround_poly


def _ring(widths, n=64):
    """Distinct primes = 1 mod 2N of the given widths (the train preset's are 60 and 45 bits)."""
    primes = []
    for w in widths:
        q = (1 << w) - 2 * n + 1
        while not _is_prime(q) or q in primes:
            q -= 2 * n
        primes.append(q)
    return Ring(n, primes)


@pytest.mark.parametrize("widths", [[60, 45, 45], [60, 45, 45, 45, 45, 45, 45, 45]])
def test_rounding_error_is_below_half_a_dropped_unit(widths):
    ring = _ring(widths)
    big_q = math.prod(ring.moduli)
    keep = keep_bits(big_q.bit_length(), 26)
    drop = big_q.bit_length() - keep
    assert keep % 8 == 0 and 0 < drop <= 23
    rng = np.random.default_rng(len(widths))
    values = [int(v) for v in rng.integers(0, 2**62, ring.n)]
    values = [(v * big_q) >> 62 for v in values]  # uniform-ish over [0, Q)
    values[:4] = [0, big_q - 1, big_q // 2, (big_q >> keep) << keep]  # the edges and an exact value
    raw = round_poly(ring, ring.from_int_list(values), keep)
    assert len(raw) == ring.n * keep // 8
    back = unround_poly(ring, raw, keep, "test")
    got = ring.to_centered_int_list(ring.sub(back, ring.from_int_list(values)))
    assert max(abs(e) for e in got) <= 2 ** (drop - 1) + 1
    # the reference, in exact integers: round(v 2^keep / Q), then round(. Q / 2^keep)
    want = [((((v << keep) + big_q // 2) // big_q) * big_q + (1 << (keep - 1))) >> keep for v in values]
    assert back.tolist() == ring.from_int_list([w % big_q for w in want]).tolist()


def test_a_rounded_share_round_trips_its_tag_and_refuses_others():
    ring = _ring([60, 45, 45])
    data = ring.ntt(ring.from_int_list(list(range(ring.n))))
    keep = 128
    raw = Share("refresh/h1", data).to_rounded_bytes(ring, keep)
    assert len(raw) < ring.n * 150 // 8
    got = Share.from_rounded_bytes(raw, "refresh/h1", ring, keep)
    diff = ring.to_centered_int_list(ring.sub(ring.intt(got.data), ring.intt(data)))
    assert max(abs(e) for e in diff) <= 2**21 + 1
    with pytest.raises(FormatError, match="expected 'refresh/h0"):
        Share.from_rounded_bytes(raw, "refresh/h0/level=2", ring, keep)
    with pytest.raises(FormatError, match="bits per coefficient"):
        Share.from_rounded_bytes(raw, "refresh/h1", ring, 120)
    with pytest.raises(FormatError, match="bytes, expected"):
        Share.from_rounded_bytes(raw[:-1], "refresh/h1", ring, keep)
    # no smudging to hide a rounding: nothing dropped, the exact format
    assert keep_bits(150, 0) == 150 and Share.from_rounded_bytes(
        Share("t", data).to_rounded_bytes(ring, 150), "t", ring, 150).data.tolist() == data.tolist()
