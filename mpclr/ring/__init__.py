"""Low layer: exact RNS/NTT arithmetic compatible with SEAL, and the CSPRNG-backed samplers."""

from .rns import Ring, ring_for
from .sampling import CommonRandomString, SecretRandom

__all__ = ["Ring", "ring_for", "SecretRandom", "CommonRandomString"]
