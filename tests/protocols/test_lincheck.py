"""The random linear check on a relayed aggregate: exact against Python integers, linear, and strong
enough at every preset."""

import math
import os

import numpy as np
import pytest

from mpclr.errors import FormatError
from mpclr.federation import seal_context
from mpclr.params import get_preset
from mpclr.protocols.lincheck import SECURITY_BITS, LinearCheck, aggregate_digest
from mpclr.ring import SecretRandom


def _stack(ring, rows):
    rng = SecretRandom()
    return np.stack([rng.uniform_poly(ring) for _ in range(rows)])


def test_scalars_are_alpha_times_data_times_beta_exactly():
    ring = seal_context(get_preset("fast")).key_ring
    check = LinearCheck(ring, 4, os.urandom(16), os.urandom(32))
    data = _stack(ring, 4)
    # values near q make the 64-bit partial sums of the kernel's split as large as they get
    data[0] = (ring.q[:, None] - 1).astype(np.uint64)
    got = check.scalars(data)
    for c in range(check.count):
        for k, q in enumerate(ring.moduli):
            want = sum(int(a) * sum(int(b) * int(x) for b, x in zip(check._beta[c][k], data[r, k]))
                       for r, a in enumerate(check._alpha[c][k])) % q
            assert int(got[c, k]) == want


def test_scalars_are_linear_and_the_challenge_follows_the_digest():
    ring = seal_context(get_preset("fast")).key_ring
    session, digest = os.urandom(16), os.urandom(32)
    check = LinearCheck(ring, 6, session, digest)
    a, b = _stack(ring, 6), _stack(ring, 6)
    assert np.array_equal(check.scalars(ring.add(a, b)), check.total([check.scalars(a), check.scalars(b)]))
    claimed = [check.to_bytes(check.scalars(a)), check.to_bytes(check.scalars(b))]
    assert check.sum_matches(ring.add(a, b), claimed)
    assert not check.sum_matches(ring.add(a, a), claimed)
    assert not check.sum_matches(ring.add(a, b), [claimed[0], claimed[1][:-8]])  # malformed: no match
    assert np.array_equal(check.scalars(a), LinearCheck(ring, 6, session, digest).scalars(a))
    assert not np.array_equal(check.scalars(a), LinearCheck(ring, 6, session, os.urandom(32)).scalars(a))
    assert not np.array_equal(check.scalars(a), LinearCheck(ring, 6, os.urandom(16), digest).scalars(a))
    d = aggregate_digest(session, "rlk.round1", b"A")
    assert d != aggregate_digest(session, "rlk.round2", b"A")
    assert d != aggregate_digest(os.urandom(16), "rlk.round1", b"A")


@pytest.mark.parametrize("preset", ["fast", "train", "deep"])
def test_a_wrong_aggregate_passes_with_probability_below_2_to_minus_128(preset):
    """Per challenge a nonzero difference passes with probability below 2/q; `count` challenges at the
    smallest prime bring it under 2^-SECURITY_BITS, in 8 bytes per challenge and prime."""
    ring = seal_context(get_preset(preset)).key_ring
    check = LinearCheck(ring, 2, os.urandom(16), os.urandom(32))
    log2_miss = check.count * (1 - math.log2(min(ring.moduli)))
    assert SECURITY_BITS == 128 and log2_miss <= -128, log2_miss
    assert check.nbytes == 8 * check.count * len(ring.moduli) <= 8 * 5 * 10


def test_scalars_from_bytes_refuse_bad_input():
    ring = seal_context(get_preset("fast")).key_ring
    check = LinearCheck(ring, 2, os.urandom(16), os.urandom(32))
    good = check.scalars(_stack(ring, 2))
    assert np.array_equal(check.from_bytes(check.to_bytes(good), "x"), good)
    with pytest.raises(FormatError, match="hospital-2's: 8 bytes of check scalars"):
        check.from_bytes(b"\0" * 8, "hospital-2's")
    bad = good.copy()
    bad[0, 0] = ring.moduli[0]
    with pytest.raises(FormatError, match="not reduced"):
        check.from_bytes(check.to_bytes(bad), "x")
    with pytest.raises(ValueError, match="for 2 polynomials, got 3"):
        check.scalars(_stack(ring, 3))
