"""Collective key generation: relations hold for n parties, shares round-trip through bytes."""

import numpy as np
import pytest

from mpclr.errors import FormatError
from mpclr.params import get_preset
from mpclr.protocols.cpk import PublicKeyGen
from mpclr.protocols.rlk import RelinKeyGen
from mpclr.protocols.rotation import RotationKeyGen
from mpclr.protocols.share import SecretKeyShare, Share
from mpclr.ring import CommonRandomString
from mpclr.seal.context import SealContext
from mpclr.seal.format import CiphertextData, KSwitchKeysData

from .helpers import apply_secret, make_parties, max_centered


@pytest.fixture(scope="module")
def ctx():
    return SealContext(get_preset("fast"))


@pytest.fixture
def crs():
    return CommonRandomString(b"public seed for tests, 32 bytes!")


@pytest.mark.parametrize("n", [2, 5])
def test_collective_public_key(ctx, crs, n):
    sks, rng = make_parties(ctx, n)
    proto = PublicKeyGen(ctx)
    crp = proto.sample_crp(crs)
    shares = [proto.share_from_bytes(proto.gen_share(sk, crp, rng).to_bytes()) for sk in sks]
    pk = CiphertextData.from_bytes(proto.public_key(proto.aggregate_shares(shares), crp))
    r = ctx.key_ring
    noise = max_centered(r, r.add(pk.data[0], apply_secret(r, pk.data[1], sks)))
    assert noise < 21 * n  # sum of n CBD(21) errors
    assert np.array_equal(pk.data[1], crp)


@pytest.mark.parametrize("n", [2, 4])
def test_collective_relinearization_key(ctx, crs, n):
    """Functional check: SEAL multiplies and relinearizes with the collective key, and the threshold
    decryption of the product matches numpy (the relation k0 + k1 s = g s^2 + e cannot be checked
    party by party, and s is never formed)."""
    from mpclr.protocols.decryption import ThresholdDecryption

    sks, rng = make_parties(ctx, n)
    cpk = PublicKeyGen(ctx)
    crp_pk = cpk.sample_crp(crs)
    pk = cpk.public_key(cpk.aggregate_shares([cpk.gen_share(s, crp_pk, rng) for s in sks]), crp_pk)
    proto = RelinKeyGen(ctx)
    crp = proto.sample_crp(crs)
    us = [proto.ephemeral(rng) for _ in sks]
    r1 = [proto.share_from_bytes(proto.gen_share_round_one(s, u, crp, rng).to_bytes(), 1) for s, u in zip(sks, us)]
    agg1 = proto.aggregate_shares(r1)
    r2 = [proto.share_from_bytes(proto.gen_share_round_two(s, u, agg1, rng).to_bytes(), 2) for s, u in zip(sks, us)]
    rlk = proto.relin_key(agg1, proto.aggregate_shares(r2))
    assert len(KSwitchKeysData.from_bytes(rlk).keys[0]) == len(ctx.gadget)

    he = ctx.pyfhel()
    he.from_bytes_public_key(pk)
    he.from_bytes_relin_key(rlk)
    g = np.random.default_rng(1)
    x, y = g.uniform(-1, 1, ctx.params.slots), g.uniform(-1, 1, ctx.params.slots)
    c = he.encryptFrac(x)
    he.multiply(c, he.encryptFrac(y))
    he.relinearize(c)
    for _ in range(ctx.top_level):
        he.rescale_to_next(c) if _ == 0 else he.mod_switch_to_next_ctxt(c)
    data = CiphertextData.from_bytes(c.to_bytes(compr_mode="none"))
    assert data.size == 2
    dec = ThresholdDecryption(ctx)
    level = ctx.check_ciphertext(data)
    shares = [dec.gen_share(s, data.data[1], level, rng) for s in sks]
    out = ctx.decode(ctx.pyfhel(), dec.decrypt(data.data[0], dec.aggregate_shares(shares, level), level, data.scale))
    assert np.abs(out - x * y).max() < 2e-3


def test_round_two_refuses_round_one_share(ctx, crs):
    sks, rng = make_parties(ctx, 2)
    proto = RelinKeyGen(ctx)
    raw = proto.gen_share_round_one(sks[0], proto.ephemeral(rng), proto.sample_crp(crs), rng).to_bytes()
    with pytest.raises(FormatError, match="rlk/round1"):
        proto.share_from_bytes(raw, 2)


@pytest.mark.parametrize("step", [1, -1, 7])
def test_collective_rotation_key(ctx, crs, step):
    sks, rng = make_parties(ctx, 3)
    proto = RotationKeyGen(ctx)
    elt = proto.galois_element(step)
    crp = proto.sample_crp(crs, elt)
    shares = [proto.share_from_bytes(proto.gen_share(s, elt, crp, rng).to_bytes(), elt) for s in sks]
    pairs = proto.rotation_key(proto.aggregate_shares(shares), crp)
    r = ctx.key_ring
    for j, (k0, k1) in enumerate(pairs):
        # k0 + sum_i (k1 s_i - g_j sigma(s_i)): a sum of per-party terms, like decryption shares
        acc = k0.copy()
        for s in sks:
            term = r.sub(r.mul(k1, s.full()), r.mul_scalar_rows(r.automorphism_ntt(s.full(), elt), ctx.gadget[j]))
            r.add(acc, term, out=acc)
        assert max_centered(r, acc) < 21 * 3


def test_rotation_key_for_low_levels_is_the_full_key_restricted(ctx, crs):
    """A key made for levels up to 1 holds digits 0..1 on the primes q_0, q_1 and P: there it satisfies the
    key relation as the full key does, and its share has the bytes of those residue rows at the primes' widths."""
    sks, rng = make_parties(ctx, 3)
    full, low = RotationKeyGen(ctx), RotationKeyGen(ctx, level=1)
    elt = full.galois_element(3)
    crp = low.sample_crp(crs, elt)
    np.testing.assert_array_equal(crp, full.sample_crp(crs, elt)[:2][:, low.rows])  # one CRP, restricted
    raw = [low.gen_share(s, elt, crp, rng).to_bytes() for s in sks]
    full_bytes = len(full.gen_share(sks[0], elt, full.sample_crp(crs, elt), rng).to_bytes())
    digits = len(ctx.gadget)
    bits = [q.bit_length() for q in ctx.primes]
    assert abs(len(raw[0]) / full_bytes - 2 * (bits[0] + bits[1] + bits[-1]) / (digits * sum(bits))) < 0.005
    pairs = low.rotation_key(low.aggregate_shares([low.share_from_bytes(b, elt) for b in raw]), crp)
    assert len(pairs) == digits
    r = ctx.key_ring
    for j, (k0, k1) in enumerate(pairs):
        if j >= 2:
            assert not k0.any() and not k1.any()
            continue
        acc = k0.copy()
        for s in sks:
            term = r.sub(r.mul(k1, s.full()), r.mul_scalar_rows(r.automorphism_ntt(s.full(), elt), ctx.gadget[j]))
            r.add(acc, term, out=acc)
        sub = r.sub_ring(low.rows)
        assert max_centered(sub, np.ascontiguousarray(acc[low.rows])) < 21 * 3


def test_share_bytes_are_validated(ctx, crs):
    sks, rng = make_parties(ctx, 1)
    proto = PublicKeyGen(ctx)
    raw = proto.gen_share(sks[0], proto.sample_crp(crs), rng).to_bytes()
    with pytest.raises(FormatError, match="truncated"):
        proto.share_from_bytes(raw[:-8])
    with pytest.raises(FormatError, match="not a protocol share"):
        proto.share_from_bytes(b"XXXX" + raw[4:])
    bad = Share("cpk", np.full(ctx.key_ring.shape, 2**62, dtype=np.uint64)).to_bytes()
    with pytest.raises(FormatError, match="reduced"):
        proto.share_from_bytes(bad)
    # packed at the primes' own widths, yet one value equal to its prime
    at_q = np.zeros(ctx.key_ring.shape, dtype=np.uint64)
    at_q[:, 0] = ctx.key_ring.q
    with pytest.raises(FormatError, match="not reduced modulo"):
        proto.share_from_bytes(Share("cpk", at_q).to_bytes())
    # residues travel at their primes' widths, not 64 bits
    assert len(raw) < 8 * np.prod(ctx.key_ring.shape) * max(q.bit_length() for q in ctx.key_ring.moduli) / 64 + 200
    other = SealContext(get_preset("deep"))
    with pytest.raises(FormatError, match="shape"):
        PublicKeyGen(other).share_from_bytes(raw)


def test_secret_share_never_leaves():
    import pickle

    ctx = SealContext(get_preset("fast"))
    sks, _ = make_parties(ctx, 1)
    assert "hidden" in repr(sks[0])
    with pytest.raises(TypeError):
        pickle.dumps(sks[0])
    assert not hasattr(SecretKeyShare, "to_bytes")
