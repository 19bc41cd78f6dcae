"""The researcher: asks for analyses and receives only what the key holders agree to reveal.

Decryption and key switching run here, not at the server: the researcher fetches the (switched-down)
ciphertext from the server, asks the named key holders for their smudged partial decryptions or
key-switch shares (their replies are encrypted for the researcher), and combines them. The server never
sees a share or a result.

A hospital answers any c1 only once. So when the researcher asks again about a c1 it has sent before
(a repeated decryption, or a round redone without a hospital that stopped answering) it first adds an
encryption of zero under the collective key: the same message with a fresh c1, and the noise of a fresh
encryption on top (a first request keeps the ciphertext as it is, and its precision).
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import NodeUnavailable, ProtocolError
from ..protocols import c1 as c1check
from ..protocols.decryption import ThresholdDecryption
from ..protocols.keyswitch import PublicKeySwitch, key_hash
from ..ring import SecretRandom
from ..seal.format import CiphertextData
from .guard import check_public_key
from .node import Node, check_participants, with_live_participants

__all__ = ["Researcher"]


class Researcher(Node):
    role = "researcher"

    def __init__(self, name, ctx, network):
        super().__init__(name, ctx, network)
        self._decoder = None  # Pyfhel with the context only: decoding needs no key
        self._own = None  # Pyfhel with this researcher's own key pair (results switched to it)
        self._own_hash: str | None = None
        self._registered: set[str] = set()  # key holders holding this researcher's result key
        self._dec = ThresholdDecryption(ctx)
        self._rng = SecretRandom()
        self._sent_c1: set[bytes] = set()  # digests of the c1s this researcher has asked about
        self.public_key: bytes | None = None
        self.revealed: list[dict] = []  # what this researcher has decrypted (for the audit trail)
        self._handlers.update({"keys.install": self._on_keys_install})

    def _save_role(self, ks) -> None:
        ks.put_json(
            "researcher",
            {"own_hash": self._own_hash, "revealed": self.revealed, "registered": sorted(self._registered)},
        )
        if getattr(self, "public_key", None) is not None:
            ks.put("public-key", self.public_key)
        ks.put("sent-c1", b"".join(sorted(self._sent_c1)))
        if self._own is not None:
            ks.put_secret("own-secret-key", self._own.to_bytes_secret_key(compr_mode="none"))
            ks.put("own-public-key", self._own.to_bytes_public_key(compr_mode="none"))

    def _load_role(self, ks) -> None:
        state = ks.get_json("researcher")
        self._own_hash = state["own_hash"]
        self.revealed = list(state["revealed"])
        self._registered = set(state.get("registered", []))
        self.public_key = ks.get("public-key") if ks.has("public-key") else None
        sent = ks.get("sent-c1") if ks.has("sent-c1") else b""
        self._sent_c1 = {sent[i : i + 16] for i in range(0, len(sent), 16)}
        self._own = None
        if ks.has("own-secret-key", True):
            he = self.ctx.pyfhel()
            he.from_bytes_secret_key(ks.get_secret("own-secret-key"))
            he.from_bytes_public_key(ks.get("own-public-key"))
            self._own = he

    def _on_keys_install(self, fields, sender):
        """The collective public key, checked as each hospital checks it (against the hospitals' signed
        shares and the CRS seed they all signed): the researcher encrypts under it too."""
        if sender != self._require_session().server:
            raise ProtocolError("keys come from the session's server")
        self.public_key = check_public_key(self.ctx, self._require_session(), fields, None, None)
        return {}

    def _fresh(self, data: CiphertextData, level: int) -> CiphertextData:
        """`data` if its c1 was never sent, else the same ciphertext with a fresh c1 (plus an encryption
        of zero under the collective key)."""
        if c1check.digest(data.data[1]) in self._sent_c1:
            if self.public_key is None:
                raise ProtocolError(f"{self.name} has no collective public key (run the key ceremony)")
            pk = CiphertextData.from_bytes(self.public_key, "collective public key").data
            c0, c1 = c1check.rerandomize(
                self.ctx.ring(level), pk, data.data[0], data.data[1], self._rng, self.ctx.key_ring
            )
            data = CiphertextData(data.parms_id, data.scale, np.stack([c0, c1]))
        self._sent_c1.add(c1check.digest(data.data[1]))
        return data

    def check_decryptors(self, by) -> list[str]:
        """Resolve and check who decrypts, before anything is sent."""
        return check_participants(self._require_session(), by, self.unavailable)

    # --- results under the researcher's own key -------------------------------------------------
    def ensure_keys(self) -> str:
        """Make this researcher's own CKKS key pair (once) and register the public key with the key
        holders (those answering; at least t), who will key-switch results only to it. Returns its hash."""
        if self._own is None:
            he = self.ctx.pyfhel()
            he.keyGen()
            self._own = he
            self._own_hash = key_hash(he.to_bytes_public_key(compr_mode="none"))
        s = self._require_session()
        todo = [p for p in s.key_holders if p not in self._registered and p not in self.unavailable]
        pk = self._own.to_bytes_public_key(compr_mode="none") if todo else None
        while todo:  # one round to every key holder (a round costs about a second over Flower)
            try:
                replies = self.call_many("researcher.key", {p: {"public_key": pk} for p in todo})
            except NodeUnavailable as exc:  # the others registered it or will in the next round
                self.unavailable.update(exc.nodes)
                todo = [p for p in todo if p not in exc.nodes]
                continue
            for p, reply in replies.items():
                if reply["key_hash"] != self._own_hash:
                    raise ProtocolError(f"{p} registered a different researcher key")
                self._registered.add(p)
            todo = []
        if len(self._registered) < s.threshold:
            raise ProtocolError(
                f"the result key reached only {len(self._registered)} key holders; {s.threshold} needed"
            )
        return self._own_hash

    def key_switch(self, handle, by=None, *, label: str = "") -> bytes:
        """The server's ciphertext re-encrypted by the key holders `by` under this researcher's own key
        (SEAL bytes; only this researcher can decrypt them)."""
        return self._key_switch(handle, by, label)[1].to_bytes()

    def _key_switch(self, handle, by, label: str = ""):
        """Fetch the ciphertext (the server only hands it out), ask the key holders for key-switch shares
        (they come here, encrypted for the researcher) and combine them here."""
        self.check_decryptors(by)
        target = self.ensure_keys()
        s = self._require_session()
        got = self.call(s.server, "ct.fetch", id=handle.id, level=0)
        data = CiphertextData.from_bytes(got["ciphertext"], "fetched ciphertext")
        level = self.ctx.check_ciphertext(data, "fetched ciphertext")
        proto = PublicKeySwitch(self.ctx)

        def round_(names):
            fresh = self._fresh(data, level)
            request = {"c1": self._dec.c1_to_bytes(fresh.data[1], level), "level": level, "participants": names,
                       "target": target, "label": label or f"ciphertext {handle.id}", "values": int(got["length"])}
            replies = self.call_many("pcks.share", {p: request for p in names})
            shares = [proto.share_from_bytes(replies[p]["share"], level) for p in names]
            with self.timed("pcks.combine"):
                return names, proto.finalize(fresh, shares)

        names, switched = with_live_participants(self, by, round_)
        return names, switched, int(got["length"])

    def receive_many(self, handles, by=None, *, labels=None) -> list[np.ndarray]:
        """Several results switched to this researcher's key in one round to the server and one to the key
        holders (the same set switches all of them), decrypted here: `receive` for a batch."""
        from Pyfhel import PyCtxt

        handles = list(handles)
        labels = list(labels) if labels is not None else [f"ciphertext {h.id}" for h in handles]
        self.check_decryptors(by)
        target = self.ensure_keys()
        s = self._require_session()
        got = self.call(s.server, "ct.fetch", ids=[h.id for h in handles], levels=[0] * len(handles))["items"]
        fetched = [CiphertextData.from_bytes(item["ciphertext"], "fetched ciphertext") for item in got]
        levels = [self.ctx.check_ciphertext(d, "fetched ciphertext") for d in fetched]
        proto = PublicKeySwitch(self.ctx)

        def round_(names):
            fresh = [self._fresh(d, lv) for d, lv in zip(fetched, levels)]
            request = {"c1": [self._dec.c1_to_bytes(d.data[1], lv) for d, lv in zip(fresh, levels)],
                       "levels": levels, "participants": names, "target": target, "label": _common_label(labels),
                       "values": [int(item["length"]) for item in got]}
            replies = self.call_many("pcks.share", {p: request for p in names})
            with self.timed("pcks.combine"):
                return names, [proto.finalize(d, [proto.share_from_bytes(replies[p]["shares"][k], lv) for p in names])
                               for k, (d, lv) in enumerate(zip(fresh, levels))]

        names, switched = with_live_participants(self, by, round_)
        out = []
        for ct_data, item, label in zip(switched, got, labels):
            ct = PyCtxt(pyfhel=self._own)
            ct.from_bytes(ct_data.to_bytes(), scheme="ckks")
            length = int(item["length"])
            out.append(np.asarray(self._own.decryptFrac(ct))[:length])
            self.revealed.append(
                {"label": label, "values": length, "by": list(names), "path": "key switch to researcher"}
            )
        return out

    def receive(self, handle, by=None, *, label: str = "") -> np.ndarray:
        """A result switched by the key holders `by` to this researcher's key and decrypted here: nobody
        else sees a share or the result."""
        from Pyfhel import PyCtxt

        names, switched, length = self._key_switch(handle, by, label)
        ct = PyCtxt(pyfhel=self._own)
        ct.from_bytes(switched.to_bytes(), scheme="ckks")
        values = np.asarray(self._own.decryptFrac(ct))[:length]
        self.revealed.append(
            {
                "label": label or f"ciphertext {handle.id}",
                "values": length,
                "by": list(names),
                "path": "key switch to researcher",
            }
        )
        return values

    def collect_shares(self, handle, by, level: int | None = 0, label: str = "") -> tuple[CiphertextData, dict]:
        """Fetch a ciphertext from the server (switched to `level`, default the last prime; None keeps
        its level, for values too large for q_0) and ask the key holders `by` for their partial
        decryptions. Nothing is combined yet."""
        self.check_decryptors(by)
        s = self._require_session()
        got = self.call(s.server, "ct.fetch", id=handle.id, level=handle.level if level is None else level)
        data = CiphertextData.from_bytes(got["ciphertext"], "fetched ciphertext")
        level = self.ctx.check_ciphertext(data, "fetched ciphertext")

        def round_(names):
            fresh = self._fresh(data, level)
            request = {"c1": self._dec.c1_to_bytes(fresh.data[1], level), "level": level, "participants": names,
                       "label": label or f"ciphertext {handle.id}", "values": int(handle.length)}
            replies = self.call_many("decrypt.share", {p: request for p in names})
            return fresh, {p: self._dec.share_from_bytes(replies[p]["share"], level) for p in names}

        return with_live_participants(self, by, round_)

    def combine(self, data: CiphertextData, shares, length: int | None = None) -> np.ndarray:
        """Combine partial decryptions and decode. With fewer shares than needed the result is noise:
        this is what the workshop shows; `decrypt` refuses to ask too few parties in the first place."""
        level = self.ctx.check_ciphertext(data, "ciphertext")
        with self.timed("decrypt.combine"):
            agg = self._dec.aggregate_shares(list(shares), level)
            plain = self._dec.decrypt(data.data[0], agg, level, data.scale)
        if self._decoder is None:
            self._decoder = self.ctx.pyfhel()
        with self.timed("decrypt.decode"):
            return self.ctx.decode(self._decoder, plain, length)

    def decrypt_many(self, handles, by, *, labels=None, level: int | None = 0) -> list[np.ndarray]:
        """Threshold decryption of several ciphertexts in one round trip to the server and one to the key
        holders (the same set decrypts all of them)."""
        handles = list(handles)
        labels = list(labels) if labels is not None else [f"ciphertext {h.id}" for h in handles]
        self.check_decryptors(by)
        s = self._require_session()
        got = self.call(
            s.server,
            "ct.fetch",
            ids=[h.id for h in handles],
            levels=[h.level if level is None else level for h in handles],
        )["items"]
        fetched, lvls = [], []
        for item in got:
            data = CiphertextData.from_bytes(item["ciphertext"], "fetched ciphertext")
            fetched.append(data)
            lvls.append(self.ctx.check_ciphertext(data, "fetched ciphertext"))

        def round_(names):
            fresh = [self._fresh(d, lv) for d, lv in zip(fetched, lvls)]
            request = {
                "c1": [self._dec.c1_to_bytes(d.data[1], lv) for d, lv in zip(fresh, lvls)],
                "levels": lvls,
                "participants": names,
                "label": _common_label(labels),
                "values": [int(h.length) for h in handles],
            }
            replies = self.call_many("decrypt.share", {p: request for p in names})
            return fresh, names, [
                [self._dec.share_from_bytes(replies[p]["shares"][k], lv) for p in names] for k, lv in enumerate(lvls)
            ]

        datas, names, shares = with_live_participants(self, by, round_)
        out = []
        for data, share, h, label in zip(datas, shares, handles, labels):
            out.append(self.combine(data, share, h.length))
            self.revealed.append(
                {"label": label, "values": int(h.length), "by": list(names), "path": "threshold decryption"}
            )
        return out

    def decrypt(self, handle, by, *, label: str = "", level: int | None = 0) -> np.ndarray:
        """Threshold decryption of a server-held ciphertext by the key holders `by`."""
        data, shares = self.collect_shares(handle, by, level, label)
        values = self.combine(data, shares.values(), handle.length)
        self.revealed.append(
            {
                "label": label or f"ciphertext {handle.id}",
                "values": int(handle.length),
                "by": list(shares),
                "path": "threshold decryption",
            }
        )
        return values


def _common_label(labels: list[str]) -> str:
    """One label for a batch, as the key holders account it: the labels' common part up to its last
    colon ("fold models: feature 0 of group 0", ... -> "fold models"), or the label when all agree."""
    if len(set(labels)) == 1:
        return labels[0]
    common = os.path.commonprefix(labels)
    return common.rsplit(":", 1)[0].strip() if ":" in common else common.strip()
