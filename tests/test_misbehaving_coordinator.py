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
from mpclr.network import InProcessNetwork
from mpclr.params import get_preset
from mpclr.protocols import c1 as c1check
from mpclr.protocols.decryption import ThresholdDecryption
from mpclr.protocols.rlk import TAG1, RelinKeyGen
from mpclr.protocols.share import Share
from mpclr.ring import SecretRandom
from mpclr.roles import DataProvider, Researcher, Server, Session
from mpclr.roles.guard import commitment
from mpclr.seal.format import CiphertextData

H1 = "hospital-1"


def refused(node, hospital: str, step: str, match: str, **fields) -> None:
    """`node` (the server or the researcher, i.e. the coordinator) sends `step` to `hospital`, which must
    refuse it with an error matching `match`."""
    with pytest.raises(ProtocolError, match=f"{hospital} refused {step}: .*{match}"):
        node.call(hospital, step, **fields)


@pytest.fixture(scope="module")
def fed():
    f = mpclr.Federation(parties=3, preset="fast")
    yield f
    f.close()


@pytest.fixture
def bare():
    """A server, a researcher and 3 hospitals joined to a session, before any key ceremony step."""
    ctx = seal_context(get_preset("fast"))
    net = InProcessNetwork()
    server, researcher = Server("server", ctx, net), Researcher("researcher", ctx, net)
    hospitals = [DataProvider(f"hospital-{i + 1}", ctx, net) for i in range(3)]
    nodes = [server, researcher, *hospitals]
    session = Session(os.urandom(16), ctx.fingerprint, {n.name: n.identity.public_bytes for n in nodes},
                      tuple(h.name for h in hospitals), 3, "server", "researcher")
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
    h = f.parties[0].encrypt(np.asarray(values))
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
    level = 1
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
    a = fed.parties[1].encrypt(x)
    asked = fed.parties[0]._guard.answered
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
def test_forged_relinearization_aggregate(bare):
    b = bare
    b.server.agree_crs()
    r1 = b.server.call_many("rlk.round1", {p: {} for p in b.names})
    shape = RelinKeyGen(b.ctx).share_from_bytes(r1[H1]["share"], 1).data.shape
    ring = b.ctx.key_ring
    constant = ring.ntt(ring.from_signed(np.r_[1 << 40, np.zeros(ring.n - 1, dtype=np.int64)]))
    forged = Share(TAG1, np.broadcast_to(constant, shape).copy())  # round 2 would return s_i * K + e
    refused(b.server, H1, "rlk.round2", "not an aggregate made by the server", round1=forged.to_bytes())
    shares = {p: r1[p]["share"] for p in b.names}
    sigs = {p: r1[p]["signature"] for p in b.names}
    # one share replaced so that the sum is the forged aggregate, under its author's old signature
    refused(b.server, H1, "rlk.round2", "not carry hospital-2's signature",
            shares={**shares, "hospital-2": forged.to_bytes()}, signatures=sigs)
    refused(b.server, H1, "rlk.round2", "not carry hospital-2's signature",
            shares=shares, signatures={**sigs, "hospital-2": sigs["hospital-3"]})
    refused(b.server, H1, "rlk.round2", "expected signed round-1 shares from every key holder",
            shares={p: shares[p] for p in b.names[:2]}, signatures=sigs)
    # the genuine request is still answered: a refusal does not spend the hospital's round-1 secret
    assert "share" in b.server.call(H1, "rlk.round2", shares=shares, signatures=sigs)


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
