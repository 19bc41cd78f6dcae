"""w's older fresh ciphertexts, kept as bytes (mpclr.training.encrypted).

w is a lazy combination of every v since the momentum started: it gains one fresh ciphertext per weight and
iteration (hundreds of 2 MiB ciphertexts at 32 features), each needed again only at the later updates and
the last refresh. A spool holds them as bytes, on disk past its threshold, and they are read back one
weight at a time: the same bytes, so the same ciphertexts and the same training.
"""

from __future__ import annotations

from dataclasses import dataclass

from .blocks import Enc
from .spool import Spool, default_threshold

IN_MEMORY = 64 << 20  # beyond this the kept ciphertexts go to disk

__all__ = ["Kept", "KeptCiphertexts"]


@dataclass(frozen=True, eq=False)
class Kept:
    """A ciphertext of w's combination held as bytes in a KeptCiphertexts spool."""

    index: int
    level: int


class KeptCiphertexts:
    """load: raw SEAL bytes -> PyCtxt (the trainer's)."""

    def __init__(self, load):
        self._load = load
        self._spool: Spool | None = None

    def keep(self, x: Enc) -> Kept:
        if self._spool is None:
            self._spool = Spool(min(default_threshold(), IN_MEMORY), name="weights")
        kept = Kept(self._spool.count(), x.level)
        self._spool.add(kept.index, x.ct.to_bytes(compr_mode="none"))
        return kept

    def loaded(self, terms: list[tuple]) -> list[tuple]:
        """The terms (coefficient, ciphertext, ...) with the kept ciphertexts read back."""
        return [(c, Enc(self._load(self._spool[x.index][0]), x.level) if isinstance(x, Kept) else x, *rest)
                for c, x, *rest in terms]

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None
