"""A misbehaving coordinator against real hospitals.

In a deployment the server, the researcher and the relay (Flower's SuperLink) all run at the
coordinator. Each test here is one attack a coordinator could make: a message built and sealed by the
in-process server or researcher node (their own keys, so the envelope itself is genuine) and sent to a
real hospital, which must refuse it with an error naming the cause. On the code before issue 13 every
one of these was answered, and the chosen-c1, forged-aggregate and rogue-key answers gave the
coordinator a hospital's key share or its patients' rows (see README, "Residual risks", for what a
hospital still cannot tell apart).

To add an attack: a test that builds the request with `fed` (key ceremony done) or `bare` (nodes
joined, no ceremony: drive the steps yourself), and asserts `refused(...)`.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest

import mpclr
from mpclr.errors import ProtocolError
from mpclr.federation import seal_context
from mpclr.keystore import Keystore
from mpclr.network import InProcessNetwork
from mpclr.params import get_preset
from mpclr.protocols import c1 as c1check
from mpclr.protocols.decryption import ThresholdDecryption
from mpclr.protocols.lincheck import aggregate_digest
from mpclr.protocols.rlk import TAG1, RelinKeyGen
from mpclr.protocols.share import Share
from mpclr.ring import SecretRandom
from mpclr.roles import Hospital, Researcher, Server, Session
from mpclr.roles.guard import commitment, round_one_check
from mpclr.roles.policy import Manifest
from mpclr.seal.format import CiphertextData

H1 = "hospital-1"


def refused(node, hospital: str, step: str, match: str, **fields) -> None:
    """`node` (the server or the researcher, i.e. the coordinator) sends `step` to `hospital`, which must
    refuse it with an error matching `match`."""
    with pytest.raises(ProtocolError, match=f"{hospital} refused {step}: .*{match}"):
        node.call(hospital, step, **fields)


@pytest.fixture(scope="module")
def fed():
    f = mpclr.Federation(hospitals=3, preset="fast", manifest="exploration")  # no budget: the handlers' checks
    yield f
    f.close()


@pytest.fixture
def bare():
    """A server, a researcher and 3 hospitals joined to a session, before any key ceremony step."""
    ctx = seal_context(get_preset("fast"))
    net = InProcessNetwork()
    server, researcher = Server("server", ctx, net), Researcher("researcher", ctx, net)
    hospitals = [Hospital(f"hospital-{i + 1}", ctx, net) for i in range(3)]
    nodes = [server, researcher, *hospitals]
    anything = Manifest.exploration_only()  # no budget: what is refused here, the handlers' checks refuse
    session = Session(os.urandom(16), ctx.fingerprint, {n.name: n.identity.public_bytes for n in nodes},
                      tuple(h.name for h in hospitals), 3, "server", "researcher", anything.digest)
    for h in hospitals:
        h.agree(anything)
    for node in nodes:
        node.join(session)
    yield SimpleNamespace(ctx=ctx, net=net, server=server, researcher=researcher, hospitals=hospitals,
                          names=[h.name for h in hospitals], session=session)
    net.close()


# --- c1 values a coordinator could choose -------------------------------------------------------------
def crafted_c1(ring, kind: str) -> np.ndarray:
    """A c1 (NTT form) that makes s_i * c1 + e reveal s_i, or part of it."""
    rng = SecretRandom()
    n = ring.n
    if kind == "constant":  # d = K * s_i + e: s_i read off exactly
        coeffs = np.zeros(n, dtype=np.int64)
        coeffs[0] = 1 << 30
    elif kind == "sparse":  # 1 % of the coefficients uniform, the rest 0
        coeffs = np.zeros(n, dtype=np.int64)
        where = np.frombuffer(rng.bytes(8 * (n // 100)), dtype="<u8") % n
        coeffs[where.astype(np.int64)] = (np.frombuffer(rng.bytes(8 * where.size), dtype="<u8") >> 20).astype(np.int64)
    elif kind == "small":  # every coefficient below 2^20: s_i * c1 stays small, the smudging too weak
        coeffs = rng.uniform_bounded(n, 21).astype(np.int64)
    elif kind == "ternary-times-K":  # K * t with K near q/3: three values only
        coeffs = rng.ternary(n) * (ring.moduli[0] // 3)
    else:
        raise ValueError(kind)
    return ring.ntt(ring.from_signed(coeffs))


def c1_bytes(ctx, c1: np.ndarray, level: int) -> bytes:
    return ThresholdDecryption(ctx).c1_to_bytes(c1, level)


def genuine_c1(f, values=(1.0, 2.0, 3.0), level: int = 0) -> np.ndarray:
    """The c1 of a real ciphertext, as the researcher fetches it from the server."""
    h = f.hospitals[0].encrypt(np.asarray(values))
    got = f.researcher.call("server", "ct.fetch", id=h.id, level=level)
    return CiphertextData.from_bytes(got["ciphertext"]).data[1]


KINDS = ["constant", "sparse", "small", "ternary-times-K"]


# --- 1. chosen c1 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_chosen_c1_decryption_request(fed, kind):
    c1 = crafted_c1(fed.ctx.ring(0), kind)
    refused(fed.researcher, H1, "decrypt.share", "not a ciphertext's random half", c1=c1_bytes(fed.ctx, c1, 0),
            level=0)


@pytest.mark.parametrize("kind", ["constant", "small"])
def test_chosen_c1_key_switch_request(fed, kind):
    target = fed.researcher.ensure_keys()
    c1 = crafted_c1(fed.ctx.ring(0), kind)
    refused(fed.researcher, H1, "pcks.share", "not a ciphertext's random half", c1=c1_bytes(fed.ctx, c1, 0),
            level=0, target=target)


def test_chosen_c1_refresh_request(fed):
    """A huge constant c1: the refresh masks are bounded, so K * s_i would show through them."""
    level = 2  # masks of 80 bits fit its modulus (and 64 bits of hiding above 16-bit values)
    c1 = crafted_c1(fed.ctx.ring(level), "constant")
    refused(fed.server, H1, "refresh.share", "not a ciphertext's random half", c1=[c1_bytes(fed.ctx, c1, level)],
            level=level, label="attack", mask_bits=80, outputs=[{"terms": [[0, 1, []]], "shift": 0}])


def test_a_batch_with_one_crafted_c1_is_refused_whole(fed):
    good = genuine_c1(fed)
    bad = crafted_c1(fed.ctx.ring(0), "constant")
    refused(fed.researcher, H1, "decrypt.share", r"ciphertext 2 of 2\): c1 is not",
            c1=[c1_bytes(fed.ctx, good, 0), c1_bytes(fed.ctx, bad, 0)], levels=[0, 0])
    fed.researcher.call(H1, "decrypt.share", c1=c1_bytes(fed.ctx, good, 0), level=0)  # not burnt by the refusal


def test_genuine_c1_pass_the_test(fed):
    """Real ciphertexts at every level, and uniform polynomials, are never refused (false refusal below
    2^-64 per c1: mpclr.protocols.c1)."""
    rng = SecretRandom()
    for level in range(fed.ctx.top_level + 1):
        ring = fed.ctx.ring(level)
        c1check.check_uniform(ring, genuine_c1(fed, np.arange(50.0), level), "genuine")
        for _ in range(20):
            c1check.check_uniform(ring, rng.uniform_poly(ring), "uniform")


# --- 2. replayed c1 ------------------------------------------------------------------------------------
def test_replayed_c1(fed):
    c1 = genuine_c1(fed)
    fed.researcher.call(H1, "decrypt.share", c1=c1_bytes(fed.ctx, c1, 0), level=0)
    refused(fed.researcher, H1, "decrypt.share", "answered before", c1=c1_bytes(fed.ctx, c1, 0), level=0)
    target = fed.researcher.ensure_keys()  # nor through another step
    refused(fed.researcher, H1, "pcks.share", "answered before", c1=c1_bytes(fed.ctx, c1, 0), level=0, target=target)
    other = genuine_c1(fed)
    refused(fed.researcher, "hospital-2", "decrypt.share", "answered before",
            c1=[c1_bytes(fed.ctx, other, 0)] * 2, levels=[0, 0])


def test_honest_repeats_still_work(fed):
    """The researcher makes a fresh c1 when it asks about a ciphertext again (a repeated decryption, a
    key switch of the same result): hospitals answer those."""
    x = np.linspace(-1, 1, 32)
    a = fed.hospitals[1].encrypt(x)
    asked = fed.hospitals[0]._guard.answered
    before = len(asked)
    for _ in range(2):
        assert np.abs(fed.decrypt(a) - x).max() < 1e-3
        assert np.abs(fed.receive(a) - x).max() < 1e-3
    r = [fed.refresh(a, bound_bits=2) for _ in range(2)]  # the server does the same for refreshes
    assert np.abs(fed.decrypt(r[1]) - x).max() < 1e-3
    assert len(asked) == before + 7  # 7 requests, 7 distinct c1s


# --- 3. shares for the coordinator's server -----------------------------------------------------------
def test_server_requested_decryption_share(fed):
    refused(fed.server, H1, "decrypt.share", "go only to the study's researcher, not server",
            c1=c1_bytes(fed.ctx, genuine_c1(fed), 0), level=0)


def test_server_requested_key_switch_share(fed):
    target = fed.researcher.ensure_keys()
    refused(fed.server, H1, "pcks.share", "go only to the study's researcher, not server",
            c1=c1_bytes(fed.ctx, genuine_c1(fed), 0), level=0, target=target)


# --- 4. a forged relinearization aggregate ------------------------------------------------------------
def _round_one(b):
    """Round 1 against the real hospitals: their shares and the true aggregate."""
    b.server.agree_crs()
    rlk = RelinKeyGen(b.ctx)
    r1 = b.server.call_many("rlk.round1", {p: {} for p in b.names})
    shares = {p: rlk.share_from_bytes(r1[p]["share"], 1) for p in b.names}
    return rlk, shares, rlk.aggregate_shares(list(shares.values()))


def _announce(b, aggregate: Share) -> dict:
    """Round 1b for `aggregate` (its digest to every hospital), then the round-2 request built from it."""
    raw = aggregate.to_bytes()
    digest = aggregate_digest(b.session.id, "rlk.round1", raw)
    checked = b.server.call_many("rlk.check", {p: {"digest": digest} for p in b.names})
    return {"round1": raw, "scalars": {p: checked[p]["scalars"] for p in b.names},
            "signatures": {p: checked[p]["signature"] for p in b.names}}


def test_forged_relinearization_aggregate(bare):
    """The server announces a forged aggregate (a constant: round 2 would return s_i * K + e) and the
    hospitals sign their scalars for it: the linear check refuses it, and the true aggregate cannot be
    swapped in afterwards (the hospitals checked another digest)."""
    b = bare
    rlk, shares, true = _round_one(b)
    ring = b.ctx.key_ring
    constant = ring.ntt(ring.from_signed(np.r_[1 << 40, np.zeros(ring.n - 1, dtype=np.int64)]))
    forged = Share(TAG1, np.broadcast_to(constant, true.data.shape).copy())
    request = _announce(b, forged)
    refused(b.server, H1, "rlk.round2", "fails the random linear check", **request)
    refused(b.server, H1, "rlk.round2", "not the one whose digest this hospital was shown",
            **{**request, "round1": true.to_bytes()})
    refused(b.server, H1, "rlk.check", "answered already in this session for another round-1 aggregate",
            digest=aggregate_digest(b.session.id, "rlk.round1", true.to_bytes()))
    # the same digest again (a retry) gets the same signed scalars
    again = b.server.call(H1, "rlk.check", digest=aggregate_digest(b.session.id, "rlk.round1", forged.to_bytes()))
    assert again["scalars"] == request["scalars"][H1] and again["signature"] == request["signatures"][H1]


def test_aggregate_off_by_one_coefficient(bare):
    """An aggregate that differs from the sum in one coefficient of one prime (the smallest) is caught."""
    b = bare
    rlk, shares, true = _round_one(b)
    data = true.data.copy()
    k = int(np.argmin(b.ctx.key_ring.moduli))
    data[1, 0, k, 5] = (int(data[1, 0, k, 5]) + 1) % b.ctx.key_ring.moduli[k]
    request = _announce(b, Share(TAG1, data))
    for p in b.names:
        refused(b.server, p, "rlk.round2", "fails the random linear check", **request)


def test_tampered_check_scalar(bare):
    """The true aggregate, but another hospital's scalars altered (so that a forged sum would add up):
    its signature does not cover them. Refusals do not spend the round-1 secret: the genuine request is
    answered after them."""
    b = bare
    rlk, shares, true = _round_one(b)
    request = _announce(b, true)
    tampered = bytearray(request["scalars"]["hospital-2"])
    tampered[0] ^= 1
    refused(b.server, H1, "rlk.round2", "not carry hospital-2's signature",
            **{**request, "scalars": {**request["scalars"], "hospital-2": bytes(tampered)}})
    refused(b.server, H1, "rlk.round2", "not carry hospital-2's signature",
            **{**request, "signatures": {**request["signatures"], "hospital-2": request["signatures"]["hospital-3"]}})
    own = bytearray(request["scalars"][H1])
    own[0] ^= 1
    refused(b.server, H1, "rlk.round2", "not carry hospital-1's signature",
            **{**request, "scalars": {**request["scalars"], H1: bytes(own)}})
    refused(b.server, H1, "rlk.round2", "expected signed check scalars from every key holder",
            **{**request, "scalars": {p: request["scalars"][p] for p in b.names[:2]}})
    refused(b.server, H1, "rlk.round2", "carries no signed check scalars",
            round1=request["round1"], signatures=request["signatures"])
    assert "share" in b.server.call(H1, "rlk.round2", **request)


def test_the_check_survives_a_restart(bare, tmp_path):
    """A hospital restarted from its keystore between round 1 and the check, and between the check and
    round 2, still has its share, its signed digest and its round-1 secret."""
    b = bare
    rlk, shares, true = _round_one(b)
    h1, ks = b.hospitals[0], Keystore(tmp_path / "hospital-1", create=True)
    h1.save(ks)
    h1.load(ks)
    request = _announce(b, true)
    h1.save(ks)
    h1.load(ks)
    refused(b.server, H1, "rlk.check", "answered already in this session for another round-1 aggregate",
            digest=os.urandom(32))
    assert "share" in b.server.call(H1, "rlk.round2", **request)


def test_a_hospital_whose_scalars_do_not_fit_its_share(bare):
    """A hospital that signs scalars other than its share's is named by the server (honest hospitals would
    otherwise refuse round 2 as if the server had forged the aggregate)."""
    b = bare
    h2 = b.hospitals[1]
    honest = h2._handlers["rlk.check"]

    def lying(fields, sender):
        reply = honest(fields, sender)
        scalars = bytes([reply["scalars"][0] ^ 1]) + bytes(reply["scalars"][1:])
        sig = h2.identity.sign_statement(b.session.id, "rlk.check", h2.name, bytes(fields["digest"]) + scalars)
        return {"scalars": scalars, "signature": sig}

    h2._handlers["rlk.check"] = lying
    with pytest.raises(ProtocolError, match="^hospital-2 signed check scalars that are not those of its round-1 share"):
        b.server.run_key_ceremony()


def test_colluding_hospital_still_steers_the_aggregate(bare):
    """The residual risk README names: a hospital colluding with the server signs scalars that absorb the
    forgery (it learns the challenge once the digest is fixed), and the honest hospitals accept the forged
    aggregate. Summing every signed share (the previous design) gave it the same power: it could pick its
    round-1 share after seeing the others'."""
    b = bare
    rlk, shares, true = _round_one(b)
    ring = b.ctx.key_ring
    constant = ring.ntt(ring.from_signed(np.r_[1 << 40, np.zeros(ring.n - 1, dtype=np.int64)]))
    forged = Share(TAG1, np.broadcast_to(constant, true.data.shape).copy())
    raw = forged.to_bytes()
    digest = aggregate_digest(b.session.id, "rlk.round1", raw)
    checked = b.server.call_many("rlk.check", {p: {"digest": digest} for p in b.names})
    check = round_one_check(rlk, b.session, digest)
    # hospital-3 adds <r, forged - true> to its scalars
    minus_true = (ring.q - check.scalars(true.data)) % ring.q
    lie = check.total([check.scalars(shares["hospital-3"].data), check.scalars(forged.data), minus_true])
    scalars = {**{p: checked[p]["scalars"] for p in b.names}, "hospital-3": check.to_bytes(lie)}
    sigs = {**{p: checked[p]["signature"] for p in b.names},
            "hospital-3": b.hospitals[2].identity.sign_statement(b.session.id, "rlk.check", "hospital-3",
                                                                 digest + check.to_bytes(lie))}
    assert "share" in b.server.call(H1, "rlk.round2", round1=raw, scalars=scalars, signatures=sigs)


# --- 5. a rogue public key ----------------------------------------------------------------------------
def _cpk_reveal(b):
    commits = {p: r["commitment"] for p, r in b.server.call_many("cpk.commit", {p: {} for p in b.names}).items()}
    return b.server.call_many("cpk.reveal", {p: {"commitments": commits} for p in b.names})


def test_rogue_public_key(bare):
    """The server installs a key it made itself: every upload would then be readable by it."""
    b = bare
    b.server.agree_crs()
    reveals = _cpk_reveal(b)
    he = b.ctx.pyfhel()
    he.keyGen()
    rogue = he.to_bytes_public_key(compr_mode="none")
    genuine = {
        "crs_seed": b.server.crs.seed,
        "crs_signatures": b.server._crs_signatures,
        "shares": {p: reveals[p]["share"] for p in b.names},
        "signatures": {p: reveals[p]["signature"] for p in b.names},
    }
    for node in (H1, "researcher"):
        refused(b.server, node, "keys.install", "not the sum of the hospitals' signed shares",
                public_key=rogue, **genuine)
    refused(b.server, H1, "keys.install", "carries no signed public-key shares", public_key=rogue,
            crs_seed=genuine["crs_seed"], crs_signatures=genuine["crs_signatures"])
    # a share altered so that the shares sum to the rogue key's p0: its author never signed it
    from mpclr.protocols.cpk import PublicKeyGen

    cpk, ring = PublicKeyGen(b.ctx), b.ctx.key_ring
    others = ring.sum(cpk.share_from_bytes(reveals[p]["share"]).data for p in b.names[1:])
    p0 = CiphertextData.from_bytes(rogue).data[0]
    fake = Share("cpk", ring.sub(p0, others)).to_bytes()
    refused(b.server, "hospital-2", "keys.install", "not carry hospital-1's signature", public_key=rogue,
            **{**genuine, "shares": {**genuine["shares"], H1: fake}})
    refused(b.server, H1, "keys.install", "another common random string", public_key=rogue,
            **{**genuine, "crs_seed": os.urandom(32)})
    with pytest.raises(ProtocolError, match="no collective public key"):
        b.hospitals[0].encrypt([1.0])  # nothing is encrypted under a key that was refused


def test_share_chosen_after_the_others(bare):
    """A hospital colluding with the server signs a share other than the one it committed to (picked
    after seeing the others'): the honest hospitals hold its commitment and refuse."""
    b = bare
    b.server.agree_crs()
    reveals = _cpk_reveal(b)
    late = bytearray(reveals["hospital-3"]["share"])
    late[-1] ^= 1
    late = bytes(late)
    assert commitment(late) != commitment(reveals["hospital-3"]["share"])
    sid = b.session.id
    refused(b.server, H1, "keys.install", "hospital-3's public-key share does not open the commitment",
            public_key=b"", crs_seed=b.server.crs.seed, crs_signatures=b.server._crs_signatures,
            shares={**{p: reveals[p]["share"] for p in b.names}, "hospital-3": late},
            signatures={**{p: reveals[p]["signature"] for p in b.names},
                        "hospital-3": b.hospitals[2].identity.sign_statement(sid, "cpk.share", "hospital-3", late)})


def test_a_second_commitment_is_refused(bare):
    """One nonce and one public-key share per hospital and session: a server that could ask again would
    pick among common random strings or shares."""
    b = bare
    b.server.agree_crs()
    refused(b.server, H1, "crs.commit", "committed to its nonce in this session already")
    commits = {H1: b.server.call(H1, "cpk.commit")["commitment"]}
    refused(b.server, H1, "cpk.commit", "committed to its public-key share in this session already")
    commits.update({p: b.server.call(p, "cpk.commit")["commitment"] for p in b.names[1:]})
    b.server.call_many("cpk.reveal", {p: {"commitments": commits} for p in b.names})
    refused(b.server, H1, "cpk.reveal", "revealed already", commitments=commits)
    refused(b.server, H1, "cpk.commit", "committed to its public-key share in this session already")


def test_a_sequence_is_answered_request_by_request_and_stops_at_a_refusal(bare):
    """Node.call_sequence (one Flower round for requests known in advance): each request is checked and
    answered as it would be alone, in order; after a refusal the rest is not answered."""
    b = bare
    (first,) = b.server.call_sequence([("crs.commit", {H1: {}})])
    handled = dict(b.hospitals[0].handler_calls)
    with pytest.raises(ProtocolError, match=f"{H1} refused crs.commit: .*committed to its nonce in this session"):
        reveal = {H1: {"commitments": {H1: first[H1]["commitment"]}}}
        b.server.call_sequence([("crs.commit", {H1: {}}), ("crs.reveal", reveal)])
    assert dict(b.hospitals[0].handler_calls) == handled  # crs.reveal, after the refusal, never ran
