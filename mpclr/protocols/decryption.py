"""Threshold decryption with smudging (Mouchet et al. 2021, "KeySwitch" to the zero key).

The ciphertext (c0, c1) is first switched down to a low level (normally the last prime q_0: smaller
messages, and the noise is what it is). Then, at that level:

    share:    d_i = s_i * c1 + e_i        e_i ~ rounded Gaussian, sigma = 2^smudging_bits (CSPRNG)
    combine:  m   = c0 + sum_i d_i = Delta * x + e_ct + sum_i e_i    -> a SEAL Plaintext, decoded by SEAL

Reveals to whoever combines (the researcher): the decrypted value plus noise. The smudging terms hide
the ciphertext noise e_ct (a function of the secret key) from the researcher; sigma trades that
protection against precision (see the parameter presets). A party sees only c1, which is uniform.
Missing any share leaves s_j * c1 in m: a uniformly random result, i.e. garbage.
"""

from __future__ import annotations

import numpy as np

from ..errors import ProtocolError
from ..ring import SecretRandom
from ..seal.context import SealContext
from ..seal.format import PlaintextData
from .share import SecretKeyShare, Share


def tag(level: int) -> str:
    return f"dec/level={level}"


class ThresholdDecryption:
    def __init__(self, ctx: SealContext, smudging_bits: float | None = None):
        self.ctx = ctx
        self.smudging_bits = ctx.params.smudging_bits if smudging_bits is None else smudging_bits

    @property
    def sigma(self) -> float:
        return 2.0**self.smudging_bits

    def c1_to_bytes(self, c1: np.ndarray, level: int) -> bytes:
        return Share(f"ct/c1/level={level}", c1).to_bytes()

    def c1_from_bytes(self, raw: bytes, level: int) -> np.ndarray:
        return Share.from_bytes(raw, f"ct/c1/level={level}", self.ctx.ring(level)).data

    def gen_share(self, sk: SecretKeyShare, c1: np.ndarray, level: int, rng: SecretRandom) -> Share:
        r = self.ctx.ring(level)
        d = r.mul(c1, sk.at_level(level + 1))
        if self.smudging_bits > 0:
            d = r.add(d, rng.smudging_ntt(r, self.sigma))
        return Share(tag(level), d)

    def share_from_bytes(self, raw: bytes, level: int) -> Share:
        return Share.from_bytes(raw, tag(level), self.ctx.ring(level))

    def aggregate_shares(self, shares: list[Share], level: int) -> Share:
        if any(s.tag != tag(level) for s in shares):
            raise ProtocolError(f"cannot combine decryption shares of another level with level {level}")
        return Share(tag(level), self.ctx.ring(level).sum(s.data for s in shares))

    def decrypt(self, c0: np.ndarray, agg: Share, level: int, scale: float) -> PlaintextData:
        if agg.tag != tag(level):
            raise ProtocolError(f"decryption shares are for {agg.tag}, the ciphertext is at level {level}")
        m = self.ctx.ring(level).add(c0, agg.data)
        return PlaintextData(self.ctx.level_parms_id(level), scale, m)
