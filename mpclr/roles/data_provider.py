"""A data provider (hospital): holds its rows and one secret-key share, answers protocol steps.

The share is created inside `join` from the OS CSPRNG and is only ever used inside the handlers below;
what leaves is a protocol share (an RLWE sample, a smudged partial decryption) or a ciphertext.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..errors import ProtocolError
from ..protocols.cpk import PublicKeyGen
from ..protocols.decryption import ThresholdDecryption
from ..protocols.rlk import RelinKeyGen
from ..protocols.rotation import RotationKeyGen
from ..protocols.share import SecretKeyShare
from ..ring import CommonRandomString, SecretRandom
from .node import Node, Session

__all__ = ["DataProvider"]


def commitment(data: bytes) -> bytes:
    return hashlib.sha256(b"mpclr/commit/v1\x00" + data).digest()


class DataProvider(Node):
    role = "data provider"

    def __init__(self, name, ctx, network):
        super().__init__(name, ctx, network)
        self._rng = SecretRandom()
        self._sk: SecretKeyShare | None = None
        self._pending: dict[str, object] = {}
        self._crs: CommonRandomString | None = None
        self._he = None  # Pyfhel with the collective public key, made when the key arrives
        self._cpk = PublicKeyGen(ctx)
        self._rlk = RelinKeyGen(ctx)
        self._gkg = RotationKeyGen(ctx)
        self._dec = ThresholdDecryption(ctx)
        self._handlers.update({
            "crs.commit": self._on_crs_commit,
            "crs.reveal": self._on_crs_reveal,
            "crs.seed": self._on_crs_seed,
            "cpk.commit": self._on_cpk_commit,
            "cpk.reveal": self._on_cpk_reveal,
            "rlk.round1": self._on_rlk_round1,
            "rlk.round2": self._on_rlk_round2,
            "gkg.share": self._on_gkg_share,
            "keys.install": self._on_keys_install,
            "decrypt.share": self._on_decrypt_share,
        })

    def join(self, session: Session) -> None:
        super().join(session)
        if self.name not in session.key_holders:
            raise ProtocolError(f"{self.name} is not a key holder of this session")
        self._sk = SecretKeyShare.generate(self.ctx.key_ring, self._rng)
        self._pending.clear()
        self._crs = None

    # --- helpers --------------------------------------------------------------------------------
    def _secret(self) -> SecretKeyShare:
        if self._sk is None:
            raise ProtocolError(f"{self.name} holds no key share: join a session first")
        return self._sk

    def _require_crs(self) -> CommonRandomString:
        if self._crs is None:
            raise ProtocolError(f"{self.name}: the common random string has not been agreed yet")
        return self._crs

    def _from_server(self, sender: str, step: str) -> None:
        if sender != self._require_session().server:
            raise ProtocolError(f"{step} is only taken from the session's server, not {sender}")

    # --- common random string: commit-then-reveal coin toss -------------------------------------
    def _on_crs_commit(self, fields, sender):
        self._from_server(sender, "crs.commit")
        nonce = self._rng.bytes(32)
        self._pending["crs_nonce"] = nonce
        return {"commitment": commitment(nonce)}

    def _on_crs_reveal(self, fields, sender):
        self._from_server(sender, "crs.reveal")
        holders = self._require_session().key_holders
        if sorted(fields["commitments"]) != sorted(holders):
            raise ProtocolError("reveal requested before every key holder committed")
        nonce = self._pending["crs_nonce"]
        if fields["commitments"][self.name] != commitment(nonce):
            raise ProtocolError("the server relayed a wrong commitment for this party")
        self._pending["crs_commitments"] = dict(fields["commitments"])
        return {"nonce": nonce}

    def _on_crs_seed(self, fields, sender):
        self._from_server(sender, "crs.seed")
        nonces: dict = fields["nonces"]
        commits = self._pending.pop("crs_commitments")
        for name, nonce in nonces.items():
            if commits.get(name) != commitment(nonce):
                raise ProtocolError(f"nonce of {name} does not match its commitment")
        if nonces.get(self.name) != self._pending.pop("crs_nonce"):
            raise ProtocolError("own nonce missing from the common random string")
        self._crs = CommonRandomString(crs_seed(self._require_session(), nonces))
        return {"seed_hash": hashlib.sha256(self._crs.seed).digest()}

    # --- collective public key ------------------------------------------------------------------
    def _on_cpk_commit(self, fields, sender):
        self._from_server(sender, "cpk.commit")
        crp = self._cpk.sample_crp(self._require_crs())
        share = self._cpk.gen_share(self._secret(), crp, self._rng).to_bytes()
        self._pending["cpk_share"] = share
        return {"commitment": commitment(share)}

    def _on_cpk_reveal(self, fields, sender):
        self._from_server(sender, "cpk.reveal")
        if sorted(fields["commitments"]) != sorted(self._require_session().key_holders):
            raise ProtocolError("public-key share requested before every key holder committed")
        share = self._pending.pop("cpk_share")
        if fields["commitments"][self.name] != commitment(share):
            raise ProtocolError("the server relayed a wrong commitment for this party")
        return {"share": share}

    # --- relinearization key --------------------------------------------------------------------
    def _on_rlk_round1(self, fields, sender):
        self._from_server(sender, "rlk.round1")
        u = self._rlk.ephemeral(self._rng)
        self._pending["rlk_u"] = u
        crp = self._rlk.sample_crp(self._require_crs())
        return {"share": self._rlk.gen_share_round_one(self._secret(), u, crp, self._rng).to_bytes()}

    def _on_rlk_round2(self, fields, sender):
        self._from_server(sender, "rlk.round2")
        u = self._pending.pop("rlk_u", None)
        if u is None:
            raise ProtocolError("relinearization round 2 before round 1")
        round1 = self._rlk.share_from_bytes(fields["round1"], 1)
        return {"share": self._rlk.gen_share_round_two(self._secret(), u, round1, self._rng).to_bytes()}

    # --- rotation keys --------------------------------------------------------------------------
    def _on_gkg_share(self, fields, sender):
        self._from_server(sender, "gkg.share")
        elt = int(fields["galois_elt"])
        crp = self._gkg.sample_crp(self._require_crs(), elt)
        return {"share": self._gkg.gen_share(self._secret(), elt, crp, self._rng).to_bytes()}

    # --- public key for encryption --------------------------------------------------------------
    def _on_keys_install(self, fields, sender):
        self._from_server(sender, "keys.install")
        self._public_key = bytes(fields["public_key"])
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
    def _on_decrypt_share(self, fields, sender):
        s = self._require_session()
        if sender not in (s.researcher, s.server):
            raise ProtocolError(f"decryption shares go to the researcher, not {sender}")
        level = int(fields["level"])
        c1 = self._dec.c1_from_bytes(fields["c1"], level)
        share = self._dec.gen_share(self._secret(), c1, level, self._rng)
        return {"share": share.to_bytes()}

    # --- data -----------------------------------------------------------------------------------
    def encrypt(self, values):
        """Encrypt a vector under the collective public key and upload it; returns the server's handle."""
        from .server import Ciphertext

        he = self._encryptor()
        x = np.asarray(values, dtype=np.float64).ravel()
        if x.size == 0 or x.size > self.ctx.params.slots:
            raise ValueError(f"can encrypt 1..{self.ctx.params.slots} values per ciphertext, got {x.size}")
        if not np.all(np.isfinite(x)):
            raise ValueError("cannot encrypt NaN or infinite values")
        ct = he.encryptFrac(x, scale=2.0**self.ctx.params.scale_bits)
        reply = self.call(self._require_session().server, "ct.upload",
                          ciphertext=ct.to_bytes(compr_mode="none"), length=int(x.size))
        return Ciphertext(reply["id"], int(x.size), int(reply["level"]), float(reply["scale"]))


def crs_seed(session: Session, nonces: dict[str, bytes]) -> bytes:
    h = hashlib.sha256(b"mpclr/crs-seed/v1\x00" + session.id)
    for name in session.key_holders:
        h.update(nonces[name])
    return h.digest()
