"""The server: aggregates key shares into the collective keys and evaluates on ciphertexts.

It holds the collective public key, the relinearization key and rotation keys, and ciphertexts: never a
secret-key share, never a decryption or key-switch share (those go to the researcher, encrypted for it).
All homomorphic evaluation runs in Pyfhel/SEAL. In the key ceremony it relays what the hospitals sign
(the CRS seed, public-key and round-1 shares), so each hospital checks the keys itself.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from Pyfhel import PyCtxt

from ..errors import ProtocolError
from ..protocols import c1 as c1check
from ..protocols.cpk import PublicKeyGen
from ..protocols.lincheck import aggregate_digest
from ..protocols.refresh import RefreshProtocol, plan_outputs
from ..protocols.rlk import RelinKeyGen
from ..protocols.rotation import RotationKeyGen
from ..ring import CommonRandomString, SecretRandom
from ..seal.format import CiphertextData, galois_elt_from_step, unpack_ciphertext
from .data_provider import commitment, crs_seed
from .guard import round_one_check
from .node import Node, check_participants, with_live_participants

__all__ = ["Server", "Ciphertext"]

# Scales closer than this (relative) are the same scale up to floating-point rounding of SEAL's
# rescale (which divides the double scale by the prime).
_SCALE_TOLERANCE = 2.0**-40


def _close(a: float, b: float) -> bool:
    return abs(a / b - 1) <= _SCALE_TOLERANCE


@dataclass(frozen=True)
class Ciphertext:
    """A handle to an encrypted vector held by the server (plain data: id, length, level, scale)."""

    id: int
    length: int
    level: int
    scale: float

    def __repr__(self) -> str:
        return f"Ciphertext(id={self.id}, length={self.length}, level={self.level}, scale=2^{np.log2(self.scale):.2f})"


@dataclass
class _Entry:
    ct: PyCtxt
    length: int
    level: int


class Server(Node):
    role = "server"

    def __init__(self, name, ctx, network):
        super().__init__(name, ctx, network)
        self._he = ctx.pyfhel()
        self._store: dict[int, _Entry] = {}
        self._next_id = 0
        self._galois: dict[int, list] = {}
        self.public_key: bytes | None = None
        self.crs: CommonRandomString | None = None
        self.timings: dict[str, float] = {}
        self._refresh_count = 0
        self.refresh_bound_bits = 8  # default public bound on |values| refreshed: 2^8
        self._crs_signatures: dict[str, bytes] = {}
        self._sent_c1: set[bytes] = set()  # c1s sent in refresh requests (hospitals answer each once)
        self._rng = SecretRandom()
        self._handlers.update({"ct.upload": self._on_upload, "ct.fetch": self._on_fetch})

    # ================================ key ceremony ==============================================
    def _holders(self) -> list[str]:
        return list(self._require_session().key_holders)

    def agree_crs(self) -> None:
        """Coin toss for the common random string: commit, reveal, every party checks and derives it."""
        holders = self._holders()
        commits = {p: r["commitment"] for p, r in self.call_many("crs.commit", {p: {} for p in holders}).items()}
        reveals = self.call_many("crs.reveal", {p: {"commitments": commits} for p in holders})
        nonces = {p: r["nonce"] for p, r in reveals.items()}
        for p in holders:
            if commitment(nonces[p]) != commits[p]:
                raise ProtocolError(f"{p} revealed a nonce that does not match its commitment")
        seed = crs_seed(self._require_session(), nonces)
        acks = self.call_many("crs.seed", {p: {"nonces": nonces} for p in holders})
        for p, r in acks.items():
            if r["seed_hash"] != hashlib.sha256(seed).digest():
                raise ProtocolError(f"{p} derived a different common random string")
        self.crs = CommonRandomString(seed)
        self._crs_signatures = {p: r["signature"] for p, r in acks.items()}

    def run_key_ceremony(self) -> None:
        """CRS coin toss, collective public key (commit-then-reveal), relinearization key (2 rounds and a check)."""
        t0 = time.perf_counter()
        self.agree_crs()
        holders = self._holders()
        cpk = PublicKeyGen(self.ctx)
        commits = {p: r["commitment"] for p, r in self.call_many("cpk.commit", {p: {} for p in holders}).items()}
        reveals = self.call_many("cpk.reveal", {p: {"commitments": commits} for p in holders})
        shares = []
        for p in holders:
            raw = reveals[p]["share"]
            if commitment(raw) != commits[p]:
                raise ProtocolError(f"{p} revealed a public-key share that does not match its commitment")
            shares.append(cpk.share_from_bytes(raw))
        with self.timed("cpk.aggregate"):
            self.public_key = cpk.public_key(cpk.aggregate_shares(shares), cpk.sample_crp(self.crs))
        self._he.from_bytes_public_key(self.public_key)
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
        self.call_many("keys.install", {p: install for p in [*holders, s.researcher]})
        self.timings["public_key"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        rlk = RelinKeyGen(self.ctx)
        r1 = self.call_many("rlk.round1", {p: {} for p in holders})
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
            self._he.from_bytes_relin_key(relin)
        self.timings["relin_key"] = time.perf_counter() - t0

    def run_threshold_setup(self) -> None:
        """t-out-of-n: every key holder Shamir-shares its additive share; boxes go party to party."""
        t0 = time.perf_counter()
        holders = self._holders()
        dealt = self.call_many("shamir.deal", {p: {} for p in holders})
        inbox = {p: {} for p in holders}
        for dealer, reply in dealt.items():
            boxes = reply["boxes"]
            if sorted(boxes) != sorted(q for q in holders if q != dealer):
                raise ProtocolError(f"{dealer} dealt Shamir shares to the wrong set of parties")
            for recipient, box in boxes.items():
                inbox[recipient][dealer] = box
        self.call_many("shamir.receive", {p: {"boxes": inbox[p]} for p in holders})
        self.timings["threshold_setup"] = time.perf_counter() - t0

    def participants(self, by=None) -> list[str]:
        """Resolve and check who takes part in a protocol (names or indices), before anything is sent."""
        return check_participants(self._require_session(), by, self.unavailable)

    def generate_rotation_keys(self, steps, by=None) -> list[int]:
        """Collective rotation keys for the given slot rotation steps (negative = right)."""
        if self.crs is None:
            raise ProtocolError("run the key ceremony before generating rotation keys")
        t0 = time.perf_counter()
        gkg = RotationKeyGen(self.ctx)
        self.participants(by)  # refuse a bad set before anything is sent
        elts = []
        for step in steps:
            step = int(step)
            try:
                elt = gkg.galois_element(step)
            except ValueError as exc:
                raise ProtocolError(f"rotation step {step}: {exc}") from None
            if elt not in self._galois and elt not in elts:
                elts.append(elt)

        def all_keys(names, batch):
            """One round for a batch of keys: the largest messages of the ceremony, but one round trip."""
            request = {"galois_elts": batch, "participants": names, "label": "rotation keys"}
            replies = self.call_many("gkg.share", {p: request for p in names})
            for p in names:
                if len(replies[p]["shares"]) != len(batch):
                    raise ProtocolError(f"{p} sent {len(replies[p]['shares'])} rotation key shares for {len(batch)}")
            with self.timed("gkg.aggregate"):
                return [
                    gkg.aggregate_shares([gkg.share_from_bytes(replies[p]["shares"][i], elt) for p in names])
                    for i, elt in enumerate(batch)
                ]

        for start in range(0, len(elts), 16):  # 16 keys per round: ~120 MB per hospital at N = 16384
            batch = elts[start : start + 16]
            aggs = with_live_participants(self, by, lambda names, b=batch: all_keys(names, b))
            for elt, agg in zip(batch, aggs):
                self._galois[elt] = gkg.rotation_key(agg, gkg.sample_crp(self.crs, elt))
        if elts:
            with self.timed("gkg.load"):
                self._he.from_bytes_rotate_key(self.ctx.galois_keys_bytes(self._galois))
        self.timings["rotation_keys"] = self.timings.get("rotation_keys", 0.0) + time.perf_counter() - t0
        return elts

    @property
    def galois_elements(self) -> list[int]:
        return sorted(self._galois)

    # ================================ collective refresh ========================================
    def refresh(self, h: Ciphertext, by=None, *, bound_bits: int | None = None, purpose: str = "refresh") -> Ciphertext:
        """Bring a ciphertext back to the top level with the key holders `by` (default: all).

        bound_bits: public bound on |values| (2^bound_bits): the masks hide values up to it with
        refresh_mask_bits of statistical security; a value far beyond it is refused when combined.
        The ciphertext is switched down to the lowest level that holds the masks first; it may arrive
        at any level at or above that one. purpose: the label prefix the key holders account the round
        under (their study manifest budgets refreshes by it)."""
        return self.refresh_combine([[(1.0, h)]], by, bound_bits=bound_bits, purpose=purpose)[0]

    def refresh_combine(
        self,
        outputs,
        by=None,
        *,
        bound_bits: int | None = None,
        purpose: str = "refresh",
    ) -> list[Ciphertext]:
        """One refresh round for a batch: output o is sum_k coef * ciphertext_k, for outputs given as lists
        of (coef, Ciphertext) with public real coefficients, each landing fresh at the top level."""
        handles: list[Ciphertext] = []
        index: dict[int, int] = {}
        terms = []
        for out in outputs:
            row = []
            for coef, h in out:
                if h.id not in index:
                    index[h.id] = len(handles)
                    handles.append(h)
                row.append((index[h.id], float(coef)))
            terms.append(row)
        entries = [self._get(h) for h in handles]
        cts = self.refresh_raw(
            [e.ct for e in entries], [e.level for e in entries], terms, by, bound_bits=bound_bits, purpose=purpose
        )
        lengths = [max(entries[t[0]].length for t in row) for row in terms]
        return [self._put(ct, n, self.ctx.top_level) for ct, n in zip(cts, lengths)]

    def refresh_raw(
        self,
        cts: list[PyCtxt],
        levels: list[int],
        outputs: list[list[tuple[int, float]]],
        by=None,
        *,
        bound_bits: int | None = None,
        purpose: str = "refresh",
    ) -> list[PyCtxt]:
        """refresh_combine on raw Pyfhel ciphertexts (for engines that keep their own ciphertexts). With
        by=None, key holders that stop answering are left out and the round is redone with the others."""
        return with_live_participants(
            self, by, lambda names: self._refresh_round(cts, levels, outputs, names, bound_bits, purpose)
        )

    def _refresh_round(self, cts, levels, outputs, names, bound_bits, purpose) -> list[PyCtxt]:
        bound = self.refresh_bound_bits if bound_bits is None else int(bound_bits)
        proto = RefreshProtocol(self.ctx)
        scales = [float(ct.scale) for ct in cts]
        level = max(proto.min_level(bound, len(names), scale) for scale in scales)
        low = [lvl for lvl in levels if lvl < level]
        if low:
            raise ProtocolError(
                f"ciphertext at level {min(low)} is too low to refresh values up to 2^{bound} with "
                f"{proto.mask_bits}-bit masks for {len(names)} parties: refresh at level {level} or above"
            )
        t0 = time.perf_counter()
        ring = self.ctx.ring(level)
        c0s, c1_raw = [], []
        for ct, lvl in zip(cts, levels):
            dropped = PyCtxt(copy_ctxt=ct)
            for _ in range(lvl - level):
                self._he.mod_switch_to_next_ctxt(dropped)
            data = CiphertextData.from_bytes(dropped.to_bytes(compr_mode="none"))
            c0, c1 = data.data[0], data.data[1]
            if c1check.digest(c1) in self._sent_c1:  # a retry, or a ciphertext refreshed again: a fresh c1
                c0, c1 = c1check.rerandomize(ring, self._public_key_data(), c0, c1, self._rng, self.ctx.key_ring)
            self._sent_c1.add(c1check.digest(c1))
            c0s.append(np.ascontiguousarray(c0))
            c1_raw.append(self._c1_bytes(c1, level))
        ratios = [proto.ratio(scale) for scale in scales]
        planned = plan_outputs([[(t[0], Fraction(t[1]) * ratios[t[0]], *t[2:]) for t in row] for row in outputs])
        bits = max(proto.mask_bits_total(scale, bound) for scale in scales)
        self._refresh_count += 1
        label = f"{purpose}#{self._refresh_count}"  # unique (the CRPs derive from it), accounted by purpose
        request = {
            "c1": c1_raw,
            "level": level,
            "label": label,
            "participants": names,
            "mask_bits": bits,
            "outputs": [{"terms": [[i, a, list(e)] for i, a, e in terms], "shift": shift} for terms, shift in planned],
        }
        replies = self.call_many("refresh.share", {p: request for p in names})
        h0s = [[proto.h0_from_bytes(replies[p]["h0"][i], level) for p in names] for i in range(len(cts))]
        h1s = [[proto.h1_from_bytes(replies[p]["h1"][o]) for p in names] for o in range(len(outputs))]
        crps = [proto.sample_crp(self.crs, f"{label}/{o}") for o in range(len(outputs))]
        with self.timed("refresh.combine"):
            fresh = proto.finalize(c0s, level, h0s, h1s, crps, planned, bits)
        top = self.ctx.top_level
        pid, scale = self.ctx.level_parms_id(top), self.ctx.scale_ladder[top]
        out = [
            self.ctx.load_ciphertext(
                self._he, CiphertextData(pid, scale, np.stack(pair)).to_bytes(), "refreshed ciphertext"
            )
            for pair in fresh
        ]
        self.timings["refresh"] = self.timings.get("refresh", 0.0) + time.perf_counter() - t0
        return out

    def _c1_bytes(self, c1: np.ndarray, level: int) -> bytes:
        from ..protocols.decryption import ThresholdDecryption

        return ThresholdDecryption(self.ctx).c1_to_bytes(np.ascontiguousarray(c1), level)

    def _public_key_data(self) -> np.ndarray:
        if self.public_key is None:
            raise ProtocolError("no collective public key yet: run the key ceremony")
        return CiphertextData.from_bytes(self.public_key, "collective public key").data

    # ================================ persistence ===============================================
    def _save_role(self, ks) -> None:
        ks.put_json(
            "server",
            {
                "crs_seed": self.crs.seed.hex() if self.crs else None,
                "refresh_count": self._refresh_count,
                "next_id": self._next_id,
                "store": {str(i): {"length": e.length, "level": e.level} for i, e in self._store.items()},
                "timings": self.timings,
            },
        )
        if self.public_key is not None:
            ks.put("public-key", self.public_key)
        ks.put("sent-c1", b"".join(sorted(self._sent_c1)))
        if not self._he.is_relin_key_empty():
            ks.put("relin-key", self._he.to_bytes_relin_key(compr_mode="none"))
        if self._galois:
            ks.put("galois-keys", self.ctx.galois_keys_bytes(self._galois))
        for i, e in self._store.items():
            ks.put(f"ct-{i}", e.ct.to_bytes(compr_mode="none"))

    def _load_role(self, ks) -> None:
        from ..seal.format import KSwitchKeysData

        state = ks.get_json("server")
        self.crs = CommonRandomString(bytes.fromhex(state["crs_seed"])) if state["crs_seed"] else None
        self._refresh_count = int(state["refresh_count"])
        self._next_id = int(state["next_id"])
        self.timings = dict(state.get("timings", {}))
        self._he = self.ctx.pyfhel()
        self.public_key = ks.get("public-key") if ks.has("public-key") else None
        if self.public_key is not None:
            self._he.from_bytes_public_key(self.public_key)
        sent = ks.get("sent-c1") if ks.has("sent-c1") else b""
        self._sent_c1 = {sent[i : i + 16] for i in range(0, len(sent), 16)}
        if ks.has("relin-key"):
            self._he.from_bytes_relin_key(ks.get("relin-key"))
        self._galois = {}
        if ks.has("galois-keys"):
            raw = ks.get("galois-keys")
            keys = KSwitchKeysData.from_bytes(raw, "galois keys")
            for elt in keys.galois_elements():
                self._galois[elt] = [(k.data[0], k.data[1]) for k in keys.keys[(elt - 1) // 2]]
            self._he.from_bytes_rotate_key(raw)
        self._store = {}
        for i, meta in state["store"].items():
            ct = self.ctx.load_ciphertext(self._he, ks.get(f"ct-{i}"), f"stored ciphertext {i}")
            self._store[int(i)] = _Entry(ct, int(meta["length"]), int(meta["level"]))

    # ================================ ciphertext store ==========================================
    def _put(self, ct: PyCtxt, length: int, level: int) -> Ciphertext:
        self._next_id += 1
        self._store[self._next_id] = _Entry(ct, length, level)
        return Ciphertext(self._next_id, length, level, float(ct.scale))

    def _get(self, h: Ciphertext) -> _Entry:
        if not isinstance(h, Ciphertext):
            raise TypeError(f"expected a Ciphertext handle, got {type(h).__name__}")
        try:
            return self._store[h.id]
        except KeyError:
            raise ProtocolError(f"the server holds no ciphertext with id {h.id}") from None

    def forget(self, *handles: Ciphertext) -> None:
        for h in handles:
            self._store.pop(h.id, None)

    def import_ciphertext(self, raw: bytes, length: int) -> Ciphertext:
        data = CiphertextData.from_bytes(raw, "uploaded ciphertext")
        level = self.ctx.check_ciphertext(data, "uploaded ciphertext")
        if not 1 <= length <= self.ctx.params.slots:
            raise ProtocolError(f"ciphertext length {length} out of range 1..{self.ctx.params.slots}")
        return self._put(self.ctx.load_ciphertext(self._he, raw), length, level)

    def export_ciphertext(self, h: Ciphertext, level: int | None = None) -> bytes:
        e = self._get(h)
        ct = self._at_level(e, e.level if level is None else level)
        return ct.to_bytes(compr_mode="none")

    def _on_upload(self, fields, sender):
        s = self._require_session()
        if sender not in s.key_holders and sender != s.researcher:
            raise ProtocolError(f"only data providers and the researcher upload ciphertexts, not {sender}")
        raw = unpack_ciphertext(fields["ciphertext"], f"ciphertext uploaded by {sender}", self.ctx)
        h = self.import_ciphertext(raw, int(fields["length"]))
        return {"id": h.id, "level": h.level, "scale": h.scale}

    def _on_fetch(self, fields, sender):
        """One ciphertext (`id`, `level`) or several (`ids`, `levels`) for the researcher to decrypt."""
        if sender != self._require_session().researcher:
            raise ProtocolError(f"ciphertexts for decryption go to the researcher only, not {sender}")
        if "ids" not in fields:
            return self._fetch_one(int(fields["id"]), int(fields.get("level", 0)))
        return {"items": [self._fetch_one(int(i), int(lv)) for i, lv in zip(fields["ids"], fields["levels"])]}

    def _fetch_one(self, ident: int, level: int) -> dict:
        h = Ciphertext(ident, 0, 0, 0.0)
        e = self._get(h)
        level = min(level, e.level)
        return {"ciphertext": self.export_ciphertext(h, level), "length": e.length, "level": level}

    # ================================ evaluation ================================================
    def _at_level(self, e: _Entry, level: int) -> PyCtxt:
        """A copy of e at `level` and on that level's ladder scale.

        Going down costs nothing but dropped primes when e's scale already matches; otherwise the last
        step down multiplies by 1 encoded at the scale that makes the rescaled result land on the
        ladder exactly."""
        if level > e.level:
            raise ProtocolError(f"cannot raise a ciphertext from level {e.level} to {level} (use refresh)")
        target = self.ctx.scale_ladder[level]
        ct = PyCtxt(copy_ctxt=e.ct)
        scale = float(ct.scale)
        if _close(scale, target):
            for _ in range(e.level - level):
                self._he.mod_switch_to_next_ctxt(ct)
            ct.scale = target
            return ct
        if e.level == level:
            raise ProtocolError(
                f"ciphertext {e} has scale 2^{np.log2(scale):.4f}, not level {level}'s 2^{np.log2(target):.4f}"
            )
        for _ in range(e.level - level - 1):
            self._he.mod_switch_to_next_ctxt(ct)
        q = self.ctx.primes[level + 1]
        pt, _ = self._encode(1.0, e.length, target * q / scale, level + 1)
        self._he.multiply_plain(ct, pt)
        self._he.rescale_to_next(ct)
        ct.scale = target
        return ct

    def _encode(self, values, length: int, scale: float, level: int):
        x = np.asarray(values, dtype=np.float64)
        if x.ndim == 0:
            x = np.full(length, float(x))
        x = x.ravel()
        if x.size > self.ctx.params.slots:
            raise ProtocolError(f"at most {self.ctx.params.slots} values fit one ciphertext, got {x.size}")
        if not np.all(np.isfinite(x)):
            raise ValueError("plaintext operand contains NaN or infinite values")
        pt = self._he.encodeFrac(np.ascontiguousarray(x), scale=scale)
        for _ in range(self.ctx.top_level - level):
            self._he.mod_switch_to_next_ptxt(pt, in_new_ptxt=False)
        return pt, x.size

    def _pair(self, a: Ciphertext, b: Ciphertext, min_level: int = 0) -> tuple[PyCtxt, PyCtxt, int]:
        ea, eb = self._get(a), self._get(b)
        level = min(ea.level, eb.level)
        if level < min_level:
            raise ProtocolError("no multiplicative level left (level 0): refresh the ciphertext first")
        return self._at_level(ea, level), self._at_level(eb, level), level

    def add(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        ca, cb, level = self._pair(a, b)
        self._he.add(ca, cb)
        return self._put(ca, max(a.length, b.length), level)

    def sub(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        ca, cb, level = self._pair(a, b)
        self._he.sub(ca, cb)
        return self._put(ca, max(a.length, b.length), level)

    def negate(self, a: Ciphertext) -> Ciphertext:
        e = self._get(a)
        return self._put(self._he.negate(e.ct, in_new_ctxt=True), e.length, e.level)

    def multiply(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        """a * b, relinearized and rescaled: uses one level."""
        ca, cb, level = self._pair(a, b, min_level=1)
        self._he.multiply(ca, cb)
        self._he.relinearize(ca)
        self._he.rescale_to_next(ca)
        ca.scale = self.ctx.scale_ladder[level - 1]
        return self._put(ca, max(a.length, b.length), level - 1)

    def square(self, a: Ciphertext) -> Ciphertext:
        return self.multiply(a, a)

    def multiply_plain(self, a: Ciphertext, values) -> Ciphertext:
        """a * values (a vector or a scalar), rescaled: uses one level."""
        e = self._get(a)
        if e.level < 1:
            raise ProtocolError("no multiplicative level left (level 0): refresh the ciphertext first")
        ct = self._at_level(e, e.level)
        target = self.ctx.scale_ladder[e.level - 1]
        pt, size = self._encode(values, e.length, target * self.ctx.primes[e.level] / float(ct.scale), e.level)
        self._he.multiply_plain(ct, pt)
        self._he.rescale_to_next(ct)
        ct.scale = target
        return self._put(ct, max(e.length, size), e.level - 1)

    def add_plain(self, a: Ciphertext, values) -> Ciphertext:
        e = self._get(a)
        pt, size = self._encode(values, e.length, float(e.ct.scale), e.level)
        return self._put(self._he.add_plain(e.ct, pt, in_new_ctxt=True), max(e.length, size), e.level)

    def rotate(self, a: Ciphertext, steps: int) -> Ciphertext:
        """Slot rotation to the left by `steps` (right if negative) over all N/2 slots, like
        numpy.roll(x, -steps) on the zero-padded slot vector."""
        e = self._get(a)
        steps = int(steps)
        slots = self.ctx.params.slots
        if steps == 0:
            return self._put(PyCtxt(copy_ctxt=e.ct), e.length, e.level)
        if abs(steps) >= slots:
            raise ProtocolError(f"rotation step {steps} must be below N/2 = {slots} in absolute value")
        if not self._can_rotate(steps):
            raise ProtocolError(f"no rotation key for step {steps}: call generate_rotation_keys([{steps}]) first")
        ct = self._he.rotate(e.ct, steps, in_new_ctxt=True)
        length = slots if e.length < slots else e.length
        return self._put(ct, length, e.level)

    def _can_rotate(self, steps: int) -> bool:
        """A key for this step, or (as SEAL's rotate_vector falls back) for every term of its NAF."""
        try:
            if galois_elt_from_step(steps, self.ctx.n) in self._galois:
                return True
        except ValueError:
            return False
        parts = _naf(steps)
        return len(parts) > 1 and all(self._can_rotate(p) for p in parts)

    def ciphertext_info(self, h: Ciphertext) -> dict:
        e = self._get(h)
        return {
            "id": h.id,
            "length": e.length,
            "level": e.level,
            "scale": float(e.ct.scale),
            "bytes": len(e.ct.to_bytes(compr_mode="none")),
        }


def _naf(value: int) -> list[int]:
    """SEAL's util::naf: signed powers of two summing to value, fewest non-zeros."""
    out = []
    sign = -1 if value < 0 else 1
    v = abs(value)
    bit = 0
    while v:
        if v & 1:
            z = 2 - (v % 4)
            v -= z
            out.append(sign * z * (1 << bit))
        v >>= 1
        bit += 1
    return out
