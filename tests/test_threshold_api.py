"""Issue 3 end to end: t-out-of-n decryption by any t-subset, collective refresh, results switched to
the researcher's own key, refusal of misuse."""

import itertools

import numpy as np
import pytest

import mpclr
from mpclr.errors import ParameterError, ProtocolError

from .checks import assert_rotated

TOL = 2e-3


@pytest.fixture(scope="module")
def fed32():
    fed = mpclr.Federation(manifest="exploration", hospitals=3, threshold=2, preset="fast")
    yield fed
    fed.close()


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(11).uniform(-1, 1, 4096)


def test_every_two_subset_of_three_decrypts(fed32, x):
    a = fed32.hospitals[0].encrypt(x)
    for by in itertools.combinations(range(3), 2):
        assert np.abs(fed32.decrypt(a, by=by) - x).max() < TOL
    assert np.abs(fed32.decrypt(a) - x).max() < TOL  # all three also works


def test_fewer_than_t_raise_before_sending(fed32, x):
    a = fed32.hospitals[1].encrypt(x[:10])
    before = fed32.network.traffic.total_bytes()
    with pytest.raises(ProtocolError, match="at least 2"):
        fed32.decrypt(a, by=[2])
    assert fed32.network.traffic.total_bytes() == before


def test_too_few_shares_combined_give_garbage(fed32, x):
    a = fed32.hospitals[0].encrypt(x)
    data, shares = fed32.researcher.collect_shares(a, by=[0, 1])
    good = fed32.researcher.combine(data, shares.values(), a.length)
    assert np.abs(good - x).max() < TOL
    bad = fed32.researcher.combine(data, [shares["hospital-1"]], a.length)
    assert np.abs(bad - x).max() > 1e3


def test_hospitals_refuse_too_few_participants(fed32):
    with pytest.raises(ProtocolError, match="fewer than the threshold"):
        fed32.server.call("hospital-1", "gkg.share", galois_elt=3, participants=["hospital-1"])


def test_five_hospitals_threshold_three(x):
    fed = mpclr.Federation(manifest="exploration", hospitals=5, threshold=3, preset="fast", rotations=[1])
    a = fed.hospitals[4].encrypt(x)
    for by in [(0, 1, 2), (2, 3, 4), (0, 2, 4), (1, 3, 4), (0, 1, 2, 3, 4)]:
        assert np.abs(fed.decrypt(a, by=by) - x).max() < TOL
    # rotation keys made by a t-subset work for everyone
    fed.generate_rotation_keys([2], by=[1, 3, 4])
    r = fed.server.rotate(a, 2)
    assert_rotated(fed.decrypt(r, by=[0, 1, 2]), np.roll(x, -2), TOL)
    fed.close()


def test_rotation_keys_for_low_levels(fed32, x):
    """Keys made for levels up to 1 rotate a level-1 ciphertext right, cost what their residue rows predict at
    the primes' widths (2 digits on q_0, q_1, P of the full key's 5 digits on all 6 primes: 23 % at 'fast'),
    and a rotation above their level is refused, not garbage."""
    def gkg_bytes():
        return fed32.network.traffic.by_type["gkg.share"]["bytes"]

    before = gkg_bytes()
    fed32.generate_rotation_keys([5], level=1)
    low = gkg_bytes() - before
    fed32.generate_rotation_keys([6])
    full = gkg_bytes() - before - low
    bits = [q.bit_length() for q in fed32.ctx.primes]
    predicted = 2 * (bits[0] + bits[1] + bits[-1]) / ((len(bits) - 1) * sum(bits))
    assert abs(low / full - predicted) < 0.005
    s = fed32.server
    a = fed32.hospitals[0].encrypt(x)
    one = s.multiply_plain(s.multiply_plain(s.multiply_plain(a, 1.0), 1.0), 1.0)
    assert s.evaluator.get(one).level == 1
    assert_rotated(fed32.decrypt(s.rotate(one, 5)), np.roll(x, -5), TOL)
    with pytest.raises(ProtocolError, match="no rotation key for step 5 at level 4"):
        s.rotate(a, 5)
    fed32.generate_rotation_keys([5])  # made again, now for every level
    assert_rotated(fed32.decrypt(s.rotate(a, 5)), np.roll(x, -5), TOL)


def test_two_sets_of_rotation_keys_share_their_round(fed32, x):
    """generate_rotation_key_sets: a full-level set and a low-level one in one round (two gkg.share requests
    per hospital, each answered alone); a key the first set makes is not made again by the second."""
    s = fed32.server
    msgs = fed32.network.traffic.by_type["gkg.share"]["messages"]
    made = fed32.generate_rotation_key_sets([([7], None), ([7, 9], 1)])
    assert len(made) == 2  # 7 once (at every level), 9 for levels up to 1
    assert fed32.network.traffic.by_type["gkg.share"]["messages"] - msgs == 2 * 2 * 3  # 2 requests + 2 replies each
    a = fed32.hospitals[0].encrypt(x)
    assert_rotated(fed32.decrypt(s.rotate(a, 7)), np.roll(x, -7), TOL)
    one = s.multiply_plain(s.multiply_plain(s.multiply_plain(a, 1.0), 1.0), 1.0)
    assert_rotated(fed32.decrypt(s.rotate(one, 9)), np.roll(x, -9), TOL)
    with pytest.raises(ProtocolError, match="no rotation key for step 9 at level 4"):
        s.rotate(a, 9)


@pytest.mark.parametrize("preset,t", [("fast", 2), ("fast", 3)])
def test_refresh_then_full_depth(preset, t, x):
    """A ciphertext whose levels are used up down to the refresh level comes back to the top level and
    then takes the preset's full depth of multiplications."""
    fed = mpclr.Federation(manifest="exploration", hospitals=3, threshold=t, preset=preset)
    s = fed.server
    a = fed.hospitals[0].encrypt(x)
    bound = 4
    from mpclr.protocols.refresh import RefreshProtocol

    level = RefreshProtocol(fed.ctx).min_level(bound, t)
    c, expect = a, x.copy()
    while c.level > level:
        c, expect = s.square(c), expect**2
    assert c.level == level
    r = fed.refresh(c, by=range(t), bound_bits=bound)
    assert r.level == fed.ctx.top_level and r.scale == fed.ctx.scale_ladder[fed.ctx.top_level]
    assert np.abs(fed.decrypt(r, by=range(t)) - expect).max() < TOL
    y = x * 0.9
    b = fed.hospitals[1].encrypt(y)
    for _ in range(fed.ctx.top_level):
        r, expect = s.multiply(r, b), expect * y
        b = s.multiply_plain(b, 1.0)
    assert r.level == 0
    assert np.abs(fed.decrypt(r, by=range(t)) - expect).max() < 5e-3
    fed.close()


def test_refresh_sums_within_segments_through_a_slot_mask():
    """A window sum over each segment of the slots, kept at the segment's first position by a slot mask (a
    public polynomial on the refresh's exact integers) and rotated back over the segment: every slot of a
    segment gets its segment's sum per residue class, which rotations alone (convolutions) cannot give."""
    from mpclr.protocols.refresh import mask_polynomial
    from mpclr.seal.format import galois_elt_from_step

    fed = mpclr.Federation(manifest="exploration", hospitals=3, preset="train")
    slots, k, m = fed.ctx.params.slots, 4, 8
    seg = slots // k
    x = np.random.default_rng(4).uniform(-1, 1, slots) / 16
    a = fed.hospitals[0].encrypt(x)
    ct = fed.server.evaluator.get(a).ct
    steps = [m * 2**i for i in range((seg // m).bit_length() - 1)]
    first = np.zeros((k, seg // m, m))
    first[:, 0, :] = 1.0
    poly = mask_polynomial(fed.ctx, first.reshape(-1))
    elts = [galois_elt_from_step(s, fed.ctx.n) for s in steps]
    back = [galois_elt_from_step(-s, fed.ctx.n) for s in steps]
    [out] = fed.server.refresh_raw([ct], [a.level], [[(0, 0.5, elts, (0, back))]], bound_bits=1, polys=[poly])
    got = fed.decrypt(fed.server.evaluator.put(out, slots, fed.ctx.top_level))
    expect = np.repeat(0.5 * x.reshape(k, seg // m, m).sum(axis=1, keepdims=True), seg // m, axis=1).reshape(-1)
    assert np.abs(got - expect).max() < 2e-2
    assert np.abs(got - expect).std() < 4 * 0.5 * np.sqrt(seg // m) * 3e-4 + 1e-4
    fed.close()


def test_refresh_too_low_is_refused(fed32, x):
    a = fed32.hospitals[0].encrypt(x)
    for _ in range(fed32.ctx.top_level):
        a = fed32.server.multiply_plain(a, 1.0)
    with pytest.raises(ProtocolError, match="too low to refresh"):
        fed32.refresh(a, bound_bits=4)


def test_refresh_output_carries_the_full_smudging_of_every_hospital():
    """Issue 12: a refresh hides the input's key-dependent noise behind each hospital's smudging; a server
    that scaled the input up first (the old "precision boost" K) divided that smudging by K against the value
    while multiplying the noise it hides by K. The output of a refresh carries the hospitals' smudging at
    full size: measured with smudging-free decryption shares (made in each hospital's place)."""
    from mpclr.protocols.decryption import ThresholdDecryption
    from mpclr.ring import SecretRandom
    from mpclr.seal.format import CiphertextData, PlaintextData

    from .checks import refresh_flooding

    fed = mpclr.Federation(manifest="exploration", hospitals=3, preset="train")
    x = np.random.default_rng(2).uniform(-1, 1, fed.ctx.params.slots)
    r = fed.refresh(fed.hospitals[0].encrypt(x), bound_bits=1)
    data = CiphertextData.from_bytes(fed.server.evaluator.get(r).ct.to_bytes(compr_mode="none"))
    level = fed.ctx.check_ciphertext(data)
    dec, rng, ring = ThresholdDecryption(fed.ctx, smudging_bits=0), SecretRandom(), fed.ctx.ring(level)
    shares = [dec.gen_share(p._share_for(None), data.data[1], level, rng).data for p in fed.hospitals]
    plain = PlaintextData(fed.ctx.level_parms_id(level), data.scale, ring.add(data.data[0], ring.sum(shares)))
    err = fed.ctx.decode(fed.ctx.pyfhel(), plain) - x
    assert err.std() == pytest.approx(refresh_flooding(fed.params, 3), rel=0.1)
    assert getattr(fed.params, "refresh_smudging", fed.params.smudging_bits) >= 20
    with pytest.raises(TypeError):
        fed.refresh(r, bound_bits=1, boost_bits=12)  # no way to divide the smudging away
    fed.close()


def test_refresh_combines_linearly_in_one_round(fed32, x):
    """Public linear combinations of several ciphertexts at different levels and scales come out fresh
    at the top level, exactly combined: the Nesterov update of encrypted training runs here."""
    s = fed32.server
    y = np.random.default_rng(4).uniform(-1, 1, x.size)
    a = fed32.hospitals[0].encrypt(x)
    b = s.multiply(fed32.hospitals[1].encrypt(y), fed32.hospitals[2].encrypt(y))  # level 3, another scale
    before = fed32.traffic()["by_type"].get("refresh.share", {"messages": 0})["messages"]
    out = s.refresh_combine([[(0.25, a), (-1.5, b)], [(1.0, b)], [(2.0, a)]], bound_bits=4)
    assert fed32.traffic()["by_type"]["refresh.share"]["messages"] - before == 2 * 3  # one round
    assert all(o.level == fed32.ctx.top_level for o in out)
    assert np.abs(fed32.decrypt(out[0]) - (0.25 * x - 1.5 * y * y)).max() < TOL
    assert np.abs(fed32.decrypt(out[1]) - y * y).max() < TOL
    assert np.abs(fed32.decrypt(out[2]) - 2 * x).max() < TOL


def test_refresh_labels_never_repeat(fed32, x):
    a = fed32.hospitals[0].encrypt(x[:8])
    fed32.refresh(a, bound_bits=4)
    with pytest.raises(ProtocolError, match="used before"):
        fed32.server.call(
            "hospital-1",
            "refresh.share",
            label="refresh#1",
            level=1,
            c1=b"",
            ratio_num=1,
            ratio_den=1,
            mask_bits=80,
            participants=None,
        )


@pytest.mark.parametrize(
    "level,bits,match",
    [(2, 64, "less than this hospital's 64 bits of hiding"), (1, 100, "do not fit level 1"), (2, 2000, "absurd")],
)
def test_hospitals_refuse_refresh_masks_that_hide_too_little_or_do_not_fit(fed32, level, bits, match):
    """Issue 12: a hospital's masks are at least 64 bits wider than the values they hide (it cannot see
    the values' bound, only the width asked for) and must fit the level's modulus with room for the exact
    lift; anything else is refused before its key share is used."""
    with pytest.raises(ProtocolError, match=match):
        fed32.server.call("hospital-1", "refresh.share", label=f"masks-{level}-{bits}", level=level, c1=[b""],
                          mask_bits=bits, participants=None, outputs=[{"terms": [[0, 1, []]], "shift": 0}])


def test_key_switch_to_researcher(fed32, x):
    a = fed32.hospitals[2].encrypt(x)
    assert np.abs(fed32.receive(a, by=[0, 2]) - x).max() < TOL
    assert fed32.researcher.revealed[-1]["path"] == "key switch to researcher"
    # the switched ciphertext decrypts only under the researcher's key
    raw = fed32.researcher.key_switch(a, by=[0, 1])
    other = fed32.ctx.pyfhel()
    other.keyGen()
    from Pyfhel import PyCtxt

    ct = PyCtxt(pyfhel=other)
    ct.from_bytes(raw, scheme="ckks")
    assert np.abs(np.asarray(other.decryptFrac(ct))[: x.size] - x).max() > 1e3
    handle = fed32.server.import_ciphertext(raw, x.size)
    garbage = fed32.decrypt(handle, by=[0, 1])  # the key holders' key no longer opens it
    assert np.abs(garbage - x).max() > 1e3


def test_key_switch_refuses_other_targets(fed32, x):
    fed32.researcher.ensure_keys()
    a = fed32.hospitals[0].encrypt(x[:8])
    from mpclr.protocols.decryption import ThresholdDecryption
    from mpclr.seal.format import CiphertextData

    got = fed32.researcher.call("server", "ct.fetch", id=a.id, level=0)
    c1 = ThresholdDecryption(fed32.ctx).c1_to_bytes(CiphertextData.from_bytes(got["ciphertext"]).data[1], 0)
    with pytest.raises(ProtocolError, match="not the session researcher's"):
        fed32.researcher.call(
            "hospital-1", "pcks.share", c1=c1, level=0, participants=["hospital-1", "hospital-2"], target="00" * 32
        )
    with pytest.raises(ProtocolError, match="only the session's researcher"):
        fed32.server.call("hospital-1", "researcher.key", public_key=b"x")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"hospitals": 3, "threshold": 4}, "t > n"),
        ({"hospitals": 3, "threshold": 0}, "threshold"),
        ({"hospitals": 3, "threshold": True}, "threshold"),
    ],
)
def test_bad_thresholds(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        mpclr.Federation(manifest="exploration", **kwargs)


def test_shamir_boxes_are_opaque_to_the_server(fed32):
    """The server relays Shamir shares without being able to read them: opening a box needs the
    recipient's private key."""
    from mpclr.errors import MessageError
    from mpclr.wire import seal_box

    s = fed32.session
    box = seal_box(s.roster["hospital-2"], b"share", b"aad")
    with pytest.raises(MessageError, match="sealed box"):
        fed32.hospitals[0].identity.open_box(box, b"aad")
    assert fed32.hospitals[1].identity.open_box(box, b"aad") == b"share"
    with pytest.raises(MessageError, match="sealed box"):
        fed32.hospitals[1].identity.open_box(box, b"other aad")


def test_a_dead_key_holder_is_left_out_while_t_remain(x):
    """2-of-3: a hospital stops answering mid-study; rounds are redone with the others and results stay
    right. With fewer than t left, a clear error and no result."""
    fed = mpclr.Federation(manifest="exploration", hospitals=3, threshold=2, preset="fast")
    a = fed.hospitals[0].encrypt(x)
    fed.network.down.add("hospital-2")
    assert np.abs(fed.decrypt(a) - x).max() < TOL
    assert fed.researcher.revealed[-1]["by"] == ["hospital-1", "hospital-3"]
    r = fed.refresh(fed.server.multiply_plain(a, 0.5), bound_bits=4)
    assert np.abs(fed.decrypt(r) - 0.5 * x).max() < TOL
    assert np.abs(fed.receive(a) - x).max() < TOL
    fed.generate_rotation_keys([1])
    assert_rotated(fed.decrypt(fed.server.rotate(a, 1)), np.roll(x, -1), TOL)
    with pytest.raises(ProtocolError, match="no answer from hospital-2"):
        fed.decrypt(a, by=[0, 1])  # named explicitly: no silent substitution
    fed.network.down.add("hospital-3")
    with pytest.raises(ProtocolError, match="at least 2 key holders.*not answering: hospital-2, hospital-3"):
        fed.decrypt(a)
    fed.close()


def test_n_out_of_n_stops_when_a_key_holder_dies(x):
    fed = mpclr.Federation(manifest="exploration", hospitals=3, preset="fast")
    a = fed.hospitals[0].encrypt(x)
    fed.network.down.add("hospital-3")
    with pytest.raises(ProtocolError, match="hospital-3"):
        fed.decrypt(a)
    fed.close()


def test_refresh_rotates_and_sums_without_keys(fed32, x):
    """An output may rotate-and-sum an input over slots: done on the exact integers of the lifted
    plaintext and the masks (a signed permutation of coefficients), so no rotation key is involved."""
    from mpclr.seal.format import galois_elt_from_step

    s = fed32.server
    a = fed32.hospitals[0].encrypt(x)
    e = s.evaluator.get(a)
    steps = [1, 2, 4]  # sum over 8 consecutive slots
    elts = tuple(galois_elt_from_step(k, fed32.ctx.n) for k in steps)
    (out,) = s.refresh_raw([e.ct], [e.level], [[(0, 0.5, elts)]], bound_bits=4)
    h = s.evaluator.put(out, x.size, fed32.ctx.top_level)
    expect = 0.5 * sum(np.roll(x, -k) for k in range(8))
    assert np.abs(fed32.decrypt(h) - expect).max() < TOL
    assert not any(elt in s.galois_elements for elt in elts[1:])  # no key for steps 2 and 4 was needed
