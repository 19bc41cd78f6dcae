"""Tables for the notebooks: pandas DataFrames made from the plain rows that the study steps record.

The records stay lists of dicts (they are written to JSON files); a notebook shows them as DataFrames,
which a reader can sort, filter, plot or export. The notebooks set pandas' ``display.max_colwidth`` to
None so that long sentences (what a message reveals) are shown whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["frame", "pairs"]


def frame(rows: Iterable[Mapping], index: str | None = None):
    """One row per dict, the columns in order of first appearance (a key a row lacks is left empty);
    `index` names the column that identifies a row (a fold, a message type, a hospital)."""
    import pandas as pd

    table = pd.DataFrame.from_records(list(rows))
    return table.set_index(index) if index is not None and index in table else table


def pairs(mapping: Mapping, key: str | None = None, value: str = "value"):
    """A mapping as a one-column table indexed by its keys: a study's settings, seconds per phase."""
    import pandas as pd

    return pd.DataFrame({value: list(mapping.values())}, index=pd.Index([str(k) for k in mapping], name=key))
