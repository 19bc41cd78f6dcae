"""Named CKKS parameter sets, checked against the 128-bit bounds of the HE security standard.

The HomomorphicEncryption.org standard (Albrecht et al. 2018, table for a uniform ternary secret) bounds
log2(Q*P) for 128-bit classical security by the ring degree. A set above the bound is refused unless the
caller opts in explicitly (`allow_insecure=True`), which warns.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

from .errors import InsecureParametersWarning, ParameterError

# max log2(Q*P) for 128-bit security, ternary secret (HE standard, 2018)
HE_STANDARD_128 = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}

__all__ = [
    "Params",
    "PRESETS",
    "get_preset",
    "HE_STANDARD_128",
    "NOT_FOR_STUDIES",
    "study_presets",
    "check_study_preset",
]


@dataclass(frozen=True)
class Params:
    """A CKKS parameter set for the multiparty protocols.

    coeff_bits lists the bit sizes of SEAL's coefficient moduli in SEAL's order: q_0 (the last prime left
    after all rescalings, where decryption happens), the rescaling primes, then the special prime P used
    only by key switching. SEAL picks the actual primes (the largest below 2^bits that are 1 mod 2N).
    """

    name: str
    n: int
    coeff_bits: tuple[int, ...]
    scale_bits: int
    smudging_bits: float  # log2 of the smudging noise sigma added by each party in a threshold decryption
    refresh_mask_bits: int = 40  # statistical security (bits) of the masks of a collective refresh
    description: str = ""
    allow_insecure: bool = field(default=False, compare=False)

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------------------------------------
    @property
    def slots(self) -> int:
        return self.n // 2

    @property
    def depth(self) -> int:
        """Number of rescalings available to a fresh ciphertext."""
        return len(self.coeff_bits) - 2

    @property
    def log_qp(self) -> int:
        return sum(self.coeff_bits)

    @property
    def max_log_qp_128(self) -> int | None:
        return HE_STANDARD_128.get(self.n)

    @property
    def is_secure(self) -> bool:
        bound = self.max_log_qp_128
        return bound is not None and self.log_qp <= bound

    def validate(self) -> None:
        n = self.n
        if not isinstance(n, int) or n < 1024 or n > 32768 or n & (n - 1):
            raise ParameterError(f"parameter n (ring degree) must be a power of two in [1024, 32768], got {n}")
        bits = self.coeff_bits
        if len(bits) < 2:
            raise ParameterError(
                f"parameter coeff_bits needs at least a decryption prime and a special prime, got {bits}"
            )
        for b in bits:
            if not isinstance(b, int) or not 20 <= b <= 60:
                raise ParameterError(f"parameter coeff_bits: each prime must have 20..60 bits, got {b}")
        if not 10 <= self.scale_bits < bits[0]:
            raise ParameterError(
                f"parameter scale_bits must be in [10, {bits[0]}) (below the decryption prime q_0), "
                f"got {self.scale_bits}"
            )
        for b in bits[1:-1]:
            if abs(b - self.scale_bits) > 10:
                raise ParameterError(
                    f"parameter coeff_bits: rescaling prime of {b} bits is too far from scale 2^{self.scale_bits}"
                )
        if bits[-1] < max(bits[:-1]) - 2:
            raise ParameterError(
                f"parameter coeff_bits: the special prime ({bits[-1]} bits) must be about as large as the "
                f"largest other prime ({max(bits[:-1])} bits), or key switching adds too much noise"
            )
        if not 0 <= self.smudging_bits <= bits[0] - self.scale_bits + 20:
            raise ParameterError(f"parameter smudging_bits out of range: {self.smudging_bits}")
        if not 0 < self.refresh_mask_bits <= 128:
            raise ParameterError(f"parameter refresh_mask_bits must be in (0, 128], got {self.refresh_mask_bits}")
        if not self.is_secure:
            bound = self.max_log_qp_128
            msg = (
                f"parameter set {self.name!r}: log2(QP) = {self.log_qp} exceeds the 128-bit bound {bound} for "
                f"N = {n} (HE standard)"
            )
            if not self.allow_insecure:
                raise ParameterError(msg + "; pass allow_insecure=True to use it anyway (never for real data)")
            warnings.warn(msg + ": INSECURE, for experiments only", InsecureParametersWarning, stacklevel=3)

    def with_(self, **changes) -> Params:
        return replace(self, **changes)

    def to_json(self) -> dict:
        """The fields that rebuild this set (`Params.from_json`), for keystores and the deployment."""
        return {
            "name": self.name,
            "n": self.n,
            "coeff_bits": list(self.coeff_bits),
            "scale_bits": self.scale_bits,
            "smudging_bits": self.smudging_bits,
            "refresh_mask_bits": self.refresh_mask_bits,
            "description": self.description,
            "allow_insecure": self.allow_insecure,
        }

    @classmethod
    def from_json(cls, d: dict, allow_insecure: bool | None = None) -> Params:
        """The set back; `allow_insecure` overrides the recorded opt-in (a site never accepts a
        coordinator's opt-in: it passes False)."""
        fields = {**d, "coeff_bits": tuple(d["coeff_bits"])}
        if allow_insecure is not None:
            fields["allow_insecure"] = allow_insecure
        return cls(**fields)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "n": self.n,
            "slots": self.slots,
            "coeff_bits": list(self.coeff_bits),
            "log_qp": self.log_qp,
            "max_log_qp_128": self.max_log_qp_128,
            "security": "128-bit (HE standard)" if self.is_secure else "INSECURE",
            "scale_bits": self.scale_bits,
            "depth": self.depth,
            "smudging_bits": self.smudging_bits,
            "refresh_mask_bits": self.refresh_mask_bits,
        }


PRESETS: dict[str, Params] = {
    "fast": Params(
        name="fast",
        n=8192,
        coeff_bits=(49, 30, 30, 30, 30, 49),
        scale_bits=30,
        smudging_bits=8,
        description="N=8192, scale 2^30, depth 4 (one training iteration per refresh); 128-bit",
    ),
    "train": Params(
        name="train",
        n=16384,
        coeff_bits=(60, 50, 50, 50, 50, 50, 50, 60),
        scale_bits=50,
        smudging_bits=20,
        description="N=16384, scale 2^50, depth 6: one encrypted LR iteration with a degree-5 sigmoid (depth 5) "
        "per collective refresh at level 1; smudging sigma 2^20 is about 2^10 above the noise it hides and "
        "costs about 1e-6 in precision at this scale; log2(QP) = 420, inside the 128-bit bound of 438",
    ),
    "deep": Params(
        name="deep",
        n=16384,
        coeff_bits=(58, 40, 40, 40, 40, 40, 40, 40, 40, 60),
        scale_bits=40,
        smudging_bits=20,
        description="N=16384, scale 2^40, depth 8; smudging sigma 2^20 as OpenFHE's default; 128-bit",
    ),
}


def get_preset(preset: str | Params) -> Params:
    if isinstance(preset, Params):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ParameterError(f"parameter preset: unknown preset {preset!r}; choose one of {sorted(PRESETS)}") from None


# --- which presets can run a whole study ------------------------------------------------------------
# A study (`mpclr cv` / `mpclr demo`, the notebooks' study sequence, the deployment's default study)
# trains and then evaluates securely. A preset that cannot do all of it is refused before any work, with
# the reason and the preset to use instead. One table: a preset rebuilt so that it can run a study is
# allowed again by deleting its line (the command line's choices and every check follow it).
NOT_FOR_STUDIES: dict[str, str] = {
    "fast": "its scale 2^30 is too coarse for the secure evaluation (no comparison polynomial reaches error "
    "1e-6 at the evaluation's resolution) and its smudging (sigma 2^8) hides little of a hospital's key share "
    "in a decryption share; it is for the workshop's demonstrations only",
    "deep": "the secure evaluation does not fit its ladder of 40-bit levels (it stops with the internal error "
    "'cmul from level 2 to 3')",
}
STUDY_PRESET = "train"  # what to use instead


def study_presets() -> list[str]:
    """The presets that can run a whole study, in PRESETS order."""
    return [name for name in PRESETS if name not in NOT_FOR_STUDIES]


def check_study_preset(preset: str | Params) -> Params:
    """The preset, if it can run a whole study; else a ParameterError naming it, why, and what to use.
    A variant of a preset (`train/smudging=12`, made by the notebooks) is judged by its base preset."""
    params = get_preset(preset)
    base = params.name.split("/", 1)[0]
    why = NOT_FOR_STUDIES.get(base)
    if why:
        raise ParameterError(
            f"parameter preset: {base!r} cannot run a whole study: {why}; use preset {STUDY_PRESET!r} instead"
        )
    return params
