"""Share-keyed uploads at the nodes (mpclr.protocols.upload): a hospital's upload secret and its part of
the upload keys (`upk.share`), and the server's keys and switch.

upk.share is a key-ceremony step: the hospital's policy gate lets it through once per study (the
manifest's ceremony budget), and the hospital answers it once per session whatever the gate says, for
exactly the session's key holders as owners (each key's CRPs it derives itself from the CRS under the
owner's label), with its additive key share s_i. A second answer under the same CRPs would give the
server two RLWE samples of s_i with one `a`.
"""

from __future__ import annotations

from Pyfhel import PyCtxt

from ..errors import ProtocolError
from ..protocols.share import SecretKeyShare
from ..protocols.upload import UploadEncryptor, UploadKeyGen, is_share_keyed, read_upload, switch_high
from ..seal.format import CiphertextData, KSwitchKeysData, unpack_ciphertext

__all__ = ["HospitalUploads", "UploadKeys"]


class HospitalUploads:
    """A hospital's upload secret z_i (drawn at join, kept in its keystore like its key share) and whether
    its own upload key was made in this session (then its uploads are share-keyed)."""

    def __init__(self, hospital):
        self.hospital = hospital
        self.gen = UploadKeyGen(hospital.ctx)
        self.secret: SecretKeyShare | None = None
        self.answered = False

    def reset(self, rng) -> None:
        """A new session: a fresh upload secret if it uploads share-keyed (none kept otherwise), no key
        share given yet."""
        if self.secret is not None:
            self.secret.erase()
        ctx = self.hospital.ctx
        self.secret = SecretKeyShare.generate(ctx.key_ring, rng) if ctx.params.upload == "share-keyed" else None
        self.answered = False

    def on_share(self, fields, sender):
        h = self.hospital
        h.from_server(sender, "upk.share")
        if h.ctx.params.upload != "share-keyed":
            raise ProtocolError(f"upk.share: this study's parameters upload with the public key "
                                f"(upload={h.ctx.params.upload!r}); no upload keys are made")
        holders = list(h._require_session().key_holders)
        owners = fields.get("owners")
        if not isinstance(owners, list) or sorted(str(o) for o in owners) != sorted(holders):
            raise ProtocolError(f"upk.share: the owners must be the session's key holders {holders}, each once; "
                                f"got {owners!r}")
        if self.answered:
            raise ProtocolError("upk.share: answered already in this session (a second share under the same "
                                "CRPs would give the server two samples of this hospital's key share)")
        if self.secret is None:
            raise ProtocolError(f"{h.name} holds no upload secret: join a session first")
        sk, crs = h._secret(), h._require_crs()
        shares = [self.gen.gen_share(sk, str(o), self.gen.sample_crp(crs, str(o)), h._rng,
                                     self.secret if o == h.name else None).to_bytes() for o in owners]
        self.answered = True
        return {"shares": shares}

    def encryptor(self) -> UploadEncryptor | None:
        """The symmetric encryption of this hospital's uploads, or None (public key) when its upload key
        was not made."""
        if not self.answered or self.secret is None or self.hospital.ctx.params.upload != "share-keyed":
            return None
        ctx = self.hospital.ctx
        return UploadEncryptor(ctx.n, ctx.primes[:-1], [ctx.level_parms_id(lv) for lv in range(ctx.top_level + 1)],
                               self.secret.full())

    def save(self, ks) -> dict:
        if self.secret is not None:
            self.secret.export_to_keystore(ks, "upload-secret")
        else:
            ks.delete_secret("upload-secret")
        return {"upload_key_share_given": self.answered}

    def load(self, ks, public: dict) -> None:
        ring = self.hospital.ctx.key_ring
        self.secret = SecretKeyShare.import_from_keystore(ring, ks, "upload-secret") \
            if ks.has("upload-secret", True) else None
        self.answered = bool(public.get("upload_key_share_given", False))


class UploadKeys:
    """The server's upload keys, one SEAL RelinKeys per hospital in a Pyfhel object of its own."""

    def __init__(self, ctx):
        self.ctx = ctx
        self._switchers: dict[str, object] = {}

    @property
    def owners(self) -> list[str]:
        return sorted(self._switchers)

    def generate(self, server, holders: list[str]) -> None:
        """One round: every key holder sends its share of every key holder's upload key."""
        gen = UploadKeyGen(self.ctx)
        replies = server.call_many("upk.share", {p: {"owners": holders} for p in holders})
        for p in holders:
            if len(replies[p]["shares"]) != len(holders):
                raise ProtocolError(f"{p} sent {len(replies[p]['shares'])} upload key shares for {len(holders)}")
        with server.timed("upk.aggregate"):
            for i, owner in enumerate(holders):
                agg = gen.aggregate_shares([gen.share_from_bytes(replies[p]["shares"][i], owner) for p in holders])
                self.install(owner, gen.key_bytes(agg, gen.sample_crp(server.crs, owner)))

    def install(self, owner: str, key: bytes) -> None:
        """key: (U_i, V_i), one KSwitchKeys of two rows (mpclr.protocols.upload): U_i in a Pyfhel of its
        own as RelinKeys, V_i's pair as arrays."""
        keys = KSwitchKeysData.from_bytes(bytes(key), f"upload keys of {owner}")
        if keys.parms_id != self.ctx.key_parms_id or [len(r) for r in keys.keys] != [len(self.ctx.gadget), 1]:
            raise ProtocolError(f"upload keys of {owner}: not the two keys of this parameter set")
        he = self.ctx.pyfhel()
        he.from_bytes_relin_key(KSwitchKeysData(keys.parms_id, keys.keys[:1]).to_bytes())
        self._switchers[owner] = (he, keys.keys[1][0].data, bytes(key))

    def key_bytes(self, owner: str) -> bytes:
        return self._switchers[owner][2]

    def load(self, raw, what: str, sender: str) -> bytes:
        """An uploaded ciphertext as SEAL bytes under the collective key: a share-keyed one switched with
        its sender's upload key, a public-key one unpacked (every residue checked either way)."""
        if not is_share_keyed(raw):
            return unpack_ciphertext(raw, what, self.ctx)
        keys = self._switchers.get(sender)
        if keys is None:
            raise ProtocolError(f"{what}: a share-keyed upload from {sender}, which has no upload key")
        he, high_key = keys[0], keys[1]
        low, hi, level = read_upload(raw, self.ctx, what)
        ct = PyCtxt(pyfhel=he)
        ct.from_bytes(low.to_bytes(), scheme="ckks")
        he.relinearize(ct)
        out = CiphertextData.from_bytes(ct.to_bytes(compr_mode="none"), what)
        out.data = self.ctx.ring(level).add(out.data, switch_high(self.ctx, level, hi, high_key))
        return out.to_bytes()
