"""The rows a simulation deals to its hospitals, as named numeric columns with one outcome.

A GLM's outcome need not be a two-class label (mpclr.data's Dataset holds only those): here any numeric
column can be it, read with the same checks (file, line and column named) as mpclr.data's loaders.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, ParameterError, renamed_keywords

__all__ = ["Columns", "load_columns", "split_rows"]


@dataclass(frozen=True)
class Columns:
    """Named numeric columns (the outcome among them) of the pooled rows; `source` says where from."""

    names: tuple[str, ...]
    values: np.ndarray
    outcome: str
    source: str = ""

    def __post_init__(self):
        values = np.asarray(self.values, dtype=np.float64)
        names = tuple(str(n) for n in self.names)
        if values.ndim != 2 or values.shape[1] != len(names):
            raise DataError(f"{len(names)} column names for data of shape {values.shape}")
        if len(set(names)) != len(names):
            raise DataError(f"column names must be distinct, got {list(names)}")
        if self.outcome not in names:
            raise ParameterError(f"the outcome {self.outcome!r} is not a column ({', '.join(names)})")
        if not np.isfinite(values).all():
            i, j = np.argwhere(~np.isfinite(values))[0]
            raise DataError(f"row {i + 1}, column {names[j]!r}: {values[i, j]} is not a finite number")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "values", values)

    @property
    def rows(self) -> int:
        return self.values.shape[0]

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.names.index(name)]

    def predictors(self) -> list[str]:
        return [n for n in self.names if n != self.outcome]

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.values, columns=list(self.names))


def _from_dataset(ds, label) -> Columns:
    name = ds.meta.get("label_name") or "y"
    if name in ds.feature_names:
        name = "label"
    names = (*ds.feature_names, name)
    values = np.column_stack([ds.X, ds.y.astype(np.float64)])
    if label in (None, "last", name):
        outcome = name
    elif isinstance(label, str) and label in names:
        outcome = label
    else:
        raise ParameterError(f"parameter label: data set {ds.name!r} has no column {label!r} (columns: "
                             f"{', '.join(names)})")
    return Columns(names, values, outcome, ds.source or ds.name)


def load_columns(data, label="last", *, family: str = "binomial", positive=None) -> Columns:
    """Named columns from a data set name (breast_cancer, edin, lbw, pcs, uis, synthetic:NxD: its label, or
    any of its columns by name as the outcome), a file path (label: last, first, an index or a name) or a
    pandas DataFrame; a binomial outcome is read as mpclr.data reads labels (two classes, `positive`), any
    other as finite numbers."""
    from .. import data as mdata
    from ..data import Dataset
    from ..tabular import read_file, read_frame

    numeric = family != "binomial"
    if isinstance(data, Columns):
        return data
    if isinstance(data, Dataset):
        return _from_dataset(data, label)
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        parts = read_frame(data, label if label is not None else "last", positive, numeric_label=numeric)
        return Columns((*parts["feature_names"], parts["meta"]["label_name"]),
                       np.column_stack([parts["X"], parts["y"]]), parts["meta"]["label_name"], "pandas.DataFrame")
    if not isinstance(data, str | Path):
        raise ParameterError(f"parameter data must be a data set name, a path, a pandas DataFrame or a Dataset, "
                             f"got {type(data).__name__}")
    if not Path(data).exists():
        return _from_dataset(mdata.load(str(data)), label)
    spec = int(label) if isinstance(label, str) and label.lstrip("-").isdigit() else label
    parts = read_file(Path(data), "last" if spec is None else spec, positive=positive, numeric_label=numeric)
    lab = parts["meta"]["label_name"] or f"x{parts['meta']['label_column'] + 1}"
    return Columns((*parts["feature_names"], lab), np.column_stack([parts["X"], parts["y"]]), lab, str(data))


@renamed_keywords(parties="hospitals")
def split_rows(columns: Columns, hospitals: int, how="even", seed: int | None = None) -> list[Columns]:
    """The rows dealt to `hospitals` hospitals: "even" (contiguous blocks, or shuffled with a public seed), or
    by a column (its distinct values say which hospital holds a row; the column is dropped)."""
    if isinstance(hospitals, bool) or not isinstance(hospitals, int | np.integer) or hospitals < 2:
        raise ParameterError(f"parameter hospitals must be an integer >= 2, got {hospitals!r}")
    n = columns.rows
    if how == "even":
        order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
        groups = [np.sort(g) for g in np.array_split(order, hospitals)]
        names, values = columns.names, columns.values
    else:
        if how not in columns.names or how == columns.outcome:
            raise ParameterError(f"parameter split must be 'even' or a column other than the outcome, got {how!r}")
        site = columns.column(how)
        distinct = np.unique(site)
        if distinct.size != hospitals:
            raise DataError(f"split by column {how!r}: it has {distinct.size} distinct values, one per hospital is "
                            f"needed for {hospitals} hospitals")
        groups = [np.flatnonzero(site == v) for v in distinct]
        keep = [j for j, c in enumerate(columns.names) if c != how]
        names, values = tuple(columns.names[j] for j in keep), columns.values[:, keep]
    for k, g in enumerate(groups):
        if g.size == 0:
            raise DataError(f"hospital {k + 1} of {hospitals} gets no rows ({n} rows in all)")
    return [Columns(names, values[g], columns.outcome, columns.source) for g in groups]
