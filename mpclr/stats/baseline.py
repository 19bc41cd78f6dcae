"""A study's Table 1 (mpclr.stats.table1) of the rows its hospitals hold for the cross-validation: the data
dictionary (which columns are categorical), each hospital's rows as named columns, the table's part of the
study manifest (agreed with the keys, beside the cross-validation's), and the table itself by the label.
`mpclr cv` (mpclr.pipeline's table_one stage) and notebook 02b (through mpclr.stats.report) both use it.

The parts are mpclr.data Datasets, one per hospital, as mpclr.data.split makes them: the codebook is read
from their rows together (a simulation has them; a real study writes its data dictionary down beforehand,
from the protocol, not from the data).
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from ..roles.policy import Manifest
from .columns import Columns
from .hospital import give_data, settings_of
from .manifest import table_manifest
from .table1 import LABEL, TableOne, table_one

__all__ = ["label_name", "hospital_columns", "codebook", "table_part", "agreed", "study_table", "MAX_LEVELS"]

MAX_LEVELS = 10  # a column with at most this many distinct values is categorical in a simulation's codebook


def label_name(part) -> str:
    """The label's column name as the hospitals hold it (the data set's, or "y"; "label" if a feature has it)."""
    name = part.meta.get("label_name") or "y"
    return name if name not in part.feature_names else "label"


def hospital_columns(parts) -> list[Columns]:
    """Each hospital's rows as named columns: its features and the label."""
    return [Columns((*p.feature_names, label_name(p)), np.column_stack([p.X, p.y]), label_name(p), p.source)
            for p in parts]


def codebook(parts, max_levels: int = MAX_LEVELS) -> tuple[list[str], dict]:
    """(continuous, categorical {name: every level}) of the hospitals' features: a column with at most
    `max_levels` distinct values over all rows is categorical."""
    X = np.vstack([p.X for p in parts])
    continuous, categorical = [], {}
    for j, name in enumerate(parts[0].feature_names):
        values = np.unique(X[:, j])
        if values.size <= max_levels:
            categorical[name] = values.tolist()
        else:
            continuous.append(name)
    return continuous, categorical


def table_part(params, hospitals, threshold: int, parts, max_levels: int = MAX_LEVELS) -> Manifest:
    """The Table 1's part of a study manifest (no key ceremony: it merges into the study's), from the
    codebook and the hospitals' own min_cell (`hospitals`: their nodes, each answering for its settings)."""
    continuous, categorical = codebook(parts, max_levels)
    return table_manifest(
        params, len(hospitals), max(settings_of(h).min_cell for h in hospitals), threshold=threshold,
        levels=sum(len(v) for v in categorical.values()), continuous=len(continuous), split=True, settings=1,
        ceremony=False, by=label_name(parts[0]), variables=[*continuous, *categorical])


def agreed(manifest) -> bool:
    """Whether a federation's manifest lets the hospitals answer a Table 1."""
    return manifest is not None and (manifest.exploration or manifest.budget_for("table.counts", LABEL) is not None)


def study_table(fed, parts, max_levels: int = MAX_LEVELS) -> TableOne:
    """Table 1 of the hospitals' rows by the label, overall and per class: each hospital is given its own
    part as named columns, then answers for it (mpclr.stats.table1.table_one)."""
    if len(parts) != len(fed.hospitals):
        raise ParameterError(f"{len(parts)} parts of the rows for {len(fed.hospitals)} hospitals")
    for party, cols in zip(fed.hospitals, hospital_columns(parts)):
        give_data(party, cols.values, cols.names)
    continuous, categorical = codebook(parts, max_levels)
    return table_one(fed, by=label_name(parts[0]), continuous=continuous, categorical=categorical)
