"""A study's design as the notebooks pass it on (study.json), its data as the hospitals hold it, and the
federation it runs on."""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass

import numpy as np

from ..data import Dataset, check_folds, load, split
from ..errors import DataError, MpclrError, ParameterError
from ..federation import Federation
from ..params import Params
from ..spec import NOTEBOOK_PARAMETERS, RENAMED, StudySpec, params_for
from .parameters import check_parameters, resolve_dataset

__all__ = ["Study", "HospitalData", "make_federation", "params_for"]  # params_for: mpclr.spec's


def make_federation(
    hospitals: int, threshold: int | None = None, preset: str | Params = "fast", seed: int | None = None, **kwargs
) -> Federation:
    """mpclr.Federation, with `threshold` passed only when set (None = n-out-of-n)."""
    if threshold is not None:
        kwargs["threshold"] = threshold
    return Federation(hospitals=hospitals, preset=preset, seed=seed, **kwargs)


def _inner(exc: Exception) -> str:
    """A loader's message without its own argument's name (the study's parameter is named in front)."""
    text = str(exc)
    for prefix in ("parameter how: ", "parameter spec: ", "parameter label: ", "parameter how "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


@dataclass(frozen=True, eq=False)
class HospitalData:
    """The study's rows as the hospitals hold them: `parts[i]` is hospital i's own rows (with their global
    row numbers in `rows`); `pooled` puts them back together in global row order. Only a simulation has
    `pooled`: the plaintext twin and scikit-learn need it, nobody in a real study does."""

    parts: list[Dataset]
    pooled: Dataset

    @property
    def rows_per_hospital(self) -> list[int]:
        return [p.n_samples for p in self.parts]


@dataclass(frozen=True)
class Study(StudySpec):
    """The study's design as the notebooks record it (study.json) and every later step reads it back:
    an mpclr.spec.StudySpec (its fields and checks), with what the notebooks do with it (the data as the
    hospitals hold it, the federation, study.json). Parameters carry the notebooks' names.

    seed: the public randomness (split, synthetic data; the hospitals draw their folds from their own
    secret randomness). None is replaced by a seed drawn from the OS when the study is made (notebook 00)
    and recorded in study.json: every later step reads the same one back, so the split stays the same."""

    @classmethod
    def from_parameters(cls, **values) -> Study:
        """Check the values (errors name the parameter) and the parameter set they make; a seed of None
        becomes a fresh one."""
        values = check_parameters(values, accepted=list(NOTEBOOK_PARAMETERS))  # parties -> hospitals
        if values.get("seed", 0) is None:
            values["seed"] = secrets.randbelow(2**31)
        return super().from_parameters(**values)

    @classmethod
    def from_json(cls, record: dict) -> Study:
        try:
            values = record["parameters"]
        except (KeyError, TypeError):
            raise ParameterError("study.json has no 'parameters': rerun notebooks/00_study_and_roles.ipynb") from None
        values = {RENAMED.get(k, k): v for k, v in values.items()}  # "parties": a run folder from before the rename
        return cls.from_parameters(**{k: v for k, v in values.items() if k in NOTEBOOK_PARAMETERS})

    @property
    def parties(self) -> int:
        """Deprecated: the older name of `hospitals`."""
        warnings.warn("Study.parties is now Study.hospitals", DeprecationWarning, stacklevel=2)
        return self.hospitals

    def party_names(self) -> list[str]:
        """Deprecated: the older name of `hospital_names`."""
        warnings.warn("Study.party_names() is now Study.hospital_names()", DeprecationWarning, stacklevel=2)
        return self.hospital_names()

    def federation(self, **kwargs) -> Federation:
        """A federation for this study: a fresh key ceremony (notebook 01 saves it for the later steps)."""
        return make_federation(
            self.hospitals, self.threshold, self.params(), self.seed, names=self.hospital_names(), **kwargs
        )

    # ------------------------------------------------------------------------------------------ data
    def load_dataset(self) -> Dataset:
        """The study's whole data set, loaded as mpclr.data.load does (errors name the parameter)."""
        spec = resolve_dataset(self.dataset)
        kwargs = {}
        if spec.startswith("synthetic"):
            kwargs["seed"] = self.seed
        elif spec not in ("breast_cancer", "edin", "lbw", "pcs", "uis"):
            kwargs["label"] = self.label
        try:
            return load(spec, **kwargs)
        except MpclrError as exc:
            which = "label" if "parameter label" in str(exc) else "dataset"
            raise ParameterError(f"parameter {which} (dataset = {self.dataset!r}): {_inner(exc)}") from None

    def hospital_data(self) -> HospitalData:
        """Each hospital's own rows, split as the study says (seeded), and the pooled view of them."""
        dataset = self.load_dataset()
        try:
            parts = split(dataset, self.hospitals, self.split_how(), seed=self.seed)
        except MpclrError as exc:
            raise ParameterError(f"parameter split = {self.split!r}: {_inner(exc)}") from None
        n = dataset.n_samples
        X = np.empty((n, parts[0].n_features))
        y = np.empty(n, dtype=np.int64)
        for part in parts:
            X[part.rows] = part.X
            y[part.rows] = part.y
        pooled = Dataset(
            X,
            y,
            parts[0].feature_names,
            name=dataset.name,
            source=dataset.source,
            classes=dataset.classes,
            meta={k: v for k, v in dataset.meta.items() if k == "split_column"},
        )
        try:
            check_folds(pooled, self.folds)
        except DataError as exc:
            raise ParameterError(f"parameter folds = {self.folds}: {exc}") from None
        return HospitalData(parts, pooled)

    def data_summary(self, data: HospitalData) -> dict:
        """Public facts about the data (no label counts: those are never revealed)."""
        d = data.pooled
        return {
            "name": d.name,
            "source": d.source,
            "rows": d.n_samples,
            "features": d.n_features,
            "feature_names": list(d.feature_names),
            "rows_per_hospital": dict(zip(self.hospital_names(), data.rows_per_hospital)),
        }

    def to_json(self, data: HospitalData | None = None) -> dict:
        """What study.json holds: the parameters, the CKKS set they make, the roles, the data's public
        facts (when given), a summary."""
        from .roles import roles_rows

        ckks = self.params().describe()
        record = {
            "parameters": self.notebook_parameters(),
            "ckks": ckks,
            "key_holders": self.hospital_names(),
            "key_holders_needed": self.key_holders_needed,
            "roles": roles_rows(self.hospital_names(), self.key_holders_needed),
            "summary": {
                "ring_degree": ckks["n"],
                "log_qp": ckks["log_qp"],
                "depth": ckks["depth"],
                "security": ckks["security"],
                "key_holders_needed": self.key_holders_needed,
            },
        }
        if data is not None:
            record["data"] = self.data_summary(data)
            record["summary"].update({"rows": data.pooled.n_samples, "features": data.pooled.n_features})
        return record
