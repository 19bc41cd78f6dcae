"""A data provider (hospital): holds its rows, one secret-key share and an upload secret (mpclr.roles.uploads).

The share is created inside `join` from the OS CSPRNG and is only ever used inside the handlers below;
what leaves is a protocol share (an RLWE sample, a smudged partial decryption) or a ciphertext.

Secrets live only as long as they are needed. A protocol's own secrets (the CRS nonce, the committed
public-key share, the relinearization round's ephemeral u, this party's own Shamir point) are kept
between the two messages that use them and dropped by the second; `save` then deletes their files. In
a t-out-of-n session the additive share s_i is erased once the threshold set-up has re-shared it: every
later step uses the threshold share, and a step that would need s_i is refused.
"""

from __future__ import annotations

import hashlib
from functools import partial

import numpy as np

from ..errors import FormatError, ProtocolError
from ..protocols import shamir
from ..protocols.cpk import PublicKeyGen
from ..protocols.decryption import ThresholdDecryption
from ..protocols.keyswitch import PublicKeySwitch, key_hash
from ..protocols.refresh import RefreshProtocol, parse_term, polys_ntt
from ..protocols.rlk import RelinKeyGen
from ..protocols.rotation import RotationKeyGen
from ..protocols.share import SecretKeyShare
from ..ring import CommonRandomString, SecretRandom
from ..wire import seal_box
from .encryptor import encrypt_many, level_plans
from .evaluator import Ciphertext
from .extensions import handlers as registered_handlers
from .extensions import register_handlers
from .guard import RequestGuard, check_public_key, check_round_one, commitment, crs_seed, round_one_check
from .node import Node, Session
from .policy import Manifest, Policy
from .uploads import HospitalUploads

__all__ = ["Hospital", "commitment", "register_handlers"]

# secrets one protocol step keeps for the next, as bytes (kept in `_pending`, saved as pending-<name>)
_PENDING_BYTES = ("crs_nonce", "cpk_share", "shamir_own", "rlk_share")
FOLD_KEY_BYTES = 32  # the secret behind a hospital's fold assignment (mpclr.plain.folds.secret_folds)

class Hospital(Node):
    role = "data provider"
    encrypted_replies = frozenset({"decrypt.share", "pcks.share"})  # for the researcher's eyes only

    def __init__(self, name, ctx, network):
        super().__init__(name, ctx, network)
        self._rng = SecretRandom()
        self._sk: SecretKeyShare | None = None
        self._sk_erased = False  # s_i was erased after the t-out-of-n re-sharing (so say so when asked for it)
        self._pending: dict[str, object] = {}
        self._crs: CommonRandomString | None = None
        self._he = None  # Pyfhel with the collective public key, made when the key arrives
        self._cpk = PublicKeyGen(ctx)
        self._rlk = RelinKeyGen(ctx)
        self._gkg = RotationKeyGen(ctx)
        self._dec = ThresholdDecryption(ctx)
        self._refresh = RefreshProtocol(ctx)
        self._pcks = PublicKeySwitch(ctx)
        self._tsk: SecretKeyShare | None = None  # Shamir share sigma_k (t < n only)
        self._used_refresh_labels: set[str] = set()
        self._researcher_pk: bytes | None = None
        self.policy = Policy()  # the study manifest, the ledger and the audit log (mpclr.roles.policy)
        self._guard = RequestGuard(ctx)
        self._fold_key: bytes | None = None  # secret randomness of this hospital's fold assignment
        self._uploads = HospitalUploads(self)  # its upload secret and key share (mpclr.roles.uploads)
        self._next_fold_key: bytes | None = None  # drawn before joining, for the study manifest (fold_sizes)
        self._handlers.update(
            {
                "crs.commit": self._on_crs_commit,
                "crs.reveal": self._on_crs_reveal,
                "crs.seed": self._on_crs_seed,
                "cpk.commit": self._on_cpk_commit,
                "cpk.reveal": self._on_cpk_reveal,
                "rlk.round1": self._on_rlk_round1,
                "rlk.check": self._on_rlk_check,
                "rlk.round2": self._on_rlk_round2,
                "gkg.share": self._on_gkg_share,
                "upk.share": self._uploads.on_share,
                "keys.install": self._on_keys_install,
                "decrypt.share": self._on_decrypt_share,
                "shamir.deal": self._on_shamir_deal,
                "shamir.receive": self._on_shamir_receive,
                "refresh.share": self._on_refresh_share,
                "researcher.key": self._on_researcher_key,
                "pcks.share": self._on_pcks_share,
            }
        )
        for step, fn in registered_handlers().items():
            if step in self._handlers:
                raise ProtocolError(f"a package registered a handler for {step!r}, a hospital's own step")
            self._handlers[step] = partial(fn, self)
        self.extension_state: dict[str, dict] = {}  # what registered packages keep here (public JSON)
        self._data = None  # (X, y, global row indices): this hospital's rows, never sent
        self.folds = None  # this hospital's fold id per row once assigned (public: lr.folds shows the server)

    def join(self, session: Session) -> None:
        self.policy.check_session(session, self.name)
        super().join(session)
        if self.name not in session.key_holders:
            raise ProtocolError(f"{self.name} is not a key holder of this session")
        self._sk = SecretKeyShare.generate(self.ctx.key_ring, self._rng)
        self._sk_erased = False
        self._tsk = None
        self._pending.clear()
        self._crs = None
        self._used_refresh_labels.clear()
        self._researcher_pk = None
        self._guard.reset()
        self._uploads.reset(self._rng)
        # fold assignment: secret, kept for a resumed study; drawn before joining when the hospital counted
        # its rows per fold for the study manifest (fold_sizes, use_fold_key)
        self._fold_key = self._next_fold_key or self._rng.bytes(FOLD_KEY_BYTES)
        self._next_fold_key = None

    # --- helpers --------------------------------------------------------------------------------
    def _secret(self) -> SecretKeyShare:
        if self._sk_erased:
            raise ProtocolError(
                f"{self.name} erased its additive key share s_i when the t-out-of-n set-up re-shared it: this "
                "step needs s_i and runs only in the key ceremony, before that set-up (later steps use the "
                "threshold share)"
            )
        if self._sk is None:
            raise ProtocolError(f"{self.name} holds no key share: join a session first")
        return self._sk

    def _share_for(self, participants) -> SecretKeyShare:
        """The additive share of s this party contributes when `participants` run a protocol: s_i when
        all n take part in an n-out-of-n session, lambda_i^T sigma_i when t < n."""
        s = self._require_session()
        names = list(s.key_holders) if participants is None else [str(p) for p in participants]
        if self.name not in names:
            raise ProtocolError(f"{self.name} is not among the participants {names}")
        if len(set(names)) != len(names) or any(p not in s.key_holders for p in names):
            raise ProtocolError(f"participants must be distinct key holders, got {names}")
        if s.threshold == s.n:
            if sorted(names) != sorted(s.key_holders):
                missing = sorted(set(s.key_holders) - set(names))
                raise ProtocolError(f"n-out-of-n session: all key holders must take part (missing {missing})")
            return self._secret()
        if len(names) < s.threshold:
            raise ProtocolError(f"{len(names)} participants are fewer than the threshold {s.threshold}")
        if self._tsk is None:
            raise ProtocolError(f"{self.name} holds no threshold share yet (run the t-out-of-n set-up)")
        pts = shamir.points(s.key_holders)
        sharing = shamir.ThresholdSharing(self.ctx.key_ring, s.threshold, s.n)
        return sharing.additive_share(self._tsk, pts[self.name], [pts[p] for p in names])

    # --- persistence ----------------------------------------------------------------------------
    def _save_role(self, ks) -> None:
        """The keystore mirrors what this party holds: a secret it no longer holds (spent, erased) is
        deleted from it, not left behind for the next load."""
        for name, share in (("key-share", self._sk), ("threshold-share", self._tsk)):
            if share is not None:
                share.export_to_keystore(ks, name)
            else:
                ks.delete_secret(name)
        public = {
            "key_share_erased": self._sk_erased,
            "crs_seed": self._crs.seed.hex() if self._crs else None,
            "used_refresh_labels": sorted(self._used_refresh_labels),
            "crs_commitments": {k: bytes(v).hex() for k, v in self._pending.get("crs_commitments", {}).items()},
            "folds": None if self.folds is None else self.folds.tolist(),
            "extensions": self.extension_state,
            **self._uploads.save(ks),
        }
        ks.put_json("data-provider", public)
        for name, value in (
            ("public-key", getattr(self, "_public_key", None)),
            ("researcher-key", self._researcher_pk),
        ):
            if value is not None:
                ks.put(name, value)
        if self._fold_key is not None:
            ks.put_secret("fold-key", self._fold_key)
        for name in _PENDING_BYTES:
            if name in self._pending:
                ks.put_secret(f"pending-{name}", self._pending[name])
            else:
                ks.delete_secret(f"pending-{name}")
        if "rlk_u" in self._pending:
            self._pending["rlk_u"].export_to_keystore(ks, "pending-rlk_u")
        else:
            ks.delete_secret("pending-rlk_u")
        self._guard.save(ks)
        self.policy.save(ks)  # the manifest and ledger (public), and where the audit log is

    def _load_role(self, ks) -> None:
        ring = self.ctx.key_ring
        self._sk = SecretKeyShare.import_from_keystore(ring, ks, "key-share") if ks.has("key-share", True) else None
        self._tsk = (
            SecretKeyShare.import_from_keystore(ring, ks, "threshold-share")
            if ks.has("threshold-share", True)
            else None
        )
        public = ks.get_json("data-provider")
        self._sk_erased = bool(public.get("key_share_erased", False))
        if self._sk_erased and self._sk is not None:
            raise FormatError(f"keystore {ks.path} holds a key share this hospital erased: refusing to use it")
        self._crs = CommonRandomString(bytes.fromhex(public["crs_seed"])) if public["crs_seed"] else None
        self._used_refresh_labels = set(public["used_refresh_labels"])
        self._public_key = ks.get("public-key") if ks.has("public-key") else None
        self._researcher_pk = ks.get("researcher-key") if ks.has("researcher-key") else None
        self._fold_key = ks.get_secret("fold-key") if ks.has("fold-key", True) else None
        self._he = None
        self._pending = {}
        if public["crs_commitments"]:
            self._pending["crs_commitments"] = {k: bytes.fromhex(v) for k, v in public["crs_commitments"].items()}
        for name in _PENDING_BYTES:
            if ks.has(f"pending-{name}", True):
                self._pending[name] = ks.get_secret(f"pending-{name}")
        if ks.has("pending-rlk_u", True):
            self._pending["rlk_u"] = SecretKeyShare.import_from_keystore(ring, ks, "pending-rlk_u")
        self.folds = None if public["folds"] is None else np.asarray(public["folds"], dtype=np.int64)
        self.extension_state = dict(public.get("extensions", {}))
        self._uploads.load(ks, public)
        self._guard.load(ks)
        self.policy.load(ks)

    def _require_crs(self) -> CommonRandomString:
        if self._crs is None:
            raise ProtocolError(f"{self.name}: the common random string has not been agreed yet")
        return self._crs

    def from_server(self, sender: str, step: str) -> None:
        """Refuse `step` unless the session's server sent it (for this hospital's and registered handlers)."""
        if sender != self._require_session().server:
            raise ProtocolError(f"{step} is only taken from the session's server, not {sender}")

    # --- common random string: commit-then-reveal coin toss -------------------------------------
    def _on_crs_commit(self, fields, sender):
        self.from_server(sender, "crs.commit")
        if self._crs is not None or "crs_nonce" in self._pending:
            raise ProtocolError(
                "crs.commit: this hospital committed to its nonce in this session already (a second nonce would "
                "let the server choose among common random strings)"
            )
        nonce = self._rng.bytes(32)
        self._pending["crs_nonce"] = nonce
        return {"commitment": commitment(nonce)}

    def _on_crs_reveal(self, fields, sender):
        self.from_server(sender, "crs.reveal")
        holders = self._require_session().key_holders
        if sorted(fields["commitments"]) != sorted(holders):
            raise ProtocolError("reveal requested before every key holder committed")
        nonce = self._pending["crs_nonce"]
        if fields["commitments"][self.name] != commitment(nonce):
            raise ProtocolError("the server relayed a wrong commitment for this hospital")
        self._pending["crs_commitments"] = dict(fields["commitments"])
        return {"nonce": nonce}

    def _on_crs_seed(self, fields, sender):
        self.from_server(sender, "crs.seed")
        nonces: dict = fields["nonces"]
        commits = self._pending.pop("crs_commitments")
        for name, nonce in nonces.items():
            if commits.get(name) != commitment(nonce):
                raise ProtocolError(f"nonce of {name} does not match its commitment")
        if nonces.get(self.name) != self._pending.pop("crs_nonce"):
            raise ProtocolError("own nonce missing from the common random string")
        s = self._require_session()
        self._crs = CommonRandomString(crs_seed(s, nonces))
        # signed, so every node can check that every hospital derived this same seed (keys.install)
        return {
            "seed_hash": hashlib.sha256(self._crs.seed).digest(),
            "signature": self.identity.sign_statement(s.id, "crs.seed", self.name, self._crs.seed),
        }

    # --- collective public key ------------------------------------------------------------------
    def _on_cpk_commit(self, fields, sender):
        self.from_server(sender, "cpk.commit")
        if "cpk_share" in self._pending or self._guard.cpk_commitments is not None:
            raise ProtocolError("cpk.commit: this hospital committed to its public-key share in this session already")
        crp = self._cpk.sample_crp(self._require_crs())
        share = self._cpk.gen_share(self._secret(), crp, self._rng).to_bytes()
        self._pending["cpk_share"] = share
        return {"commitment": commitment(share)}

    def _on_cpk_reveal(self, fields, sender):
        self.from_server(sender, "cpk.reveal")
        if sorted(fields["commitments"]) != sorted(self._require_session().key_holders):
            raise ProtocolError("public-key share requested before every key holder committed")
        share = self._pending.get("cpk_share")
        if share is None:
            raise ProtocolError("cpk.reveal: no public-key share committed to (or it was revealed already)")
        if fields["commitments"][self.name] != commitment(share):
            raise ProtocolError("the server relayed a wrong commitment for this hospital")
        # every share in keys.install must open these: none can be chosen after this hospital's is seen
        self._guard.cpk_commitments = {p: bytes(c) for p, c in fields["commitments"].items()}
        del self._pending["cpk_share"]
        s = self._require_session()
        return {"share": share, "signature": self.identity.sign_statement(s.id, "cpk.share", self.name, share)}

    # --- relinearization key --------------------------------------------------------------------
    def _on_rlk_round1(self, fields, sender):
        self.from_server(sender, "rlk.round1")
        if "rlk_u" in self._pending or self._guard.rlk_round1 is not None:
            raise ProtocolError("rlk.round1: answered already in this session (one ephemeral secret per key)")
        u = self._rlk.ephemeral(self._rng)
        crp = self._rlk.sample_crp(self._require_crs())
        share = self._rlk.gen_share_round_one(self._secret(), u, crp, self._rng).to_bytes()
        self._pending["rlk_u"] = u
        self._pending["rlk_share"] = share  # kept for rlk.check: only the server sees it whole
        self._guard.rlk_round1 = hashlib.sha256(share).digest()
        return {"share": share}

    def _on_rlk_check(self, fields, sender):
        """Round 1b: the server has announced the digest of the aggregate it will send in round 2; sign
        this hospital's inner products with the challenge derived from it (a few scalars)."""
        self.from_server(sender, "rlk.check")
        digest = bytes(fields.get("digest", b""))
        if len(digest) != 32:
            raise ProtocolError(f"rlk.check: the aggregate's digest must be 32 bytes, got {len(digest)}")
        s = self._require_session()
        if self._guard.rlk_check is not None:  # the same digest again (a retry) gets the same answer
            if self._guard.rlk_check[0] != digest:
                raise ProtocolError("rlk.check: answered already in this session for another round-1 aggregate")
            scalars = self._guard.rlk_check[1]
        elif "rlk_share" not in self._pending:
            raise ProtocolError("rlk.check: before this hospital's relinearization round 1")
        else:
            check = round_one_check(self._rlk, s, digest)
            scalars = check.to_bytes(check.scalars(self._rlk.share_from_bytes(self._pending["rlk_share"], 1).data))
            self._guard.rlk_check = (digest, scalars)
            del self._pending["rlk_share"]
        signature = self.identity.sign_statement(s.id, "rlk.check", self.name, digest + scalars)
        return {"scalars": scalars, "signature": signature}

    def _on_rlk_round2(self, fields, sender):
        self.from_server(sender, "rlk.round2")
        if "rlk_u" not in self._pending:
            raise ProtocolError("relinearization round 2 before round 1")
        # a refused aggregate leaves u unused (and kept); once u is multiplied by an accepted one, it is erased
        # whatever happens next: a second round two would need a fresh round one
        round1 = check_round_one(self._rlk, self._require_session(), fields, self.name, self._guard.rlk_check)
        u = self._pending.pop("rlk_u")
        try:
            return {"share": self._rlk.gen_share_round_two(self._secret(), u, round1, self._rng).to_bytes()}
        finally:
            u.erase()

    # --- rotation keys --------------------------------------------------------------------------
    def _on_gkg_share(self, fields, sender):
        """Shares of the rotation keys for `galois_elts` (one round for all of them), or for `galois_elt`."""
        self.from_server(sender, "gkg.share")
        batch = "galois_elts" in fields
        elts = [int(e) for e in fields["galois_elts"]] if batch else [int(fields["galois_elt"])]
        if not 1 <= len(elts) <= 64 or len(set(elts)) != len(elts):
            raise ProtocolError(f"rotation key shares for 1 to 64 distinct Galois elements, got {elts}")
        if any(e % 2 == 0 or not 0 < e < 2 * self.ctx.n for e in elts):
            raise ProtocolError(f"gkg.share: Galois elements must be odd and below 2N = {2 * self.ctx.n}, got {elts}")
        level = fields.get("level")
        if level is not None and (not isinstance(level, int) or not 0 <= level <= self.ctx.top_level):
            raise ProtocolError(f"gkg.share: key level must be an integer in 0..{self.ctx.top_level}, got {level!r}")
        gkg = self._gkg if level is None else RotationKeyGen(self.ctx, level)
        sk = self._share_for(fields.get("participants"))
        crs = self._require_crs()
        shares = [gkg.gen_share(sk, e, gkg.sample_crp(crs, e), self._rng).to_bytes() for e in elts]
        return {"shares": shares} if batch else {"share": shares[0]}

    # --- public key for encryption --------------------------------------------------------------
    def _on_keys_install(self, fields, sender):
        """Install the collective public key only if it is the one every hospital's signed share and this
        hospital's own CRS make: a key the server made itself would let it read every upload."""
        self.from_server(sender, "keys.install")
        if self._guard.cpk_commitments is None:
            raise ProtocolError("keys.install: before this hospital revealed its public-key share")
        key = check_public_key(self.ctx, self._require_session(), fields, self._require_crs(),
                               self._guard.cpk_commitments)
        self._public_key = key
        self._he = None
        return {}

    def _encryptor(self):
        if self._he is None:
            if getattr(self, "_public_key", None) is None:
                raise ProtocolError(f"{self.name} has no collective public key yet (run the key ceremony)")
            he = self.ctx.pyfhel()
            he.from_bytes_public_key(self._public_key)
            self._he = he
        return self._he

    # --- threshold decryption -------------------------------------------------------------------
    def _c1_batch(self, fields, step: str) -> tuple[list, list[int], bool]:
        """(c1s, levels, batch?) of a decryption or key-switch request (one c1 or a list), each c1 admitted by
        the guard (uniform, never answered before)."""
        batch = isinstance(fields["c1"], list)  # a batch: one share per ciphertext, in order
        if batch and (len(fields["c1"]) != len(fields["levels"]) or len(fields["c1"]) > 4096):
            raise ProtocolError(f"{step}: a batch needs one level per ciphertext (at most 4096)")
        levels = [int(lv) for lv in fields["levels"]] if batch else [int(fields["level"])]
        c1s = [self._dec.c1_from_bytes(raw, lv) for raw, lv in zip(fields["c1"] if batch else [fields["c1"]], levels)]
        self._guard.admit(c1s, levels, step)
        return c1s, levels, batch

    def _on_decrypt_share(self, fields, sender):
        s = self._require_session()
        if sender != s.researcher:
            raise ProtocolError(f"decrypt.share: decryption shares go only to the study's researcher, not {sender}")
        sk = self._share_for(fields.get("participants"))
        c1s, levels, batch = self._c1_batch(fields, "decrypt.share")
        shares = [self._dec.gen_share(sk, c1, lv, self._rng).to_bytes() for c1, lv in zip(c1s, levels)]
        return {"shares": shares} if batch else {"share": shares[0]}

    # --- t-out-of-n: Shamir re-sharing ----------------------------------------------------------
    def _box_aad(self, sender: str, recipient: str) -> bytes:
        return b"mpclr/shamir/v1\x00" + self._require_session().id + sender.encode() + b"\x00" + recipient.encode()

    def _on_shamir_deal(self, fields, sender):
        self.from_server(sender, "shamir.deal")
        if self._tsk is not None or "shamir_own" in self._pending:
            raise ProtocolError("shamir.deal: this hospital dealt its key share in this session already (a second "
                                "sharing would leave the hospitals with shares of different polynomials)")
        s = self._require_session()
        sharing = shamir.ThresholdSharing(self.ctx.key_ring, s.threshold, s.n)
        poly = sharing.gen_polynomial(self._secret(), self._rng)
        boxes = {}
        for name, x in shamir.points(s.key_holders).items():
            share = sharing.gen_share(poly, x).to_bytes()
            if name == self.name:
                self._pending["shamir_own"] = share
            else:
                boxes[name] = seal_box(s.roster[name], share, self._box_aad(self.name, name))
        del poly
        return {"boxes": boxes}

    def _on_shamir_receive(self, fields, sender):
        self.from_server(sender, "shamir.receive")
        s = self._require_session()
        sharing = shamir.ThresholdSharing(self.ctx.key_ring, s.threshold, s.n)
        boxes: dict = fields["boxes"]
        expected = sorted(p for p in s.key_holders if p != self.name)
        if sorted(boxes) != expected:
            raise ProtocolError(f"expected Shamir shares from {expected}, got {sorted(boxes)}")
        own = self._pending.pop("shamir_own", None)
        if own is None:
            raise ProtocolError("Shamir shares received before this hospital dealt its own")
        shares = [sharing.share_from_bytes(own)]
        for name in expected:
            plain = self.identity.open_box(boxes[name], self._box_aad(name, self.name))
            shares.append(sharing.share_from_bytes(plain))
        self._tsk = SecretKeyShare(self.ctx.key_ring, sharing.aggregate_shares(shares))
        if s.threshold < s.n and self._sk is not None:
            # s_i is re-shared: from now on every protocol uses the threshold share, so s_i goes (and
            # with it, at the next save, its file). A later request that needs it gets a clear refusal.
            self._sk.erase()
            self._sk, self._sk_erased = None, True
        return {}

    # --- collective refresh ---------------------------------------------------------------------
    def _on_refresh_share(self, fields, sender):
        self.from_server(sender, "refresh.share")
        label = str(fields["label"])
        if label in self._used_refresh_labels:
            raise ProtocolError(f"refresh label {label!r} was used before: a CRP must never repeat")
        level, bits = int(fields["level"]), int(fields["mask_bits"])
        if bits <= self._refresh.mask_bits or bits > 1024:
            raise ProtocolError(
                f"refresh masks of {bits} bits leave less than this hospital's {self._refresh.mask_bits} bits of "
                f"hiding above the values, or are absurd"
            )
        holders = fields.get("participants") or self._require_session().key_holders
        if not self._refresh.fits_masks(level, bits, len(holders)):
            raise ProtocolError(f"refresh masks of {bits} bits for {len(holders)} key holders do not fit level {level}")
        c1s = [self._dec.c1_from_bytes(raw, level) for raw in fields["c1"]]
        polys = polys_ntt(self.ctx, [np.frombuffer(bytes(raw), dtype="<i8") for raw in fields.get("polys", [])])
        outputs = [([parse_term(t, len(polys)) for t in out["terms"]], int(out["shift"])) for out in fields["outputs"]]
        if not c1s or not outputs or any(not 0 <= t[0] < len(c1s) for terms, _ in outputs for t in terms):
            raise ProtocolError("refresh request has no inputs, no outputs, or a term naming a missing input")
        n2 = 2 * self.ctx.n
        if any(
            len(elts) > 20 or any(e % 2 == 0 or not 0 < e < n2 for e in elts)
            for terms, _ in outputs
            for _, _, first, post in terms
            for elts in (first, *post[1:])
        ):
            raise ProtocolError("refresh request names invalid Galois elements")
        sk = self._share_for(fields.get("participants"))
        self._guard.admit(c1s, [level] * len(c1s), "refresh.share")
        crs = self._require_crs()
        self._used_refresh_labels.add(label)
        h0s, h1s = self._refresh.gen_shares(  # CRPs drawn and shares made bytes one at a time: few held at once
            sk, c1s, level, lambda o: self._refresh.sample_crp(crs, f"{label}/{o}"), outputs, bits, self._rng, polys,
            encode=(lambda h: self._refresh.h0_to_bytes(h, level), self._refresh.h1_to_bytes))
        return {"h0": h0s, "h1": h1s}

    # --- key switch to the researcher's key -----------------------------------------------------
    def _on_researcher_key(self, fields, sender):
        if sender != self._require_session().researcher:
            raise ProtocolError(f"only the session's researcher registers a result key, not {sender}")
        self._pcks.target(fields["public_key"])  # validates
        self._researcher_pk = bytes(fields["public_key"])
        return {"key_hash": key_hash(self._researcher_pk)}

    def _on_pcks_share(self, fields, sender):
        if sender != self._require_session().researcher:
            raise ProtocolError(f"pcks.share: key-switch shares go only to the study's researcher, not {sender}")
        if self._researcher_pk is None:
            raise ProtocolError("no researcher key registered with this hospital")
        if fields["target"] != key_hash(self._researcher_pk):
            raise ProtocolError("key switch requested to a key that is not the session researcher's")
        sk = self._share_for(fields.get("participants"))
        target = self._pcks.target(self._researcher_pk)
        c1s, levels, batch = self._c1_batch(fields, "pcks.share")
        shares = [self._pcks.gen_share(sk, c1, lv, target, self._rng).to_bytes() for c1, lv in zip(c1s, levels)]
        return {"shares": shares} if batch else {"share": shares[0]}

    # --- data -----------------------------------------------------------------------------------
    def load_data(self, X, y, rows) -> None:
        """Give this hospital its own rows (features X, labels y in {0, 1}) and their global row indices
        in the study's public row order. They stay here; only ciphertexts of them leave."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        rows = np.asarray(rows, dtype=np.int64)
        if X.ndim != 2 or len(X) != len(y) or len(y) != len(rows):
            raise ValueError(
                f"{self.name}: X, y and rows must have matching lengths, got {X.shape}, {y.shape}, " f"{rows.shape}"
            )
        if not np.all(np.isin(y, (0, 1))):
            raise ValueError(f"{self.name}: labels must be 0 or 1")
        same = (
            self._data is not None
            and np.array_equal(self._data[2], rows)
            and np.array_equal(self._data[1], y)
            and np.array_equal(self._data[0], X)
        )
        self._data = (X, y.astype(np.int64), rows)
        if not same:
            self.folds = None  # fold ids belong to the rows they were dealt for

    def data_shape(self) -> tuple[int, int]:
        """(rows, features) of this hospital's data: public, the study's plan is made of them."""
        return len(self.require_data()[2]), self.require_data()[0].shape[1]

    def fold_key(self) -> bytes:
        """The secret key of this hospital's fold assignment (mpclr.training.hospital). Asked before the study, for
        the manifest's rows per fold, it is the key of the session this hospital joins next, drawn now; in
        a session, the session's (drawn now if a keystore saved before fold keys existed lacks it)."""
        if self.session is None:
            self._next_fold_key = self._next_fold_key or self._rng.bytes(FOLD_KEY_BYTES)
            return self._next_fold_key
        self._fold_key = self._fold_key or self._rng.bytes(FOLD_KEY_BYTES)
        return self._fold_key

    def use_fold_key(self, key: bytes) -> None:
        """The secret key of the fold assignment in the session this hospital joins next, drawn before it
        joined (a deployed hospital draws it when it reports its fold sizes for the study manifest)."""
        if not isinstance(key, bytes | bytearray) or len(key) != FOLD_KEY_BYTES:
            raise ProtocolError(f"{self.name}: a fold key is {FOLD_KEY_BYTES} secret bytes")
        self._next_fold_key = bytes(key)

    def require_data(self):
        """(X, y, global row indices) of this hospital's own rows, for its handlers; refused before load_data."""
        if self._data is None:
            raise ProtocolError(f"{self.name} has no data loaded")
        return self._data

    def encrypt_bytes(self, values, level: int | None = None) -> bytes:
        """A vector encrypted under the collective public key, packed for a reply (what a handler sends); at
        `level` (primes dropped: fewer bytes) when it is first used there."""
        return self.encrypt_many([values], levels=[level])[0]

    def encrypt(self, values):
        """Encrypt a vector under the collective public key and upload it; returns the server's handle."""
        x = np.asarray(values, dtype=np.float64).ravel()
        if x.size == 0 or x.size > self.ctx.params.slots:
            raise ValueError(f"can encrypt 1..{self.ctx.params.slots} values per ciphertext, got {x.size}")
        if not np.all(np.isfinite(x)):
            raise ValueError("cannot encrypt NaN or infinite values")
        raw = self.encrypt_many([x])[0]
        reply = self.call(self._require_session().server, "ct.upload", ciphertext=raw, length=int(x.size))
        return Ciphertext(reply["id"], int(x.size), int(reply["level"]), float(reply["scale"]))

    def encrypt_many(self, vectors, processes: bool = False, levels=None) -> list[bytes]:
        """encrypt_bytes of each vector (at levels[i], None: the top); with `processes`, in an encryption
        process of this hospital's own (mpclr.roles.encryptor: Pyfhel holds the GIL, the hospitals' threads
        would take turns)."""
        vectors = list(vectors)
        return encrypt_many(self, self._encryptor(), vectors, processes, level_plans(self.ctx, levels, len(vectors)),
                            self._uploads.encryptor())

    # ==================== policy gate (mpclr.roles.policy): begin ===========================
    def agree(self, manifest: Manifest) -> None:
        """The study manifest this hospital answers within, shown to it before it joins the session
        (whose digest of it must match); fixed from then on."""
        self.policy.agree(manifest, joined=self.session is not None)

    def _admit(self, msg):
        return self.policy.admit(self.name, msg.type, msg.sender, msg.fields)

    def _audit(self, msg, raw, reply, error, ticket) -> None:
        self.policy.audit(self, msg, raw, reply, error, ticket)

    # ==================== policy gate (mpclr.roles.policy): end =============================

