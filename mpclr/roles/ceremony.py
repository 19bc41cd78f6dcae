"""The server's part of the key ceremony: the CRS coin toss, the collective public key, the
relinearization key, the hospitals' upload keys (mpclr.roles.uploads), the t-out-of-n re-sharing and
the rotation keys. It relays what the hospitals sign
(the CRS seed, public-key and round-1 shares), so each hospital checks the keys itself; it aggregates
shares and never holds a secret-key share.

A mixin of mpclr.roles.server.Server (it uses the node's `call_many`, session and timings, and installs
the keys in the server's evaluator).
"""

from __future__ import annotations

import hashlib
import time

from ..errors import ProtocolError
from ..protocols.cpk import PublicKeyGen
from ..protocols.lincheck import aggregate_digest
from ..protocols.rlk import RelinKeyGen
from ..protocols.rotation import RotationKeyGen
from ..ring import CommonRandomString
from .guard import commitment, crs_seed, round_one_check
from .node import check_participants, with_live_participants

__all__ = ["KeyCeremony"]


class KeyCeremony:
    """Coordinates the key ceremony for the server (no secret of its own)."""

    def _holders(self) -> list[str]:
        return list(self._require_session().key_holders)

    def agree_crs(self, then: tuple[str, dict] | None = None) -> dict | None:
        """Coin toss for the common random string: commit, reveal, every party checks and derives it.
        then: (step, requests) the hospitals answer right after deriving it, in the same round
        (Node.call_sequence); its replies are returned once every hospital's seed is checked."""
        holders = self._holders()
        commits = {p: r["commitment"] for p, r in self.call_many("crs.commit", {p: {} for p in holders}).items()}
        reveals = self.call_many("crs.reveal", {p: {"commitments": commits} for p in holders})
        nonces = {p: r["nonce"] for p, r in reveals.items()}
        for p in holders:
            if commitment(nonces[p]) != commits[p]:
                raise ProtocolError(f"{p} revealed a nonce that does not match its commitment")
        seed = crs_seed(self._require_session(), nonces)
        seeds = {p: {"nonces": nonces} for p in holders}
        if then is None:
            acks, more = self.call_many("crs.seed", seeds), None
        else:
            acks, more = self.call_sequence([("crs.seed", seeds), then])
        for p, r in acks.items():
            if r["seed_hash"] != hashlib.sha256(seed).digest():
                raise ProtocolError(f"{p} derived a different common random string")
        self.crs = CommonRandomString(seed)
        self._crs_signatures = {p: r["signature"] for p, r in acks.items()}
        return more

    def run_key_ceremony(self) -> None:
        """CRS coin toss, collective public key (commit-then-reveal), relinearization key (2 rounds and a check).
        Requests known before a round's replies go in that round (Node.call_sequence: one Flower round, each
        request answered as alone): the public-key commitments with the CRS seed, the relinearization key's
        first round with the public key's installation."""
        t0 = time.perf_counter()
        holders = self._holders()
        commits = {p: r["commitment"] for p, r in self.agree_crs(then=("cpk.commit", {p: {} for p in holders})).items()}
        cpk = PublicKeyGen(self.ctx)
        reveals = self.call_many("cpk.reveal", {p: {"commitments": commits} for p in holders})
        shares = []
        for p in holders:
            raw = reveals[p]["share"]
            if commitment(raw) != commits[p]:
                raise ProtocolError(f"{p} revealed a public-key share that does not match its commitment")
            shares.append(cpk.share_from_bytes(raw))
        with self.timed("cpk.aggregate"):
            self.public_key = cpk.public_key(cpk.aggregate_shares(shares), cpk.sample_crp(self.crs))
        self.evaluator.he.from_bytes_public_key(self.public_key)
        s = self._require_session()
        # every share with its author's signature and the CRS seed every hospital signed: each recipient
        # rebuilds the key and installs it only if it is this one
        install = {
            "public_key": self.public_key,
            "crs_seed": self.crs.seed,
            "crs_signatures": self._crs_signatures,
            "shares": {p: reveals[p]["share"] for p in holders},
            "signatures": {p: reveals[p]["signature"] for p in holders},
        }
        _, r1 = self.call_sequence([("keys.install", {p: install for p in [*holders, s.researcher]}),
                                    ("rlk.round1", {p: {} for p in holders})])
        self.timings["public_key"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        rlk = RelinKeyGen(self.ctx)
        with self.timed("rlk.round1.aggregate"):
            agg1 = rlk.aggregate_shares([rlk.share_from_bytes(r1[p]["share"], 1) for p in holders])
            round1 = agg1.to_bytes()
        # round 1b: the aggregate's digest first; each hospital signs its inner products with the challenge
        # derived from it, and in round 2 multiplies its key share by the aggregate only if they add up
        digest = aggregate_digest(s.id, "rlk.round1", round1)
        checked = self.call_many("rlk.check", {p: {"digest": digest} for p in holders})
        check = round_one_check(rlk, s, digest)
        # the sum checked once; hospital by hospital only to name those whose scalars are not their share's
        if not check.sum_matches(agg1.data, [checked[p]["scalars"] for p in holders]):
            bad = [p for p in holders if not check.sum_matches(rlk.share_from_bytes(r1[p]["share"], 1).data,
                                                               [checked[p]["scalars"]])]
            raise ProtocolError(f"{', '.join(bad)} signed check scalars that are not those of its round-1 share")
        del r1
        request = {"round1": round1, "scalars": {p: checked[p]["scalars"] for p in holders},
                   "signatures": {p: checked[p]["signature"] for p in holders}}
        r2 = self.call_many("rlk.round2", {p: request for p in holders})
        del request, round1
        with self.timed("rlk.round2.aggregate"):
            agg2 = rlk.aggregate_shares([rlk.share_from_bytes(r2[p]["share"], 2) for p in holders])
            relin = rlk.relin_key(agg1, agg2)
        del r2
        with self.timed("rlk.load"):
            self.evaluator.he.from_bytes_relin_key(relin)
        self.timings["relin_key"] = time.perf_counter() - t0
        if self.ctx.params.upload == "share-keyed":  # every hospital's upload key, before any re-sharing
            t0 = time.perf_counter()
            self.uploads.generate(self, holders)
            self.timings["upload_keys"] = time.perf_counter() - t0

    def run_threshold_setup(self) -> None:
        """t-out-of-n: every key holder Shamir-shares its additive share; boxes go party to party."""
        t0 = time.perf_counter()
        holders = self._holders()
        dealt = self.call_many("shamir.deal", {p: {} for p in holders})
        inbox = {p: {} for p in holders}
        for dealer, reply in dealt.items():
            boxes = reply["boxes"]
            if sorted(boxes) != sorted(q for q in holders if q != dealer):
                raise ProtocolError(f"{dealer} dealt Shamir shares to the wrong set of key holders")
            for recipient, box in boxes.items():
                inbox[recipient][dealer] = box
        self.call_many("shamir.receive", {p: {"boxes": inbox[p]} for p in holders})
        self.timings["threshold_setup"] = time.perf_counter() - t0

    def participants(self, by=None) -> list[str]:
        """Resolve and check who takes part in a protocol (names or indices), before anything is sent."""
        return check_participants(self._require_session(), by, self.unavailable)

    def generate_rotation_keys(self, steps, by=None, level: int | None = None) -> list[int]:
        """Collective rotation keys for the given slot rotation steps (negative = right). level: the highest
        level the keys will rotate at (None: every level); a restricted key is a fraction of the size
        (mpclr.protocols.rotation), and a rotation above its level is refused."""
        return self.generate_rotation_key_sets([(steps, level)], by)

    def generate_rotation_key_sets(self, sets, by=None) -> list[int]:
        """Several generate_rotation_keys calls, (steps, level) each, in order, sharing rounds: round i
        carries the i-th batch of 16 keys of every set (one gkg.share request per set, in one message to
        each hospital: Node.call_sequence), so two sets known at once cost the rounds of the larger. A set
        makes only keys no earlier set makes at its level or above, as the calls one after the other would."""
        if self.crs is None:
            raise ProtocolError("run the key ceremony before generating rotation keys")
        t0 = time.perf_counter()
        self.participants(by)  # refuse a bad set before anything is sent
        planned: dict[int, int] = {}  # elt -> the level an earlier set makes it for
        jobs = []  # (RotationKeyGen, level wanted, its new elements)
        for steps, level in sets:
            try:
                gkg = RotationKeyGen(self.ctx, level)
            except ValueError as exc:
                raise ProtocolError(str(exc)) from None
            wanted = self.ctx.top_level if gkg.level is None else gkg.level
            elts = []
            for step in steps:
                step = int(step)
                try:
                    elt = gkg.galois_element(step)
                except ValueError as exc:
                    raise ProtocolError(f"rotation step {step}: {exc}") from None
                if max(self.evaluator.galois_level(elt), planned.get(elt, -1)) < wanted and elt not in elts:
                    elts.append(elt)
            for elt in elts:
                planned[elt] = wanted
            jobs.append((gkg, wanted, elts))

        def all_keys(names, batches):
            """One round for a batch of keys of each set: the largest messages of the ceremony, one round trip."""
            steps = []
            for (gkg, _, _), batch in batches:
                request = {"galois_elts": batch, "participants": names, "label": "rotation keys"}
                if gkg.level is not None:
                    request["level"] = gkg.level
                steps.append(("gkg.share", {p: request for p in names}))
            answers = [self.call_many(*steps[0])] if len(steps) == 1 else self.call_sequence(steps)
            out = []
            for ((gkg, _, _), batch), replies in zip(batches, answers):
                for p in names:
                    got = len(replies[p]["shares"])
                    if got != len(batch):
                        raise ProtocolError(f"{p} sent {got} rotation key shares for {len(batch)}")
                with self.timed("gkg.aggregate"):
                    out.append([
                        gkg.aggregate_shares([gkg.share_from_bytes(replies[p]["shares"][i], elt) for p in names])
                        for i, elt in enumerate(batch)
                    ])
            return out

        made = []
        for start in range(0, max((len(e) for _, _, e in jobs), default=0), 16):  # 16 keys per set and round
            batches = [(job, job[2][start : start + 16]) for job in jobs if job[2][start : start + 16]]
            aggs = with_live_participants(self, by, lambda names, b=batches: all_keys(names, b))
            for ((gkg, wanted, _), batch), keys in zip(batches, aggs):
                for elt, agg in zip(batch, keys):
                    self.evaluator.galois[elt] = gkg.rotation_key(agg, gkg.sample_crp(self.crs, elt))
                    self.evaluator.galois_levels[elt] = wanted
                made += batch
        if made:
            with self.timed("gkg.load"):
                self.evaluator.he.from_bytes_rotate_key(self.ctx.galois_keys_bytes(self.evaluator.galois))
        self.timings["rotation_keys"] = self.timings.get("rotation_keys", 0.0) + time.perf_counter() - t0
        return made

    @property
    def galois_elements(self) -> list[int]:
        return sorted(self.evaluator.galois)
