"""Threshold decryption: all shares decrypt, too few give garbage; smudging costs what it should."""

import numpy as np
import pytest

from mpclr.params import get_preset
from mpclr.protocols.decryption import ThresholdDecryption
from mpclr.seal.context import SealContext
from mpclr.seal.format import CiphertextData

from .helpers import make_parties


@pytest.fixture(scope="module")
def setup():
    """A ciphertext under a collective key made directly from the protocol objects (no network)."""
    from mpclr.protocols.cpk import PublicKeyGen
    from mpclr.ring import CommonRandomString

    ctx = SealContext(get_preset("fast"))
    sks, rng = make_parties(ctx, 3)
    crs = CommonRandomString(b"x" * 32)
    cpk = PublicKeyGen(ctx)
    crp = cpk.sample_crp(crs)
    pk = cpk.public_key(cpk.aggregate_shares([cpk.gen_share(s, crp, rng) for s in sks]), crp)
    he = ctx.pyfhel()
    he.from_bytes_public_key(pk)
    x = np.random.default_rng(3).uniform(-1, 1, ctx.params.slots)
    ct = he.encryptFrac(x)
    for _ in range(ctx.top_level):
        he.mod_switch_to_next_ctxt(ct)
    data = CiphertextData.from_bytes(ct.to_bytes(compr_mode="none"))
    return ctx, sks, rng, x, data


def run(ctx, shares_from, rng, data, smudging_bits=None):
    dec = ThresholdDecryption(ctx, smudging_bits)
    level = ctx.check_ciphertext(data)
    c1 = dec.c1_from_bytes(dec.c1_to_bytes(data.data[1], level), level)
    shares = [dec.share_from_bytes(dec.gen_share(s, c1, level, rng).to_bytes(), level) for s in shares_from]
    plain = dec.decrypt(data.data[0], dec.aggregate_shares(shares, level), level, data.scale)
    return ctx.decode(ctx.pyfhel(), plain)


def test_all_shares_decrypt(setup):
    ctx, sks, rng, x, data = setup
    assert np.abs(run(ctx, sks, rng, data) - x).max() < 1e-3


def test_too_few_shares_give_garbage(setup):
    ctx, sks, rng, x, data = setup
    for missing in range(3):
        out = run(ctx, [s for i, s in enumerate(sks) if i != missing], rng, data)
        assert np.abs(out - x).max() > 1e3  # uniformly random, nowhere near x


@pytest.mark.parametrize("bits,bound", [(0, 1e-4), (8, 1e-3), (14, 5e-2)])
def test_smudging_precision(setup, bits, bound):
    ctx, sks, rng, x, data = setup
    err = np.abs(run(ctx, sks, rng, data, bits) - x).max()
    assert err < bound
