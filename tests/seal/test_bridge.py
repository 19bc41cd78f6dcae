"""Self-tests of the SEAL-format bridge against objects SEAL generated itself (via Pyfhel).

If a Pyfhel/SEAL upgrade changes a binary layout, the NTT, the parms_id or the key conventions, these
fail at once: the multiparty layer builds SEAL objects by hand and depends on all of them.
"""

import numpy as np
import pytest
from Pyfhel import Pyfhel

from mpclr.errors import FormatError
from mpclr.params import get_preset
from mpclr.ring import ring_for
from mpclr.seal.context import SealContext
from mpclr.seal.format import (
    CiphertextData,
    KSwitchKeysData,
    PlaintextData,
    galois_elt_from_step,
    pack_ciphertext,
    parms_id,
    unpack_ciphertext,
)

STEPS = [1, -1, 5]


@pytest.fixture(scope="module")
def seal_keys():
    p = get_preset("fast")
    he = Pyfhel()
    he.contextGen(scheme="ckks", n=p.n, scale=2.0**p.scale_bits, qi_sizes=list(p.coeff_bits))
    he.keyGen()
    he.relinKeyGen()
    he.rotateKeyGen(STEPS)
    ctx = SealContext(p)
    sk = PlaintextData.from_bytes(he.to_bytes_secret_key(compr_mode="none"), p.n, "secret key")
    return he, ctx, sk


def small(ring, poly_ntt, bound):
    """True if the polynomial (NTT form) has all centered coefficients below `bound`."""
    for row, qi in zip(ring.intt(poly_ntt).astype(np.int64), ring.moduli):
        centered = np.where(row > qi // 2, row - np.int64(qi), row)
        if np.abs(centered).max() >= bound:
            return False
    return True


def test_parms_id_matches_seal(seal_keys):
    he, ctx, sk = seal_keys
    assert sk.parms_id == parms_id(ctx.n, he.qi) == ctx.key_parms_id
    ct = CiphertextData.from_bytes(he.encrypt(np.ones(4)).to_bytes(compr_mode="none"))
    assert ct.parms_id == ctx.level_parms_id(ctx.top_level) == parms_id(ctx.n, he.qi[:-1])


def test_primes_are_seals(seal_keys):
    he, ctx, _ = seal_keys
    assert ctx.primes == tuple(he.qi)


def test_secret_key_ntt_is_exact(seal_keys):
    """SEAL's secret key, inverse-transformed by our NTT, is one ternary polynomial in every prime."""
    _, ctx, sk = seal_keys
    ring = ctx.key_ring
    coeffs = ring.intt(sk.data)
    s = ring.to_centered_small(coeffs)
    assert set(np.unique(s)) <= {-1, 0, 1}
    assert np.array_equal(ring.from_signed(s), coeffs)
    assert np.array_equal(ring.ntt(ring.from_signed(s)), sk.data)  # bit-identical forward NTT


def test_byte_exact_round_trips(seal_keys):
    he, ctx, _ = seal_keys
    for raw in (he.to_bytes_public_key(compr_mode="none"), he.encrypt(np.arange(8.0)).to_bytes(compr_mode="none")):
        assert CiphertextData.from_bytes(raw).to_bytes() == raw
    sk_raw = he.to_bytes_secret_key(compr_mode="none")
    assert PlaintextData.from_bytes(sk_raw, ctx.n).to_bytes() == sk_raw
    for raw in (he.to_bytes_relin_key(compr_mode="none"), he.to_bytes_rotate_key(compr_mode="none")):
        assert KSwitchKeysData.from_bytes(raw).to_bytes() == raw


def test_public_key_relation(seal_keys):
    he, ctx, sk = seal_keys
    pk = CiphertextData.from_bytes(he.to_bytes_public_key(compr_mode="none"))
    r = ctx.key_ring
    assert pk.parms_id == ctx.key_parms_id
    assert small(r, r.add(pk.data[0], r.mul(pk.data[1], sk.data)), 64)


def test_relin_key_relation(seal_keys):
    he, ctx, sk = seal_keys
    rlk = KSwitchKeysData.from_bytes(he.to_bytes_relin_key(compr_mode="none"))
    r = ctx.key_ring
    s2 = r.mul(sk.data, sk.data)
    assert len(rlk.keys) == 1 and len(rlk.keys[0]) == len(ctx.gadget)
    for j, key in enumerate(rlk.keys[0]):
        gs = r.mul_scalar_rows(s2, ctx.gadget[j])
        assert small(r, r.sub(r.add(key.data[0], r.mul(key.data[1], sk.data)), gs), 64)


def test_galois_key_relation_and_elements(seal_keys):
    he, ctx, sk = seal_keys
    gk = KSwitchKeysData.from_bytes(he.to_bytes_rotate_key(compr_mode="none"))
    elts = sorted(galois_elt_from_step(s, ctx.n) for s in STEPS)
    assert gk.galois_elements() == elts
    r = ctx.key_ring
    for elt in elts:
        rotated = r.automorphism_ntt(sk.data, elt)
        for j, key in enumerate(gk.keys[(elt - 1) // 2]):
            gs = r.mul_scalar_rows(rotated, ctx.gadget[j])
            assert small(r, r.sub(r.add(key.data[0], r.mul(key.data[1], sk.data)), gs), 64)


def test_encryption_relation_and_decode(seal_keys):
    he, ctx, sk = seal_keys
    x = np.linspace(-1, 1, ctx.params.slots)
    ct = CiphertextData.from_bytes(he.encrypt(x).to_bytes(compr_mode="none"))
    level = ctx.check_ciphertext(ct)
    ring = ctx.ring(level)
    m = ring.add(ct.data[0], ring.mul(ct.data[1], np.ascontiguousarray(sk.data[: level + 1])))
    out = ctx.decode(ctx.pyfhel(), PlaintextData(ct.parms_id, ct.scale, m))
    assert np.abs(out - x).max() < 1e-4


def test_malformed_objects_rejected(seal_keys):
    he, ctx, _ = seal_keys
    raw = he.encrypt(np.ones(4)).to_bytes(compr_mode="none")
    with pytest.raises(FormatError, match="truncated"):
        CiphertextData.from_bytes(raw[:-9])
    with pytest.raises(FormatError, match="not a SEAL object"):
        CiphertextData.from_bytes(b"\x00" * 200)
    with pytest.raises(FormatError, match="trailing"):
        CiphertextData.from_bytes(raw + b"\x00")
    bad = CiphertextData.from_bytes(raw)
    bad.data = bad.data.copy()
    bad.data[0, 0, 0] = np.uint64(2**63)
    with pytest.raises(FormatError, match="reduced"):
        ctx.check_ciphertext(bad)
    other = SealContext(get_preset("deep"))
    with pytest.raises(FormatError, match="another parameter set"):
        other.check_ciphertext(CiphertextData.from_bytes(raw))


def test_scale_ladder_is_closed_under_multiplication():
    ctx = SealContext(get_preset("fast"))
    ladder = ctx.scale_ladder
    for lvl in range(1, ctx.top_level + 1):
        assert ladder[lvl] ** 2 / ctx.primes[lvl] == pytest.approx(ladder[lvl - 1], rel=1e-15)
    assert ladder[ctx.top_level] == 2.0**30
    assert ring_for(ctx.n, ctx.primes[:1]).moduli == ctx.primes[:1]


def test_packed_ciphertexts_round_trip_and_are_checked(seal_keys):
    """Hospitals upload ciphertexts packed at the primes' widths; the server gets SEAL's bytes back."""
    he, ctx, _ = seal_keys
    raw = he.encrypt(np.linspace(-1, 1, 16)).to_bytes(compr_mode="none")
    packed = pack_ciphertext(raw)
    assert unpack_ciphertext(packed, ctx=ctx) == raw
    widest = max(q.bit_length() for q in ctx.primes)
    assert len(packed) < len(raw) * widest / 64 + 200
    with pytest.raises(FormatError, match="truncated"):
        unpack_ciphertext(packed[:-1], ctx=ctx)
    with pytest.raises(FormatError, match="truncated"):
        unpack_ciphertext(packed[:20])
    with pytest.raises(FormatError, match="not a packed ciphertext"):
        unpack_ciphertext(raw)
    # a residue equal to its prime still fits the prime's width: caught by the check, not the format
    bad = CiphertextData.from_bytes(raw)
    bad.data = bad.data.copy()
    bad.data[1, 0, 0] = np.uint64(ctx.primes[0])
    with pytest.raises(FormatError, match="reduced"):
        unpack_ciphertext(pack_ciphertext(bad.to_bytes()), ctx=ctx)
    other = SealContext(get_preset("deep"))
    with pytest.raises(FormatError, match="another parameter set"):
        unpack_ciphertext(packed, ctx=other)
