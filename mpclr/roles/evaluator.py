"""The server's evaluator: ciphertexts it holds, by handle, and the arithmetic on them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Ciphertext"]


@dataclass(frozen=True)
class Ciphertext:
    """A handle to an encrypted vector held by the server (plain data: id, length, level, scale)."""

    id: int
    length: int
    level: int
    scale: float

    def __repr__(self) -> str:
        return f"Ciphertext(id={self.id}, length={self.length}, level={self.level}, scale=2^{np.log2(self.scale):.2f})"
