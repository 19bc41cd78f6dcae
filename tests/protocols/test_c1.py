"""The c1 uniformity test: its false-refusal probability, computed exactly, and what it catches."""

import math

import numpy as np
import pytest
from scipy.stats import binom

from mpclr.errors import ProtocolError
from mpclr.federation import seal_context
from mpclr.params import get_preset
from mpclr.protocols import c1 as c1check
from mpclr.ring import SecretRandom


@pytest.mark.parametrize("preset", ["fast", "train", "deep"])
def test_a_genuine_c1_is_refused_with_probability_below_2_to_minus_64(preset):
    """Exact binomial tails at the accepted bounds, summed over every range of every prime of the
    largest ring: the union bound on refusing a uniform c1 stays below 2^-64."""
    ctx = seal_context(get_preset(preset))
    total = 0.0
    for q in ctx.key_ring.moduli:
        lo, hi, width = c1check.count_bounds(ctx.n, q)
        probs = [width / q] * (c1check.BINS - 1) + [(q - (c1check.BINS - 1) * width) / q]
        for b, p in enumerate(probs):
            total += binom.cdf(lo[b], ctx.n, p) + binom.sf(hi[b] - 1, ctx.n, p)
    assert 0 < total < 2.0**-64, math.log2(total)


def test_uniform_polynomials_pass_and_crafted_ones_fail():
    ctx = seal_context(get_preset("fast"))
    ring = ctx.ring(1)
    rng = SecretRandom()
    for _ in range(50):
        c1check.check_uniform(ring, rng.uniform_poly(ring), "uniform")
    n = ring.n
    half_zero = rng.uniform_poly(ring)
    coeffs = ring.intt(half_zero)
    coeffs[:, : n // 20] = 0  # 5 % zero coefficients
    crafted = {
        "constant": np.r_[1 << 35, np.zeros(n - 1, dtype=np.int64)],
        "small": rng.uniform_bounded(n, 24).astype(np.int64),
        "one sign": np.abs(rng.uniform_bounded(n, 28).astype(np.int64)),
    }
    for name, c in crafted.items():
        with pytest.raises(ProtocolError, match="not a ciphertext's random half"):
            c1check.check_uniform(ring, ring.ntt(ring.from_signed(c)), name)
    with pytest.raises(ProtocolError, match="range 0 of 16"):
        c1check.check_uniform(ring, ring.ntt(coeffs), "sparse")


def test_rerandomize_gives_a_fresh_c1_for_the_same_message():
    import mpclr
    from mpclr.seal.format import CiphertextData

    with mpclr.Federation(hospitals=2, manifest="exploration") as fed:
        x = np.linspace(-1, 1, 16)
        h = fed.hospitals[0].encrypt(x)
        got = fed.researcher.call("server", "ct.fetch", id=h.id, level=0)
        data = CiphertextData.from_bytes(got["ciphertext"])
        ring = fed.ctx.ring(0)
        pk = CiphertextData.from_bytes(fed.server.public_key).data
        c0, c1 = c1check.rerandomize(ring, pk, data.data[0], data.data[1], SecretRandom(), fed.ctx.key_ring)
        assert c1check.digest(c1) != c1check.digest(data.data[1])
        fresh = CiphertextData(data.parms_id, data.scale, np.stack([c0, c1]))
        shares = {}
        for p in fed.hospitals:
            reply = fed.researcher.call(p.name, "decrypt.share", c1=fed.researcher._dec.c1_to_bytes(c1, 0), level=0)
            shares[p.name] = fed.researcher._dec.share_from_bytes(reply["share"], 0)
        assert np.abs(fed.researcher.combine(fresh, shares.values(), x.size) - x).max() < 1e-3
