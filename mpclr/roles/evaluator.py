"""The server's evaluator: its Pyfhel handle (collective public, relinearization and rotation keys; never a
secret key), the ciphertexts it holds by handle, and the arithmetic on them.

Public so that the training and evaluation code, which keep their own ciphertexts between refreshes, use
the same handle by public names: `he`, `encode` at a level and scale, `put`/`get` in the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from Pyfhel import PyCtxt

from ..errors import ProtocolError
from ..seal.format import CiphertextData, galois_elt_from_step

__all__ = ["Ciphertext", "Entry", "Evaluator"]

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
class Entry:
    """A stored ciphertext: its Pyfhel object, how many slots are meaningful, and its level."""

    ct: PyCtxt
    length: int
    level: int


class Evaluator:
    """Homomorphic evaluation on the server's ciphertexts, in Pyfhel/SEAL."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.he = ctx.pyfhel()
        self._store: dict[int, Entry] = {}
        self._next_id = 0
        self.galois: dict[int, list] = {}  # rotation keys made so far: Galois element -> key data
        self.galois_levels: dict[int, int] = {}  # ... and the highest level each one rotates at

    def galois_level(self, elt: int) -> int:
        """The highest level the key of this Galois element rotates at (-1: no key)."""
        if elt not in self.galois:
            return -1
        return self.galois_levels.get(elt, self.ctx.top_level)

    # --- store ----------------------------------------------------------------------------------
    def put(self, ct: PyCtxt, length: int, level: int) -> Ciphertext:
        """Keep `ct` (at `level`, `length` meaningful slots) and return its handle."""
        self._next_id += 1
        self._store[self._next_id] = Entry(ct, length, level)
        return Ciphertext(self._next_id, length, level, float(ct.scale))

    def get(self, h: Ciphertext) -> Entry:
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
        return self.put(self.ctx.load_ciphertext(self.he, raw), length, level)

    def export_ciphertext(self, h: Ciphertext, level: int | None = None) -> bytes:
        e = self.get(h)
        ct = self.at_level(e, e.level if level is None else level)
        return ct.to_bytes(compr_mode="none")

    def ciphertext_info(self, h: Ciphertext) -> dict:
        e = self.get(h)
        return {
            "id": h.id,
            "length": e.length,
            "level": e.level,
            "scale": float(e.ct.scale),
            "bytes": len(e.ct.to_bytes(compr_mode="none")),
        }

    def store_state(self) -> dict:
        """The store's public metadata, for the server's keystore (the ciphertexts go as ct-<id> files)."""
        return {"next_id": self._next_id, "store": {str(i): {"length": e.length, "level": e.level}
                                                    for i, e in self._store.items()}}

    def stored(self):
        return self._store.items()

    def load_store(self, state: dict, ciphertext_bytes) -> None:
        """Rebuild the store from `store_state()` and `ciphertext_bytes(id) -> bytes`."""
        self._next_id = int(state["next_id"])
        self._store = {}
        for i, meta in state["store"].items():
            ct = self.ctx.load_ciphertext(self.he, ciphertext_bytes(i), f"stored ciphertext {i}")
            self._store[int(i)] = Entry(ct, int(meta["length"]), int(meta["level"]))

    # --- levels and plaintexts ------------------------------------------------------------------
    def at_level(self, e: Entry, level: int) -> PyCtxt:
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
                self.he.mod_switch_to_next_ctxt(ct)
            ct.scale = target
            return ct
        if e.level == level:
            raise ProtocolError(
                f"ciphertext {e} has scale 2^{np.log2(scale):.4f}, not level {level}'s 2^{np.log2(target):.4f}"
            )
        for _ in range(e.level - level - 1):
            self.he.mod_switch_to_next_ctxt(ct)
        q = self.ctx.primes[level + 1]
        pt, _ = self.encode(1.0, e.length, target * q / scale, level + 1)
        self.he.multiply_plain(ct, pt)
        self.he.rescale_to_next(ct)
        ct.scale = target
        return ct

    def encode(self, values, length: int, scale: float, level: int):
        """(plaintext of `values` at `scale` switched down to `level`, its size); a scalar fills `length`."""
        x = np.asarray(values, dtype=np.float64)
        if x.ndim == 0:
            x = np.full(length, float(x))
        x = x.ravel()
        if x.size > self.ctx.params.slots:
            raise ProtocolError(f"at most {self.ctx.params.slots} values fit one ciphertext, got {x.size}")
        if not np.all(np.isfinite(x)):
            raise ValueError("plaintext operand contains NaN or infinite values")
        pt = self.he.encodeFrac(np.ascontiguousarray(x), scale=scale)
        for _ in range(self.ctx.top_level - level):
            self.he.mod_switch_to_next_ptxt(pt, in_new_ptxt=False)
        return pt, x.size

    def _pair(self, a: Ciphertext, b: Ciphertext, min_level: int = 0) -> tuple[PyCtxt, PyCtxt, int]:
        ea, eb = self.get(a), self.get(b)
        level = min(ea.level, eb.level)
        if level < min_level:
            raise ProtocolError("no multiplicative level left (level 0): refresh the ciphertext first")
        return self.at_level(ea, level), self.at_level(eb, level), level

    # --- arithmetic -----------------------------------------------------------------------------
    def add(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        ca, cb, level = self._pair(a, b)
        self.he.add(ca, cb)
        return self.put(ca, max(a.length, b.length), level)

    def sub(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        ca, cb, level = self._pair(a, b)
        self.he.sub(ca, cb)
        return self.put(ca, max(a.length, b.length), level)

    def negate(self, a: Ciphertext) -> Ciphertext:
        e = self.get(a)
        return self.put(self.he.negate(e.ct, in_new_ctxt=True), e.length, e.level)

    def multiply(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        """a * b, relinearized and rescaled: uses one level."""
        ca, cb, level = self._pair(a, b, min_level=1)
        self.he.multiply(ca, cb)
        self.he.relinearize(ca)
        self.he.rescale_to_next(ca)
        ca.scale = self.ctx.scale_ladder[level - 1]
        return self.put(ca, max(a.length, b.length), level - 1)

    def square(self, a: Ciphertext) -> Ciphertext:
        return self.multiply(a, a)

    def multiply_plain(self, a: Ciphertext, values) -> Ciphertext:
        """a * values (a vector or a scalar), rescaled: uses one level."""
        e = self.get(a)
        if e.level < 1:
            raise ProtocolError("no multiplicative level left (level 0): refresh the ciphertext first")
        ct = self.at_level(e, e.level)
        target = self.ctx.scale_ladder[e.level - 1]
        pt, size = self.encode(values, e.length, target * self.ctx.primes[e.level] / float(ct.scale), e.level)
        self.he.multiply_plain(ct, pt)
        self.he.rescale_to_next(ct)
        ct.scale = target
        return self.put(ct, max(e.length, size), e.level - 1)

    def add_plain(self, a: Ciphertext, values) -> Ciphertext:
        e = self.get(a)
        pt, size = self.encode(values, e.length, float(e.ct.scale), e.level)
        return self.put(self.he.add_plain(e.ct, pt, in_new_ctxt=True), max(e.length, size), e.level)

    def rotate(self, a: Ciphertext, steps: int) -> Ciphertext:
        """Slot rotation to the left by `steps` (right if negative) over all N/2 slots, like
        numpy.roll(x, -steps) on the zero-padded slot vector."""
        e = self.get(a)
        steps = int(steps)
        slots = self.ctx.params.slots
        if steps == 0:
            return self.put(PyCtxt(copy_ctxt=e.ct), e.length, e.level)
        if abs(steps) >= slots:
            raise ProtocolError(f"rotation step {steps} must be below N/2 = {slots} in absolute value")
        if not self.can_rotate(steps, e.level):
            raise ProtocolError(f"no rotation key for step {steps} at level {e.level}: call "
                                f"generate_rotation_keys([{steps}]) first (keys made for lower levels only do not "
                                "rotate above them)")
        ct = self.he.rotate(e.ct, steps, in_new_ctxt=True)
        length = slots if e.length < slots else e.length
        return self.put(ct, length, e.level)

    def can_rotate(self, steps: int, level: int | None = None) -> bool:
        """A key for this step (valid at `level`, default the top), or (as SEAL's rotate_vector falls back)
        for every term of its NAF."""
        level = self.ctx.top_level if level is None else level
        try:
            if self.galois_level(galois_elt_from_step(steps, self.ctx.n)) >= level:
                return True
        except ValueError:
            return False
        parts = _naf(steps)
        return len(parts) > 1 and all(self.can_rotate(p, level) for p in parts)


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
