"""The public requests of the statistics protocols, as the coordinator sends them and as a hospital
reads them back (every field checked: a hospital answers only a request it understands whole).

glm.step     one IRLS round: family, outcome column, predictor columns, intercept, the public
             coefficients and the public power-of-two scaling of the packed sums.
table.counts a Table 1: the binary column that splits it (or none), continuous variables, categorical
             variables with every level listed, the smallest cell shown (min_cell) and the clipping
             bound of the secure small-cell test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ProtocolError
from .encoding import Scaling
from .family import FAMILIES, SCALARS

__all__ = ["GLMModel", "TableRequest", "INTERCEPT", "MAX_LEVELS", "MAX_VARIABLES"]

INTERCEPT = "Intercept"  # statsmodels' name for the constant column
MAX_COLUMNS = 126  # p(p + 1) / 2 + p + scalars must fit 8192 slots
MAX_LEVELS = 100
MAX_VARIABLES = 200


def _name(v, what: str) -> str:
    if not isinstance(v, str) or not v or len(v) > 200:
        raise ProtocolError(f"{what} must be a column name (1-200 characters), got {v!r}")
    return v


@dataclass(frozen=True)
class GLMModel:
    """A model: family, outcome column and predictor columns of the hospitals' tables."""

    family: str
    outcome: str
    columns: tuple[str, ...]
    intercept: bool = True

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ProtocolError(f"family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        _name(self.outcome, "the outcome")
        cols = tuple(_name(c, "a predictor") for c in self.columns)
        object.__setattr__(self, "columns", cols)
        if len(set(cols)) != len(cols):
            raise ProtocolError(f"a predictor is listed twice: {sorted({c for c in cols if cols.count(c) > 1})}")
        if self.outcome in cols:
            raise ProtocolError(f"the outcome {self.outcome!r} is also listed as a predictor")
        if not 1 <= self.p <= MAX_COLUMNS:
            raise ProtocolError(f"a model needs 1 to {MAX_COLUMNS} parameters, got {self.p}")

    @property
    def p(self) -> int:
        return len(self.columns) + int(self.intercept)

    @property
    def names(self) -> tuple[str, ...]:
        return ((INTERCEPT,) if self.intercept else ()) + self.columns

    def to_fields(self) -> dict:
        return {"family": self.family, "outcome": self.outcome, "columns": list(self.columns),
                "intercept": bool(self.intercept)}

    @classmethod
    def from_fields(cls, f: dict) -> GLMModel:
        if not isinstance(f.get("columns"), list) or not isinstance(f.get("intercept"), bool):
            raise ProtocolError("glm.step needs a list of predictor columns and a true/false intercept")
        return cls(str(f.get("family")), f.get("outcome"), tuple(f["columns"]), f["intercept"])


def step_fields(model: GLMModel, beta: np.ndarray, scaling: Scaling, label: str) -> dict:
    return {**model.to_fields(), "beta": [float(b) for b in beta], "scaling": scaling.to_json(), "label": label}


def read_step(fields: dict) -> tuple[GLMModel, np.ndarray, Scaling]:
    model = GLMModel.from_fields(fields)
    try:
        beta = np.asarray(fields["beta"], dtype=np.float64)
    except (TypeError, ValueError, KeyError):
        raise ProtocolError("glm.step: the coefficients must be a list of numbers") from None
    if beta.shape != (model.p,) or not np.isfinite(beta).all() or np.abs(beta).max(initial=0.0) > 1e12:
        raise ProtocolError(f"glm.step: {model.p} finite coefficients (|b| <= 1e12) expected, got {beta.shape}")
    return model, beta, Scaling.from_json(fields.get("scaling"), model.p, len(SCALARS))


@dataclass(frozen=True)
class TableRequest:
    """A Table 1. by: a binary (0/1) column splitting it, or None; categorical: (name, levels) with every
    level of the variable listed; min_cell: pooled counts 1..min_cell-1 are suppressed."""

    by: str | None
    continuous: tuple[str, ...]
    categorical: tuple[tuple[str, tuple[float, ...]], ...]
    min_cell: int
    bound: float  # clipping bound of the secure test: min_cell x the number of hospitals

    def __post_init__(self):
        if self.by is not None:
            _name(self.by, "the column the table is split by")
        cont = tuple(_name(c, "a continuous variable") for c in self.continuous)
        cats = []
        for item in self.categorical:
            name, levels = item
            _name(name, "a categorical variable")
            try:
                lv = tuple(float(v) for v in levels)
            except (TypeError, ValueError):
                raise ProtocolError(f"categorical variable {name!r}: levels must be numbers") from None
            if not 1 <= len(lv) <= MAX_LEVELS or len(set(lv)) != len(lv) or not all(map(math.isfinite, lv)):
                raise ProtocolError(f"categorical variable {name!r}: list 1 to {MAX_LEVELS} distinct finite levels")
            cats.append((name, lv))
        object.__setattr__(self, "continuous", cont)
        object.__setattr__(self, "categorical", tuple(cats))
        names = [*cont, *(n for n, _ in cats)]
        if not names or len(names) > MAX_VARIABLES:
            raise ProtocolError(f"a table needs 1 to {MAX_VARIABLES} variables, got {len(names)}")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ProtocolError(f"variables listed twice (or as both continuous and categorical): {twice}")
        if self.by is not None and self.by in names:
            raise ProtocolError(f"{self.by!r} splits the table and cannot also be one of its variables")
        if isinstance(self.min_cell, bool) or not isinstance(self.min_cell, int) or not 1 <= self.min_cell <= 1000:
            raise ProtocolError(f"min_cell must be an integer in 1..1000, got {self.min_cell!r}")
        if not (math.isfinite(self.bound) and self.bound >= self.min_cell):
            raise ProtocolError(f"the clipping bound {self.bound!r} must be at least min_cell")

    @property
    def columns(self) -> int:
        """Table columns: overall, then one per class of `by`."""
        return 1 if self.by is None else 3

    @property
    def cells(self) -> int:
        """Counted cells: every level of every categorical variable in every column, the class sizes, the rows."""
        return len(self.cell_keys())

    @property
    def column_names(self) -> tuple[str, ...]:
        return ("overall",) if self.by is None else ("overall", f"{self.by}=0", f"{self.by}=1")

    def cell_keys(self) -> list[tuple[str, str, float]]:
        """What each counted cell is, in the packed order: (column, variable, level) for every table
        column, variable and level, then ("class size", by, 0.0) and ("class size", by, 1.0) when split,
        then ("rows", "", 0.0), the row count."""
        keys = [(c, n, lv) for c in self.column_names for n, levels in self.categorical for lv in levels]
        if self.by is not None:
            keys += [("class size", self.by, 0.0), ("class size", self.by, 1.0)]
        return keys + [("rows", "", 0.0)]

    def to_fields(self, label: str) -> dict:
        return {"by": self.by, "continuous": list(self.continuous),
                "categorical": [[n, list(lv)] for n, lv in self.categorical], "min_cell": self.min_cell,
                "bound": self.bound, "label": label}

    @classmethod
    def from_fields(cls, f: dict) -> TableRequest:
        try:
            cats = tuple((n, tuple(lv)) for n, lv in f["categorical"])
            return cls(f["by"], tuple(f["continuous"]), cats, f["min_cell"], float(f["bound"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"table.counts: malformed request ({exc})") from None
