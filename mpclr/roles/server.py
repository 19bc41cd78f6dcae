"""The server: aggregates key shares into the collective keys and evaluates on ciphertexts.

It holds the collective public key, the relinearization key and rotation keys, and ciphertexts: never a
secret-key share, never a decryption or key-switch share (those go to the researcher, encrypted for it).
All homomorphic evaluation runs in Pyfhel/SEAL, in its public `evaluator` (mpclr.roles.evaluator), which
the training and evaluation code use too. The key ceremony (mpclr.roles.ceremony) and the refresh
(mpclr.roles.refresh_coordinator) are the two mixins this class is made of.
"""

from __future__ import annotations

from ..errors import ProtocolError
from ..ring import CommonRandomString, SecretRandom
from .ceremony import KeyCeremony
from .evaluator import Ciphertext, Evaluator
from .node import Node
from .refresh_coordinator import RefreshCoordinator
from .uploads import UploadKeys

__all__ = ["Server", "Ciphertext"]


class Server(KeyCeremony, RefreshCoordinator, Node):
    role = "server"

    def __init__(self, name, ctx, network):
        super().__init__(name, ctx, network)
        self.evaluator = Evaluator(ctx)
        self.public_key: bytes | None = None
        self.crs: CommonRandomString | None = None
        self.timings: dict[str, float] = {}
        self._refresh_count = 0
        self.refresh_bound_bits = 8  # default public bound on |values| refreshed: 2^8
        self._crs_signatures: dict[str, bytes] = {}
        self._sent_c1: set[bytes] = set()  # c1s sent in refresh requests (hospitals answer each once)
        self._rng = SecretRandom()
        self.uploads = UploadKeys(ctx)  # the hospitals' upload keys (share-keyed uploads)
        self._handlers.update({"ct.upload": self._on_upload, "ct.fetch": self._on_fetch})

    def rebind(self, ctx) -> None:
        """Node.rebind, and the evaluator and upload keys made again on the resolved set (both still empty
        before joining), so that everything the server holds names one parameter set."""
        super().rebind(ctx)
        self.evaluator = Evaluator(ctx)
        self.uploads = UploadKeys(ctx)

    # ================================ persistence ===============================================
    def _save_role(self, ks) -> None:
        ks.put_json(
            "server",
            {
                "crs_seed": self.crs.seed.hex() if self.crs else None,
                "refresh_count": self._refresh_count,
                **self.evaluator.store_state(),
                "galois_levels": {str(k): v for k, v in self.evaluator.galois_levels.items()},
                "timings": self.timings,
                "upload_keys": self.uploads.owners,
            },
        )
        for owner in self.uploads.owners:
            ks.put(f"upload-key-{owner}", self.uploads.key_bytes(owner))
        if self.public_key is not None:
            ks.put("public-key", self.public_key)
        ks.put("sent-c1", b"".join(sorted(self._sent_c1)))
        if not self.evaluator.he.is_relin_key_empty():
            ks.put("relin-key", self.evaluator.he.to_bytes_relin_key(compr_mode="none"))
        if self.evaluator.galois:
            ks.put("galois-keys", self.ctx.galois_keys_bytes(self.evaluator.galois))
        for i, e in self.evaluator.stored():
            ks.put(f"ct-{i}", e.ct.to_bytes(compr_mode="none"))

    def _load_role(self, ks) -> None:
        from ..seal.format import KSwitchKeysData

        state = ks.get_json("server")
        self.crs = CommonRandomString(bytes.fromhex(state["crs_seed"])) if state["crs_seed"] else None
        self._refresh_count = int(state["refresh_count"])
        self.timings = dict(state.get("timings", {}))
        self.evaluator = Evaluator(self.ctx)
        self.public_key = ks.get("public-key") if ks.has("public-key") else None
        if self.public_key is not None:
            self.evaluator.he.from_bytes_public_key(self.public_key)
        sent = ks.get("sent-c1") if ks.has("sent-c1") else b""
        self._sent_c1 = {sent[i : i + 16] for i in range(0, len(sent), 16)}
        if ks.has("relin-key"):
            self.evaluator.he.from_bytes_relin_key(ks.get("relin-key"))
        self.evaluator.galois = {}
        if ks.has("galois-keys"):
            raw = ks.get("galois-keys")
            keys = KSwitchKeysData.from_bytes(raw, "galois keys")
            for elt in keys.galois_elements():
                self.evaluator.galois[elt] = [(k.data[0], k.data[1]) for k in keys.keys[(elt - 1) // 2]]
            self.evaluator.galois_levels = {int(k): int(v) for k, v in state.get("galois_levels", {}).items()}
            self.evaluator.he.from_bytes_rotate_key(raw)
        self.evaluator.load_store(state, lambda i: ks.get(f"ct-{i}"))
        self.uploads = UploadKeys(self.ctx)
        for owner in state.get("upload_keys", []):
            self.uploads.install(owner, ks.get(f"upload-key-{owner}"))

    # ================================ uploads and fetches =======================================
    def _on_upload(self, fields, sender):
        s = self._require_session()
        if sender not in s.key_holders and sender != s.researcher:
            raise ProtocolError(f"only data providers and the researcher upload ciphertexts, not {sender}")
        raw = self.uploads.load(fields["ciphertext"], f"ciphertext uploaded by {sender}", sender)
        h = self.evaluator.import_ciphertext(raw, int(fields["length"]))
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
        e = self.evaluator.get(h)
        level = min(level, e.level)
        return {"ciphertext": self.evaluator.export_ciphertext(h, level), "length": e.length, "level": level}

    # ================================ ciphertexts and arithmetic (the evaluator's) ===============
    def forget(self, *handles: Ciphertext) -> None:
        self.evaluator.forget(*handles)

    def import_ciphertext(self, raw: bytes, length: int) -> Ciphertext:
        return self.evaluator.import_ciphertext(raw, length)

    def export_ciphertext(self, h: Ciphertext, level: int | None = None) -> bytes:
        return self.evaluator.export_ciphertext(h, level)

    def ciphertext_info(self, h: Ciphertext) -> dict:
        return self.evaluator.ciphertext_info(h)

    def add(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        return self.evaluator.add(a, b)

    def sub(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        return self.evaluator.sub(a, b)

    def negate(self, a: Ciphertext) -> Ciphertext:
        return self.evaluator.negate(a)

    def multiply(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        """a * b, relinearized and rescaled: uses one level."""
        return self.evaluator.multiply(a, b)

    def square(self, a: Ciphertext) -> Ciphertext:
        return self.evaluator.square(a)

    def multiply_plain(self, a: Ciphertext, values) -> Ciphertext:
        """a * values (a vector or a scalar), rescaled: uses one level."""
        return self.evaluator.multiply_plain(a, values)

    def add_plain(self, a: Ciphertext, values) -> Ciphertext:
        return self.evaluator.add_plain(a, values)

    def rotate(self, a: Ciphertext, steps: int) -> Ciphertext:
        """Slot rotation to the left by `steps` (right if negative) over all N/2 slots, like
        numpy.roll(x, -steps) on the zero-padded slot vector."""
        return self.evaluator.rotate(a, steps)
