"""Residues on the wire at their primes' widths, not 64 bits.

Residues modulo a b-bit prime need b bits; SEAL's format and numpy's both spend 64. Shares and
ciphertexts are uniform modulo their primes, so packing each prime's row at the bit length of its
largest value (which is the prime's own width) saves a fifth of the bytes at the train preset's 50-bit
primes and reveals nothing. Layout: one width byte per prime, then every row packed little-endian.
"""

from __future__ import annotations

import numpy as np

from ..errors import FormatError
from ._kernels import pack_bits, unpack_bits

__all__ = ["pack_residues", "unpack_residues"]


def pack_residues(data: np.ndarray) -> bytes:
    """(..., K, N) uint64 residues -> K width bytes + the packed rows."""
    data = np.ascontiguousarray(data, dtype=np.uint64)
    k, n = data.shape[-2], data.shape[-1]
    widths = np.array([max(1, int(m).bit_length()) for m in data.reshape(-1, k, n).max(axis=(0, 2))], dtype=np.uint64)
    return bytes(int(w) for w in widths) + pack_bits(data, widths, n)


def unpack_residues(raw, offset: int, shape: tuple[int, ...], max_bits, what: str) -> np.ndarray:
    """The inverse of pack_residues for raw[offset:], which must end exactly where the rows do. A row
    wider than `max_bits` (per prime) cannot hold reduced residues and is refused here; values between
    the prime and 2^width are the caller's check (Ring.is_reduced)."""
    k, n = shape[-2], shape[-1]
    widths = np.frombuffer(bytes(raw[offset : offset + k]), dtype=np.uint8).astype(np.uint64)
    if len(widths) != k:
        raise FormatError(f"{what}: truncated header")
    if any(w < 1 or w > int(m) for w, m in zip(widths.tolist(), max_bits)):
        raise FormatError(f"{what}: bit widths {widths.tolist()} exceed the primes' (values not reduced)")
    offset += k
    rows = int(np.prod(shape)) // n
    size = sum((n * int(widths[r % k]) + 7) // 8 for r in range(rows))
    if len(raw) != offset + size:
        raise FormatError(f"{what}: {len(raw)} bytes, expected {offset + size} (truncated?)")
    data = np.empty(shape, dtype=np.uint64)
    unpack_bits(data, raw, offset, widths, n)
    return data
