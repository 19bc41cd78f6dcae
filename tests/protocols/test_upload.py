"""Share-keyed uploads: the collective upload key switches a hospital's (seed, c0) to the collective key;
the threshold decryption matches numpy and the noise stays below a public-key encryption's."""

import numpy as np
import pytest

from mpclr.errors import FormatError
from mpclr.params import get_preset
from mpclr.protocols.cpk import PublicKeyGen
from mpclr.protocols.decryption import ThresholdDecryption
from mpclr.protocols.share import SecretKeyShare
from mpclr.protocols.upload import UploadEncryptor, UploadKeyGen, read_upload
from mpclr.ring import CommonRandomString
from mpclr.roles.uploads import UploadKeys
from mpclr.seal.context import SealContext
from mpclr.seal.format import CiphertextData, PlaintextData

from .helpers import apply_secret, make_parties, max_centered


@pytest.fixture(scope="module")
def ctx():
    return SealContext(get_preset("fast"))


def upload_key(ctx, sks, rng, owner, z):
    crs = CommonRandomString(b"public seed for tests, 32 bytes!")
    gen = UploadKeyGen(ctx)
    crp = gen.sample_crp(crs, owner)
    shares = [gen.share_from_bytes(gen.gen_share(s, owner, crp, rng, z if k == 0 else None).to_bytes(), owner)
              for k, s in enumerate(sks)]
    return gen.key_bytes(gen.aggregate_shares(shares), crp)


def switch(ctx, key, raw):
    """The server's switch (mpclr.roles.uploads): SEAL with U on (c0, 0, x), switch_high with V on hi."""
    keys = UploadKeys(ctx)
    keys.install("h", key)
    return CiphertextData.from_bytes(keys.load(raw, "upload", "h"))


def decrypt(ctx, sks, rng, data):
    dec = ThresholdDecryption(ctx)
    level = ctx.check_ciphertext(data)
    shares = [dec.gen_share(s, data.data[1], level, rng) for s in sks]
    return ctx.decode(ctx.pyfhel(), dec.decrypt(data.data[0], dec.aggregate_shares(shares, level), level, data.scale))


def fresh_noise(ctx, sks, data, values, scale):
    """max |c0 + c1 s - m| in the coefficient domain: the encryption's own noise."""
    level = ctx.check_ciphertext(data)
    ring = ctx.ring(level)
    pt = ctx.pyfhel().encodeFrac(values, scale=scale)
    m = PlaintextData.from_bytes(pt.to_bytes(compr_mode="none"), ctx.n).data[: level + 1]
    phase = ring.add(data.data[0], apply_secret(ring, data.data[1], sks, level + 1))
    return max_centered(ring, ring.sub(phase, np.ascontiguousarray(m)))


@pytest.mark.parametrize("drops", [0, 2])
def test_switched_upload_decrypts_to_the_vector(ctx, drops):
    sks, rng = make_parties(ctx, 3)
    z = SecretKeyShare.generate(ctx.key_ring, rng)
    key = upload_key(ctx, sks, rng, "hospital-1", z)
    data_primes = ctx.primes[:-1]
    enc = UploadEncryptor(ctx.n, data_primes, [ctx.level_parms_id(lv) for lv in range(ctx.top_level + 1)], z.full())
    x = np.random.default_rng(3).uniform(-1, 1, ctx.params.slots)
    level = ctx.top_level - drops
    scale = 2.0**ctx.params.scale_bits if drops == 0 else ctx.scale_ladder[level]
    raw = enc.encrypt(ctx.pyfhel(), x, scale, drops)
    data = switch(ctx, key, raw)
    assert ctx.check_ciphertext(data) == level
    assert np.abs(decrypt(ctx, sks, rng, data) - x).max() < 2e-3  # scale 2^30, smudging 2^8
    # about half of a packed public-key ciphertext
    full = ctx.ring(level).shape[0] * ctx.n * 2 * max(q.bit_length() for q in data_primes) / 8
    assert len(raw) < 0.55 * full
    # its noise: one CBD error and the two switches' rounding, about a public-key encryption's (some 2^7
    # here); one key for the whole of a would add [a]_q0 e / P, about 2^10 (q_0 ~ P)
    cpk = PublicKeyGen(ctx)
    crs = CommonRandomString(b"another public seed for tests!!!")
    crp = cpk.sample_crp(crs)
    he = ctx.pyfhel()
    he.from_bytes_public_key(cpk.public_key(cpk.aggregate_shares([cpk.gen_share(s, crp, rng) for s in sks]), crp))
    ct = he.encryptFrac(x, scale=scale)
    for _ in range(drops):
        he.mod_switch_to_next_ctxt(ct)
    public = CiphertextData.from_bytes(ct.to_bytes(compr_mode="none"))
    assert fresh_noise(ctx, sks, public, x, scale) < 2**9
    assert fresh_noise(ctx, sks, data, x, scale) < 2**9


def test_an_upload_switched_with_another_hospitals_key_is_noise(ctx):
    sks, rng = make_parties(ctx, 2)
    z1, z2 = (SecretKeyShare.generate(ctx.key_ring, rng) for _ in range(2))
    other = upload_key(ctx, sks, rng, "hospital-2", z2)
    enc = UploadEncryptor(ctx.n, ctx.primes[:-1], [ctx.level_parms_id(lv) for lv in range(ctx.top_level + 1)],
                          z1.full())
    x = np.full(8, 0.5)
    out = decrypt(ctx, sks, rng, switch(ctx, other, enc.encrypt(ctx.pyfhel(), x, 2.0**ctx.params.scale_bits, 0)))
    assert np.abs(out[:8] - x).max() > 1.0


def test_a_malformed_upload_is_refused(ctx):
    rng_sks, rng = make_parties(ctx, 1)
    enc = UploadEncryptor(ctx.n, ctx.primes[:-1], [ctx.level_parms_id(lv) for lv in range(ctx.top_level + 1)],
                          rng_sks[0].full())
    raw = enc.encrypt(ctx.pyfhel(), np.ones(4), 2.0**ctx.params.scale_bits, 0)
    with pytest.raises(FormatError, match="expected"):
        read_upload(raw[:-10], ctx)
    with pytest.raises(FormatError, match="not a share-keyed upload"):
        read_upload(b"XXXX" + raw[4:], ctx)
