"""t-out-of-n re-sharing of the additive key shares (Mouchet et al., ePrint 2022/780).

After the key ceremony (all n parties, additive shares s = sum_i s_i), each party i Shamir-shares its
s_i over R_QP, coefficient-wise per prime:

    f_i(X) = s_i + a_i1 X + ... + a_i,t-1 X^(t-1)      a_ij uniform (CSPRNG), kept by party i only
    share for party k:   f_i(x_k)   (sent in a sealed box only party k can open; the server relays)
    party k's threshold share:   sigma_k = sum_i f_i(x_k)

For any set T of at least t parties, s = sum_{k in T} lambda_k^T sigma_k with the Lagrange
coefficients at 0 (mod each prime), so party k uses lambda_k^T sigma_k wherever an additive share is
expected (decryption, refresh, key switching, rotation keys). No share and no s_i is ever
reconstructed. Points x_k = 1..n in roster order: distinct and invertible modulo every prime.

Reveals: nothing. Each f_i(x_k) is uniformly random to everyone but k; fewer than t values of f_i are
independent of s_i.
"""

from __future__ import annotations

import numpy as np

from ..errors import ProtocolError
from ..ring import Ring, SecretRandom
from .share import SecretKeyShare, Share

TAG = "shamir"


def points(key_holders) -> dict[str, int]:
    """The public evaluation point of each key holder."""
    return {name: k + 1 for k, name in enumerate(key_holders)}


class ThresholdSharing:
    def __init__(self, ring: Ring, threshold: int, n: int):
        if not isinstance(threshold, int) or isinstance(threshold, bool) or not 1 <= threshold <= n:
            raise ProtocolError(f"threshold must be an integer in [1, {n}], got {threshold!r}")
        self.ring = ring
        self.threshold = threshold
        self.n = n

    def gen_polynomial(self, sk: SecretKeyShare, rng: SecretRandom) -> list[np.ndarray]:
        """[s_i, a_1, ..., a_{t-1}] in NTT form (Shamir sharing is linear, so NTT form works as well)."""
        return [sk.full(), *[rng.uniform_poly(self.ring) for _ in range(self.threshold - 1)]]

    def gen_share(self, poly: list[np.ndarray], x: int) -> Share:
        """f(x) by Horner's rule with the public scalar x."""
        r = self.ring
        xs = [x % q for q in r.moduli]
        acc = poly[-1].copy()
        for coeff in reversed(poly[:-1]):
            acc = r.add(r.mul_scalar_rows(acc, xs), coeff)
        return Share(TAG, acc)

    def share_from_bytes(self, raw: bytes) -> Share:
        return Share.from_bytes(raw, TAG, self.ring)

    def aggregate_shares(self, shares: list[Share]) -> np.ndarray:
        if len(shares) != self.n:
            raise ProtocolError(
                f"a threshold share needs one Shamir share from each of the {self.n} parties, " f"got {len(shares)}"
            )
        return self.ring.sum(s.data for s in shares)

    def lagrange(self, x_self: int, xs) -> list[int]:
        """lambda for x_self within the set xs, per prime: prod_{j != self} x_j / (x_j - x_self)."""
        xs = [int(x) for x in xs]
        if x_self not in xs:
            raise ProtocolError(f"point {x_self} is not in the participating set {xs}")
        if len(set(xs)) != len(xs):
            raise ProtocolError(f"participating set has repeated points {xs}")
        if len(xs) < self.threshold:
            raise ProtocolError(f"{len(xs)} participants are fewer than the threshold {self.threshold}")
        out = []
        for q in self.ring.moduli:
            num, den = 1, 1
            for x in xs:
                if x != x_self:
                    num = num * x % q
                    den = den * (x - x_self) % q
            out.append(num * pow(den, -1, q) % q)
        return out

    def additive_share(self, sigma: SecretKeyShare, x_self: int, xs) -> SecretKeyShare:
        """lambda_self^T * sigma_self: this party's additive share of s for the participating set T."""
        return SecretKeyShare(self.ring, self.ring.mul_scalar_rows(sigma.full(), self.lagrange(x_self, xs)))
