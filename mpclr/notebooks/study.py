"""A study's design as the notebooks pass it on (study.json), and the federation it runs on."""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, fields

from ..errors import ParameterError
from ..federation import Federation
from ..params import Params, get_preset
from .parameters import check_parameters

__all__ = ["Study", "make_federation", "threshold_supported", "params_for"]


def threshold_supported() -> bool:
    """Whether this mpclr's Federation takes a `threshold` (t-out-of-n)."""
    return "threshold" in inspect.signature(Federation).parameters


def params_for(preset: str | Params = "fast", smudging_bits: float | None = None) -> Params:
    """The preset, with another smudging sigma if asked (Params checks the bound and names the parameter)."""
    base = get_preset(preset)
    if smudging_bits is None or smudging_bits == base.smudging_bits:
        return base
    return base.with_(name=f"{base.name}/smudging={smudging_bits:g}", smudging_bits=smudging_bits)


def make_federation(
    parties: int, threshold: int | None = None, preset: str | Params = "fast", seed: int | None = None, **kwargs
) -> Federation:
    """mpclr.Federation, with `threshold` passed only when set (None = n-out-of-n).

    A threshold equal to `parties` is n-out-of-n too, so it also works where Federation has no
    threshold yet; a smaller one needs t-out-of-n support and says so when it is missing."""
    if threshold is not None:
        if threshold_supported():
            kwargs["threshold"] = threshold
        elif threshold != parties:
            raise ParameterError(
                f"parameter threshold = {threshold} < parties = {parties} needs t-out-of-n decryption, "
                "which this version of mpclr.Federation does not have yet; use threshold = None (n-out-of-n)"
            )
    return Federation(parties=parties, preset=preset, seed=seed, **kwargs)


@dataclass(frozen=True)
class Study:
    """What 00 records and every later step reads back: the study's design, not its data or keys."""

    dataset: str = "breast_cancer"
    parties: int = 3
    threshold: int | None = None
    preset: str = "fast"
    smudging_bits: float | None = None
    seed: int | None = None
    folds: int = 5
    iterations: int = 7
    degree: int = 3

    @classmethod
    def from_parameters(cls, **values) -> Study:
        """Check the values (errors name the parameter) and the parameter set they make."""
        check_parameters(values, accepted=[f.name for f in fields(cls)])
        study = cls(**values)
        study.params()  # the crypto code's own rules, e.g. smudging within the preset's bounds
        return study

    @classmethod
    def from_json(cls, record: dict) -> Study:
        try:
            values = record["parameters"]
        except (KeyError, TypeError):
            raise ParameterError("study.json has no 'parameters': rerun notebooks/00_study_and_roles.ipynb") from None
        known = {f.name for f in fields(cls)}
        return cls.from_parameters(**{k: v for k, v in values.items() if k in known})

    @property
    def key_holders_needed(self) -> int:
        return self.parties if self.threshold is None else self.threshold

    def params(self) -> Params:
        return params_for(self.preset, self.smudging_bits)

    def party_names(self) -> list[str]:
        return [f"hospital-{i + 1}" for i in range(self.parties)]

    def federation(self, **kwargs) -> Federation:
        """A federation for this study (a fresh key ceremony: key shares never leave a process)."""
        return make_federation(
            self.parties, self.threshold, self.params(), self.seed, names=self.party_names(), **kwargs
        )

    def to_json(self) -> dict:
        """What study.json holds: the parameters, the CKKS set they make, the roles, a summary."""
        from .roles import roles_rows

        ckks = self.params().describe()
        return {
            "parameters": asdict(self),
            "ckks": ckks,
            "key_holders": self.party_names(),
            "key_holders_needed": self.key_holders_needed,
            "roles": roles_rows(self.party_names(), self.key_holders_needed),
            "summary": {
                "ring_degree": ckks["n"],
                "log_qp": ckks["log_qp"],
                "depth": ckks["depth"],
                "security": ckks["security"],
                "key_holders_needed": self.key_holders_needed,
            },
        }
