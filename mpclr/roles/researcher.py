"""The researcher: asks for analyses and receives only what the key holders agree to reveal.

Decryption runs here, not at the server: the researcher fetches the (switched-down) ciphertext from the
server, asks the named key holders for their smudged partial decryptions, and combines them. The
server never sees a partial decryption or a result.
"""

from __future__ import annotations

import numpy as np

from ..errors import ProtocolError
from ..protocols.decryption import ThresholdDecryption
from ..seal.format import CiphertextData
from .node import Node

__all__ = ["Researcher"]


class Researcher(Node):
    role = "researcher"

    def __init__(self, name, ctx, network):
        super().__init__(name, ctx, network)
        self._decoder = None  # Pyfhel with the context only: decoding needs no key
        self._dec = ThresholdDecryption(ctx)
        self.revealed: list[dict] = []  # what this researcher has decrypted (for the audit trail)
        self._handlers.update({"keys.install": self._on_keys_install})

    def _on_keys_install(self, fields, sender):
        if sender != self._require_session().server:
            raise ProtocolError("keys come from the session's server")
        self.public_key = bytes(fields["public_key"])
        return {}

    def check_decryptors(self, by) -> list[str]:
        """Resolve and check who decrypts, before anything is sent."""
        s = self._require_session()
        names = []
        for b in by:
            name = s.key_holders[b] if isinstance(b, int | np.integer) else str(b)
            if isinstance(b, int | np.integer) and not 0 <= b < s.n:
                raise ProtocolError(f"party index {b} out of range 0..{s.n - 1}")
            if name not in s.key_holders:
                raise ProtocolError(f"{name!r} is not a key holder of this session")
            if name in names:
                raise ProtocolError(f"{name} is listed twice among the decryptors")
            names.append(name)
        missing = [p for p in s.key_holders if p not in names]
        if s.threshold == s.n and missing:
            raise ProtocolError(
                f"decryption needs all {s.n} key holders (n-out-of-n); missing: {', '.join(missing)}"
            )
        if len(names) < s.threshold:
            raise ProtocolError(f"decryption needs at least {s.threshold} key holders, got {len(names)}")
        return names

    def collect_shares(self, handle, by) -> tuple[CiphertextData, dict]:
        """Fetch a ciphertext from the server (switched to the last prime) and ask the key holders `by`
        for their partial decryptions. Nothing is combined yet."""
        names = self.check_decryptors(by)
        s = self._require_session()
        got = self.call(s.server, "ct.fetch", id=handle.id, level=0)
        data = CiphertextData.from_bytes(got["ciphertext"], "fetched ciphertext")
        level = self.ctx.check_ciphertext(data, "fetched ciphertext")
        c1 = self._dec.c1_to_bytes(data.data[1], level)
        replies = self.call_many("decrypt.share", {p: {"c1": c1, "level": level} for p in names})
        shares = {p: self._dec.share_from_bytes(replies[p]["share"], level) for p in names}
        return data, shares

    def combine(self, data: CiphertextData, shares, length: int | None = None) -> np.ndarray:
        """Combine partial decryptions and decode. With fewer shares than needed the result is noise:
        this is what the workshop shows; `decrypt` refuses to ask too few parties in the first place."""
        level = self.ctx.check_ciphertext(data, "ciphertext")
        agg = self._dec.aggregate_shares(list(shares), level)
        plain = self._dec.decrypt(data.data[0], agg, level, data.scale)
        if self._decoder is None:
            self._decoder = self.ctx.pyfhel()
        return self.ctx.decode(self._decoder, plain, length)

    def decrypt(self, handle, by, *, label: str = "") -> np.ndarray:
        """Threshold decryption of a server-held ciphertext by the key holders `by`."""
        data, shares = self.collect_shares(handle, by)
        values = self.combine(data, shares.values(), handle.length)
        self.revealed.append({"label": label or f"ciphertext {handle.id}", "values": int(handle.length),
                              "by": list(shares)})
        return values
