"""What a hospital checks before it answers with its key share: the cryptographic side of "a hospital's
node refuses what it did not agree to".

- The collective public key it is told to encrypt under must be the sum of every hospital's public-key
  share, each signed by its author, with the polynomial a of the common random string that every
  hospital signed (`check_public_key`); and each share must open the commitment this hospital saw
  before revealing its own (so no share was chosen after the others').
- The relinearization round-1 aggregate it multiplies by its key share must pass a random linear check
  (`check_round_one`, mpclr.protocols.lincheck): the server announces the aggregate's digest first, every
  hospital signs a few inner products of its own round-1 share with a challenge derived from that
  digest, and the aggregate's inner products must equal their sums, prime by prime.
- A c1 it multiplies by its key share must look like a ciphertext's and must not have been answered
  before (`RequestGuard.admit`).

The signatures are Ed25519 under the keys in the session's roster (wire.statement binds each value to
session, step and author), so they hold whoever relays the values. They are as trustworthy as the
roster: each hospital checks its own key in it at join, and the session fingerprint that hospitals compare
(with each other, not only with the coordinator) covers every key in it.

Why the commitments themselves are not signed. What must be authentic is what a hospital ends up
using: the public-key shares (signed) and the CRS seed (every hospital signs the seed it derived, and
keys.install carries all those signatures, so two hospitals with different CRSs are caught). A
commitment the server forges can only make that check fail: every hospital holds the commitments it
saw before revealing its own share and requires each signed share to open them, so each share was
fixed before the first honest reveal, whoever made the commitment. Signing commitments would add no
such guarantee. What does matter is that a hospital commits once: asked for a second nonce or share,
it would let the server pick among them.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..errors import FormatError, MessageError, ProtocolError
from ..protocols import c1 as c1check
from ..protocols.cpk import PublicKeyGen
from ..protocols.lincheck import LinearCheck, aggregate_digest
from ..ring import CommonRandomString
from ..wire import verify_statement

__all__ = ["commitment", "crs_seed", "check_public_key", "round_one_check", "check_round_one", "RequestGuard"]


def commitment(data: bytes) -> bytes:
    return hashlib.sha256(b"mpclr/commit/v1\x00" + data).digest()


def _signed(session, values, signatures, what: str, step: str, request: str) -> dict:
    """{author: value} for every key holder, each value checked against its author's signature on
    (session, step, author, value); `request` names the message in errors."""
    if not isinstance(values, dict) or not isinstance(signatures, dict):
        raise ProtocolError(f"{request}: carries no signed {what} (refusing values nobody vouches for)")
    holders = sorted(session.key_holders)
    if sorted(values) != holders or sorted(signatures) != holders:
        raise ProtocolError(f"{request}: expected signed {what} from every key holder {holders}, got {sorted(values)}")
    for author in session.key_holders:
        try:
            verify_statement(session.roster, session.id, step, author, values[author], signatures[author])
        except MessageError as exc:
            raise ProtocolError(f"{request}: {exc}") from None
    return values


def check_public_key(ctx, session, fields: dict, crs: CommonRandomString | None, commitments: dict | None) -> bytes:
    """The public key of a `keys.install` request, if it is the one the hospitals made; else refuse.

    `crs`: this node's own common random string (a hospital's), or None for a node that took no part
    in the coin toss (the researcher), which then takes the seed every hospital signed. `commitments`:
    the public-key commitments this hospital saw before revealing its share (None: not a hospital)."""
    step = "keys.install"
    seed = bytes(fields.get("crs_seed", b""))
    if crs is not None and seed != crs.seed:
        raise ProtocolError(f"{step}: names another common random string than the one this hospital derived")
    seeds = {p: seed for p in session.key_holders}
    _signed(session, seeds, fields.get("crs_signatures"), "CRS seeds", "crs.seed", step)
    shares = _signed(session, fields.get("shares"), fields.get("signatures"), "public-key shares", "cpk.share", step)
    cpk = PublicKeyGen(ctx)
    parsed = []
    for author in session.key_holders:
        raw = bytes(shares[author])
        if commitments is not None and commitment(raw) != commitments.get(author):
            raise ProtocolError(
                f"{step}: {author}'s public-key share does not open the commitment this hospital saw before it "
                f"revealed its own (a share chosen after seeing the others')"
            )
        parsed.append(cpk.share_from_bytes(raw))
    expected = cpk.public_key(cpk.aggregate_shares(parsed), cpk.sample_crp(crs or CommonRandomString(seed)))
    if bytes(fields.get("public_key", b"")) != expected:
        raise ProtocolError(
            f"{step}: the public key is not the sum of the hospitals' signed shares with the common random "
            f"string's polynomial: refusing to encrypt under a key the hospitals did not make"
        )
    return expected


def round_one_check(rlk, session, digest: bytes):
    """The public challenge for the round-1 aggregate whose digest the server announced (rlk.check)."""
    return LinearCheck(rlk.ring, 2 * rlk.digits, session.id, digest)


def check_round_one(rlk, session, fields: dict, own: str, checked: tuple[bytes, bytes] | None):
    """The relinearization round-1 aggregate of an `rlk.round2` request, if it passes the random linear
    check against every hospital's signed scalars; else refuse. A forged aggregate (a constant, or K * a
    with a the CRP) times the key share would reveal it.

    `checked`: (digest, own scalars) this hospital signed in rlk.check, or None if it never did."""
    step = "rlk.round2"
    if checked is None:
        raise ProtocolError(f"{step}: before this hospital answered the round-1 check (rlk.check)")
    digest, own_scalars = checked
    raw = bytes(fields.get("round1", b""))
    if aggregate_digest(session.id, "rlk.round1", raw) != digest:
        raise ProtocolError(
            f"{step}: the round-1 aggregate is not the one whose digest this hospital was shown in rlk.check"
        )
    scalars = fields.get("scalars")
    if isinstance(scalars, dict):
        signed = {p: digest + bytes(v) for p, v in scalars.items()}
    else:
        signed = None
    _signed(session, signed, fields.get("signatures"), "check scalars", "rlk.check", step)
    if bytes(scalars[own]) != own_scalars:
        raise ProtocolError(f"{step}: {own}'s own check scalars came back altered")
    check = round_one_check(rlk, session, digest)
    try:
        parts = [check.from_bytes(scalars[p], f"{step}: {p}'s") for p in session.key_holders]
        aggregate = rlk.share_from_bytes(raw, 1)
    except FormatError as exc:
        raise ProtocolError(str(exc)) from None
    if not np.array_equal(check.scalars(aggregate.data), check.total(parts)):
        raise ProtocolError(
            f"{step}: the round-1 aggregate fails the random linear check (it is not the sum of the round-1 "
            f"shares whose scalars the hospitals signed): refusing to multiply the key share by it"
        )
    return aggregate


class RequestGuard:
    """A hospital's memory for these checks (saved in its keystore with the rest of its state)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.reset()

    def reset(self) -> None:
        self.answered: set[bytes] = set()  # digests of every c1 answered in this session
        self.cpk_commitments: dict[str, bytes] | None = None  # seen before revealing the own share
        self.rlk_round1: bytes | None = None  # sha256 of the own round-1 share (round 1 ran)
        self.rlk_check: tuple[bytes, bytes] | None = None  # (aggregate digest, own scalars) signed in rlk.check

    def admit(self, c1s, levels, step: str) -> None:
        """Accept c1s (NTT form, at `levels`) for one request, or refuse it whole: each must pass the
        uniformity test and none may have been answered before (nor appear twice)."""
        digests = []
        for k, (c1, level) in enumerate(zip(c1s, levels)):
            what = step if len(c1s) == 1 else f"{step} (ciphertext {k + 1} of {len(c1s)})"
            c1check.check_uniform(self.ctx.ring(int(level)), c1, what)
            d = c1check.digest(c1)
            if d in self.answered or d in digests:
                raise ProtocolError(
                    f"{what}: this c1 was answered before (a replayed request: a second share of it would average "
                    f"away the smudging noise)"
                )
            digests.append(d)
        self.answered.update(digests)

    def save(self, ks) -> None:
        ks.put("answered-c1", b"".join(sorted(self.answered)))
        ks.put_json(
            "request-guard",
            {
                "cpk_commitments": None
                if self.cpk_commitments is None
                else {k: bytes(v).hex() for k, v in self.cpk_commitments.items()},
                "rlk_round1": None if self.rlk_round1 is None else self.rlk_round1.hex(),
                "rlk_check": None if self.rlk_check is None else [v.hex() for v in self.rlk_check],
            },
        )

    def load(self, ks) -> None:
        self.reset()
        if not ks.has("answered-c1"):
            return
        raw = ks.get("answered-c1")
        self.answered = {raw[i : i + 16] for i in range(0, len(raw), 16)}
        state = ks.get_json("request-guard")
        if state["cpk_commitments"] is not None:
            self.cpk_commitments = {k: bytes.fromhex(v) for k, v in state["cpk_commitments"].items()}
        if state["rlk_round1"] is not None:
            self.rlk_round1 = bytes.fromhex(state["rlk_round1"])
        if state["rlk_check"] is not None:
            digest, scalars = state["rlk_check"]
            self.rlk_check = (bytes.fromhex(digest), bytes.fromhex(scalars))


def crs_seed(session, nonces: dict[str, bytes]) -> bytes:
    """The common random string's seed: the session id and every key holder's revealed nonce, in roster order."""
    h = hashlib.sha256(b"mpclr/crs-seed/v1\x00" + session.id)
    for name in session.key_holders:
        h.update(nonces[name])
    return h.digest()
