"""Named CKKS parameter sets, checked against the 128-bit bounds of the HE security standard.

The HomomorphicEncryption.org standard (Albrecht et al. 2018, table for a uniform ternary secret) bounds
log2(Q*P) for 128-bit classical security by the ring degree. A set above the bound is refused unless the
caller opts in explicitly (`allow_insecure=True`), which warns.
"""

from __future__ import annotations

import argparse
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
    "study_problems",
    "check_study_preset",
    "add_preset_argument",
]

# What every parameter set a study runs on must meet (README, "Smudging and masks"): smudging sigma at
# least 2^20 (OpenFHE's flooding default) and 2^14 above the largest noise it hides, per hospital (against
# the researcher with t - 1 hospitals, one honest hospital's smudging is all that hides it); refresh masks
# of at least 64 bits of statistical hiding per coefficient.
SMUDGING_FLOOR_BITS = 20
SMUDGING_MARGIN_BITS = 14
STUDY_MASK_BITS = 64
UPLOAD_MODES = ("auto", "share-keyed", "public-key")  # Params.upload; "auto" is resolved per study


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
    smudging_bits: float  # log2 sigma of the smudging each hospital adds to a decryption or key switch share
    refresh_smudging_bits: float | None = None  # log2 sigma of each hospital's refresh smudging; None: smudging_bits
    refresh_mask_bits: int = 64  # statistical hiding (bits per coefficient) of a collective refresh's masks
    # log2 of the largest noise (coefficient domain) measured on what a study decrypts / refreshes at this
    # set, with `max_hospitals` hospitals (benchmarks/noise.py); None: not measured, no study runs on it
    noise_bits: float | None = None
    refresh_noise_bits: float | None = None
    max_hospitals: int = 10  # the noise grows with the number of hospitals: smudging is sized for up to this many
    study: bool = True  # False: a teaching or experiments set, refused by every study path (check_study)
    # how hospitals upload: "share-keyed" (seed and one polynomial, switched by the server with the
    # hospital's upload key; mpclr.protocols.upload), "public-key" (two polynomials, no upload keys) or
    # "auto": whichever sends fewer bytes for the study, resolved from its plan before the key ceremony
    # (mpclr.upload_mode); a set that was never resolved uploads with the public key
    upload: str = "auto"
    description: str = ""
    allow_insecure: bool = field(default=False, compare=False)

    def __post_init__(self):
        for name in ("smudging_bits", "refresh_smudging_bits", "noise_bits", "refresh_noise_bits"):
            value = getattr(self, name)
            if value is not None:  # one spelling per value: 28 and 28.0 are the same set (and fingerprint)
                object.__setattr__(self, name, float(value))
        self.validate()

    # ------------------------------------------------------------------------------------------
    @property
    def slots(self) -> int:
        return self.n // 2

    @property
    def refresh_smudging(self) -> float:
        """log2 sigma of each hospital's refresh smudging."""
        return self.smudging_bits if self.refresh_smudging_bits is None else self.refresh_smudging_bits

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
        for what, value in (("smudging_bits", self.smudging_bits), ("refresh_smudging_bits", self.refresh_smudging)):
            if not 0 <= value <= bits[0] - self.scale_bits + 20:
                raise ParameterError(
                    f"parameter {what} out of range: {value} (must be in [0, {bits[0] - self.scale_bits + 20}])"
                )
        if not 0 < self.refresh_mask_bits <= 128:
            raise ParameterError(f"parameter refresh_mask_bits must be in (0, 128], got {self.refresh_mask_bits}")
        if self.upload not in UPLOAD_MODES:
            raise ParameterError(f"parameter upload must be one of {', '.join(map(repr, UPLOAD_MODES))}, "
                                 f"got {self.upload!r}")
        if not 2 <= self.max_hospitals <= 64:
            raise ParameterError(f"parameter max_hospitals must be in [2, 64], got {self.max_hospitals}")
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
            "refresh_smudging_bits": self.refresh_smudging_bits,
            "refresh_mask_bits": self.refresh_mask_bits,
            "noise_bits": self.noise_bits,
            "refresh_noise_bits": self.refresh_noise_bits,
            "max_hospitals": self.max_hospitals,
            "study": self.study,
            "upload": self.upload,
            "description": self.description,
            "allow_insecure": self.allow_insecure,
        }

    @classmethod
    def from_json(cls, d: dict, allow_insecure: bool | None = None) -> Params:
        """The set back; `allow_insecure` overrides the recorded opt-in (a hospital never accepts a
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
            "refresh_smudging_bits": self.refresh_smudging,
            "refresh_mask_bits": self.refresh_mask_bits,
            "noise_bits": self.noise_bits,
            "refresh_noise_bits": self.refresh_noise_bits,
            "max_hospitals": self.max_hospitals,
            "study": self.study,
            "upload": self.upload,
        }


PRESETS: dict[str, Params] = {
    "fast": Params(
        name="fast",
        n=8192,
        coeff_bits=(49, 30, 30, 30, 30, 49),
        scale_bits=30,
        smudging_bits=8,
        study=False,
        description="teaching preset (the workshop): N=8192, scale 2^30, depth 4; 128-bit. Its smudging "
        "sigma 2^8 hides nothing (the noise it should hide is about 2^8 too), and one that would leaves no "
        "precision at scale 2^30: every study path refuses it",
    ),
    "train": Params(
        name="train",
        n=16384,
        coeff_bits=(60, 45, 45, 45, 45, 45, 45, 45, 60),
        scale_bits=45,
        smudging_bits=29,
        refresh_smudging_bits=26,
        noise_bits=15,
        refresh_noise_bits=12,
        description="the study preset: N=16384, scale 2^45, depth 7: one encrypted LR iteration with a "
        "degree-5 sigmoid (depth 5) per collective refresh at level 2, whose modulus holds 64-bit masks; "
        "smudging 2^14 above the largest noise a study decrypts or refreshes; log2(QP) = 435, inside the "
        "128-bit bound of 438",
    ),
    "deep": Params(
        name="deep",
        n=16384,
        coeff_bits=(58, 40, 40, 40, 40, 40, 40, 40, 40, 60),
        scale_bits=40,
        smudging_bits=20,
        study=False,
        description="experiments preset: N=16384, scale 2^40, depth 8; 128-bit; smudging sigma 2^20 as "
        "OpenFHE's default, not sized against this set's noise, so studies refuse it",
    ),
}


def study_problems(params: Params, hospitals: int | None = None) -> list[str]:
    """Why a study must not run on this parameter set (empty: it may), with `hospitals` hospitals."""
    problems = []
    if not params.study:
        problems.append("it is not a study preset")
    for what, sigma, noise in (
        ("decryption", params.smudging_bits, params.noise_bits),
        ("refresh", params.refresh_smudging, params.refresh_noise_bits),
    ):
        if sigma < SMUDGING_FLOOR_BITS:
            problems.append(f"its {what} smudging sigma 2^{sigma:g} is below the floor 2^{SMUDGING_FLOOR_BITS}")
        if noise is None:
            problems.append(f"the noise its {what} smudging has to hide was never measured (benchmarks/noise.py)")
        elif sigma < noise + SMUDGING_MARGIN_BITS:
            problems.append(
                f"its {what} smudging sigma 2^{sigma:g} is only 2^{sigma - noise:g} above the noise it hides "
                f"(2^{noise:g}; 2^{SMUDGING_MARGIN_BITS} needed)"
            )
    if params.refresh_mask_bits < STUDY_MASK_BITS:
        problems.append(f"its refresh masks hide with {params.refresh_mask_bits} bits, below {STUDY_MASK_BITS}")
    if hospitals is not None and hospitals > params.max_hospitals:
        problems.append(
            f"its smudging is sized for up to {params.max_hospitals} hospitals (the noise grows with their "
            f"number), not {hospitals}"
        )
    return problems


def get_preset(preset: str | Params) -> Params:
    if isinstance(preset, Params):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ParameterError(f"parameter preset: unknown preset {preset!r}; choose one of {sorted(PRESETS)}") from None


# --- which presets can run a whole study ------------------------------------------------------------
# A study (`mpclr cv` / `mpclr demo`, the notebooks' study sequence, the deployment's default study)
# trains and then evaluates securely, decrypting and refreshing on the way. A parameter set whose
# smudging or masks do not hide what that reveals (study_problems) is refused before any work, with the
# reason and the preset to use instead; the command line's choices and every check follow the same rule.
STUDY_PRESET = "train"  # what to use instead


def _why_not(params: Params, hospitals: int | None = None) -> str | None:
    problems = study_problems(params, hospitals)
    if not problems:
        return None
    reasons = [p for p in problems if p != "it is not a study preset"]
    if not params.study:
        role = params.description.split(":")[0] if params.description else "not a study preset"
        reasons.insert(0, f"it is {'an' if role[:1].lower() in 'aeiou' else 'a'} {role}")
    return "; ".join(reasons)


NOT_FOR_STUDIES: dict[str, str] = {name: why for name, p in PRESETS.items() if (why := _why_not(p)) is not None}


def study_presets() -> list[str]:
    """The presets that can run a whole study, in PRESETS order."""
    return [name for name in PRESETS if name not in NOT_FOR_STUDIES]


def check_study_preset(preset: str | Params, hospitals: int | None = None) -> Params:
    """The parameter set, if a study may run on it with `hospitals` hospitals (None: any count it is sized
    for); else a ParameterError naming it, why, and what to use instead. A variant of a preset (the
    notebooks' `train/smudging=30`) is judged by its own values."""
    params = get_preset(preset)
    why = _why_not(params, hospitals)
    if why:
        fits = STUDY_PRESET in PRESETS and _why_not(PRESETS[STUDY_PRESET], hospitals) is None
        instead = (
            f"use preset {STUDY_PRESET!r} instead" if fits else "no preset fits: measure one (benchmarks/noise.py)"
        )
        raise ParameterError(f"parameter preset: {params.name!r} cannot run a whole study: {why}; {instead}")
    return params


# ---- the --preset option of every command that runs a whole study (mpclr cv, mpclr glm, mpclr.deploy) ----
def _study_preset(name: str) -> str:
    """argparse type of --preset: a preset that cannot run a whole study is refused with the reason."""
    if name not in PRESETS:
        raise argparse.ArgumentTypeError(f"unknown preset {name!r}; a study runs with {', '.join(study_presets())}")
    try:
        check_study_preset(name)
    except ParameterError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("parameter preset: ")) from None
    return name


def add_preset_argument(p: argparse.ArgumentParser) -> None:
    """--preset of a command that runs a whole study: the presets that can, the others refused with why."""
    p.add_argument(
        "--preset",
        default="train",
        type=_study_preset,
        choices=study_presets(),
        help=f"CKKS parameter set (default train); {', '.join(NOT_FOR_STUDIES)}: refused, they cannot run a "
        "whole study",
    )
