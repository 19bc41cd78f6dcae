"""t-out-of-n: Shamir re-sharing and Lagrange-weighted shares, refresh, key switch (protocol level)."""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from mpclr.errors import ProtocolError
from mpclr.params import get_preset
from mpclr.protocols import shamir
from mpclr.protocols.refresh import RefreshProtocol
from mpclr.protocols.share import SecretKeyShare
from mpclr.seal.context import SealContext

from .helpers import make_parties


@pytest.fixture(scope="module")
def ctx():
    return SealContext(get_preset("fast"))


def reshare(ctx, sks, t, rng):
    n = len(sks)
    sharing = shamir.ThresholdSharing(ctx.key_ring, t, n)
    pts = list(range(1, n + 1))
    polys = [sharing.gen_polynomial(s, rng) for s in sks]
    return sharing, [
        SecretKeyShare(ctx.key_ring, sharing.aggregate_shares([sharing.gen_share(p, x) for p in polys])) for x in pts
    ]


@pytest.mark.parametrize("n,t", [(3, 2), (5, 3), (4, 4)])
def test_any_t_subset_gives_the_same_additive_sharing(ctx, n, t):
    """sum_{k in T} lambda_k sigma_k equals sum_i s_i for every T of size t: compared through c * s (a
    product with a public polynomial), so the secret itself is never formed."""
    sks, rng = make_parties(ctx, n)
    sharing, sigmas = reshare(ctx, sks, t, rng)
    r = ctx.key_ring
    c = rng.uniform_poly(r)
    expect = r.sum([r.mul(c, s.full()) for s in sks])
    for subset in itertools.combinations(range(n), t):
        xs = [k + 1 for k in subset]
        got = r.sum([r.mul(c, sharing.additive_share(sigmas[k], k + 1, xs).full()) for k in subset])
        assert np.array_equal(got, expect)


def test_fewer_than_t_do_not_give_the_key(ctx):
    sks, rng = make_parties(ctx, 3)
    sharing, sigmas = reshare(ctx, sks, 3, rng)
    with pytest.raises(ProtocolError, match="fewer than the threshold"):
        sharing.lagrange(1, [1, 2])
    # and interpolating through two points of a degree-2 polynomial gives something else entirely
    r = ctx.key_ring
    c = rng.uniform_poly(r)
    expect = r.sum([r.mul(c, s.full()) for s in sks])
    two = shamir.ThresholdSharing(ctx.key_ring, 2, 3)
    wrong = r.sum([r.mul(c, two.additive_share(sigmas[k], k + 1, [1, 2]).full()) for k in (0, 1)])
    assert not np.array_equal(wrong, expect)


def test_threshold_validation(ctx):
    with pytest.raises(ProtocolError, match="threshold"):
        shamir.ThresholdSharing(ctx.key_ring, 4, 3)
    with pytest.raises(ProtocolError, match="repeated"):
        shamir.ThresholdSharing(ctx.key_ring, 2, 3).lagrange(1, [1, 1, 2])


def test_refresh_planning(ctx):
    proto = RefreshProtocol(ctx)
    assert proto.mask_bits == 64
    assert proto.mask_bits_total(ctx.scale_ladder[2], 4) == math.ceil(math.log2(ctx.scale_ladder[2])) + 4 + 64
    assert proto.min_level(4, 3) == 2  # fast preset: 49 + 30 + 30 bits hold 3 masks of 2^(30+4+64), a quarter spare
    assert proto.min_level(20, 3) == 3
    ratio = proto.ratio(ctx.scale_ladder[1])
    assert isinstance(ratio, Fraction)
    assert float(ratio) * ctx.scale_ladder[1] == pytest.approx(ctx.scale_ladder[ctx.top_level], rel=1e-15)
    with pytest.raises(ProtocolError, match="no level"):
        proto.min_level(200, 3)


def test_train_preset_refreshes_at_level_2_with_64_bit_masks():
    """45-bit values (training's bound 2^8) under 64-bit masks need 118-bit masks: beyond q_0 q_1 (105 bits), inside
    q_0 q_1 q_2 (150 bits) for up to 64 hospitals, leaving 5 levels above for a training iteration."""
    from mpclr.federation import seal_context

    train = seal_context(get_preset("train"))
    proto = RefreshProtocol(train)
    assert proto.mask_bits_total(train.scale_ladder[2], 8) == 46 + 8 + 64  # the ladder's 2^45.000002
    assert proto.min_level(8, 3) == proto.min_level(8, 64) == 2
    assert train.top_level - 2 == 5


def test_refresh_batch_forgets_each_input_after_its_last_use(ctx):
    """A round's masks (a party) or lifted inputs (the combiner) go, with their rotate-and-sums, after the last
    output that needs them, and each output still gets exactly what it would from the whole batch."""
    from mpclr.protocols.refresh import _Transformed
    from mpclr.ring import SecretRandom
    from mpclr.ring.wide import mask_bytes, random_masks, rotate_and_sum

    top, rnd = ctx.ring(ctx.top_level), SecretRandom()
    values = [random_masks(rnd.bytes(mask_bytes(top.n, 80)), top, 80) for _ in range(3)]
    originals = list(values)
    e = (3, 5)  # galois elements
    outputs = [([(0, 1, e, ()), (1, 1, (), ())], 0), ([(2, 1, e, ())], 0), ([(0, 1, e, ())], 0)]
    batch = _Transformed(values, None, outputs)
    got = [[batch.take(k, elts, post) for k, _, elts, post in terms] for terms, _ in outputs]
    want = [[rotate_and_sum(originals[0], e), originals[1]], [rotate_and_sum(originals[2], e)],
            [rotate_and_sum(originals[0], e)]]
    for g_out, w_out in zip(got, want):
        for g, w in zip(g_out, w_out):
            assert np.array_equal(g.rows, w.rows) and np.array_equal(g.low, w.low)
    assert values == [None, None, None] and not batch.cache
