"""One parameter set as SEAL sees it: its primes, levels and parms_ids, and Pyfhel objects built on it."""

from __future__ import annotations

import copy
import hashlib
import json
import struct
from functools import cached_property

import numpy as np
from Pyfhel import PyCtxt, Pyfhel, PyPtxt

from ..errors import FormatError
from ..params import Params
from ..ring import Ring, ring_for
from .format import CiphertextData, KSwitchKeysData, PlaintextData, parms_id

__all__ = ["SealContext", "seal_context"]


class SealContext:
    """Levels are numbered as in the CKKS literature: level l has the primes q_0..q_l; the top level of a
    fresh ciphertext is L - 1 and the key level adds the special prime P."""

    def __init__(self, params: Params):
        self.params = params
        he = Pyfhel()
        he.contextGen(scheme="ckks", n=params.n, scale=2.0**params.scale_bits, qi_sizes=list(params.coeff_bits))
        self._context_bytes = he.to_bytes_context()
        self.n = params.n
        self.primes = tuple(int(q) for q in he.qi)
        if len(self.primes) != len(params.coeff_bits):
            raise FormatError(f"SEAL returned {len(self.primes)} primes for {len(params.coeff_bits)} requested")
        self.special_prime = self.primes[-1]
        self.top_level = len(self.primes) - 2
        self.key_parms_id = parms_id(self.n, self.primes)
        self._level_pids = [parms_id(self.n, self.primes[: lvl + 1]) for lvl in range(self.top_level + 1)]
        self._pid_levels = {pid: lvl for lvl, pid in enumerate(self._level_pids)}
        self.key_ring: Ring = ring_for(self.n, self.primes)
        self.fingerprint = _fingerprint(params, self.primes)

    def with_upload(self, mode: str) -> SealContext:
        """This context for the same set with another upload mode (a study's resolved "auto"): SEAL's
        context, primes and tables shared, the set and its fingerprint (which binds the mode) its own."""
        other = copy.copy(self)
        other.params = self.params.with_(upload=mode)
        other.fingerprint = _fingerprint(other.params, self.primes)
        return other

    # --- levels ---------------------------------------------------------------------------------
    def level_parms_id(self, level: int) -> bytes:
        if not 0 <= level <= self.top_level:
            raise FormatError(f"level {level} out of range 0..{self.top_level}")
        return self._level_pids[level]

    def level_of(self, pid: bytes, what: str = "ciphertext") -> int:
        try:
            return self._pid_levels[pid]
        except KeyError:
            if pid == self.key_parms_id:
                raise FormatError(f"{what} is at the key level, not a data level") from None
            raise FormatError(f"{what} belongs to another parameter set (unknown parms_id)") from None

    def ring(self, level: int) -> Ring:
        """The ring of a ciphertext at `level` (primes q_0..q_level)."""
        self.level_parms_id(level)
        return ring_for(self.n, self.primes[: level + 1])

    @cached_property
    def scale_ladder(self) -> list[float]:
        """The scale every ciphertext at level l keeps: 2^scale_bits at the top, then
        Delta_{l-1} = Delta_l^2 / q_l, so that a product of two level-l ciphertexts, rescaled, lands on
        the ladder exactly and sums never meet mismatched scales."""
        ladder = [0.0] * (self.top_level + 1)
        ladder[self.top_level] = 2.0**self.params.scale_bits
        for lvl in range(self.top_level, 0, -1):
            ladder[lvl - 1] = ladder[lvl] * ladder[lvl] / self.primes[lvl]
        return ladder

    @cached_property
    def gadget(self) -> list[np.ndarray]:
        """Per digit j: P mod q_j in row j, zero elsewhere (SEAL's key-switching gadget, dnum = L)."""
        rows = len(self.primes)
        out = []
        for j in range(rows - 1):
            g = np.zeros(rows, dtype=np.uint64)
            g[j] = self.special_prime % self.primes[j]
            out.append(g)
        return out

    # --- Pyfhel objects -------------------------------------------------------------------------
    def pyfhel(self) -> Pyfhel:
        """A Pyfhel object with this context and no keys."""
        he = Pyfhel()
        he.from_bytes_context(self._context_bytes)
        return he

    def load_ciphertext(self, he: Pyfhel, raw: bytes, what: str = "ciphertext") -> PyCtxt:
        data = CiphertextData.from_bytes(raw, what)
        self.check_ciphertext(data, what)
        ct = PyCtxt(pyfhel=he)
        ct.from_bytes(bytes(raw), scheme="ckks")
        return ct

    def check_ciphertext(self, data: CiphertextData, what: str = "ciphertext") -> int:
        level = self.level_of(data.parms_id, what)
        if data.data.shape[1:] != (level + 1, self.n) or not data.is_ntt:
            raise FormatError(f"{what}: shape {data.data.shape} does not match level {level} of N = {self.n}")
        if data.size != 2:
            raise FormatError(f"{what}: has {data.size} polynomials; relinearize before this step")
        ring = self.ring(level)
        if not ring.is_reduced(data.data[0]) or not ring.is_reduced(data.data[1]):
            raise FormatError(f"{what}: coefficients not reduced modulo the primes")
        return level

    def ciphertext_data(self, ct: PyCtxt) -> CiphertextData:
        return CiphertextData.from_bytes(ct.to_bytes(compr_mode="none"))

    def decode(self, he: Pyfhel, plain: PlaintextData, length: int | None = None) -> np.ndarray:
        pt = PyPtxt(pyfhel=he)
        pt.from_bytes(plain.to_bytes(), scheme="ckks")
        values = np.asarray(he.decodeFrac(pt))
        return values if length is None else values[:length]

    def public_key_bytes(self, p0: np.ndarray, p1: np.ndarray) -> bytes:
        return CiphertextData(self.key_parms_id, 1.0, np.stack([p0, p1])).to_bytes()

    def kswitch_key(self, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[CiphertextData]:
        return [CiphertextData(self.key_parms_id, 1.0, np.stack([k0, k1])) for k0, k1 in pairs]

    def relin_keys_bytes(self, pairs) -> bytes:
        return KSwitchKeysData(self.key_parms_id, [self.kswitch_key(pairs)]).to_bytes()

    def galois_keys_bytes(self, keys_by_elt: dict[int, list]) -> bytes:
        converted = {elt: self.kswitch_key(pairs) for elt, pairs in keys_by_elt.items()}
        return KSwitchKeysData.galois(self.key_parms_id, self.n, converted).to_bytes()


def _fingerprint(params: Params, primes) -> bytes:
    """Binds every protocol message to this exact parameter set: the primes SEAL chose and every field of
    the set (smudging, masks, noise bounds, upload mode, ...) but the local opt-in to insecure parameters."""
    fields = {k: v for k, v in params.to_json().items() if k != "allow_insecure"}
    desc = struct.pack(f"<Q{len(primes)}Q", params.n, *primes) + json.dumps(fields, sort_keys=True).encode()
    return hashlib.sha256(b"mpclr/params/v2\x00" + desc).digest()[:16]


_CONTEXTS: dict[Params, SealContext] = {}


def _but_upload(params: Params) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in params.to_json().items() if k != "upload"))


def seal_context(params: Params) -> SealContext:
    """Parameter sets are immutable, so their SEAL contexts (prime tables included) are shared; sets that
    differ only in their upload mode share SEAL's context too (SealContext.with_upload)."""
    if params not in _CONTEXTS:
        key = _but_upload(params)
        sibling = next((c for p, c in _CONTEXTS.items() if _but_upload(p) == key), None)
        _CONTEXTS[params] = SealContext(params) if sibling is None else sibling.with_upload(params.upload)
    return _CONTEXTS[params]
