"""The notebooks' tables are DataFrames built from the records' plain rows, which stay as they were."""

import pytest

from mpclr.notebooks import roles, tables

pd = pytest.importorskip("pandas")


def test_frame_keeps_the_rows_and_their_column_order():
    rows = [{"fold": 1, "AUC": 0.91, "rows": 40}, {"fold": 2, "AUC": 0.87, "rows": 39, "note": "refined"}]
    copy = [dict(r) for r in rows]
    t = tables.frame(rows, index="fold")
    assert isinstance(t, pd.DataFrame) and rows == copy
    assert t.index.name == "fold" and t.index.tolist() == [1, 2] and list(t.columns) == ["AUC", "rows", "note"]
    assert t.loc[2, "AUC"] == 0.87 and t["AUC"].dtype == float and pd.isna(t.loc[1, "note"])
    assert list(tables.frame(rows).columns) == ["fold", "AUC", "rows", "note"]


def test_pairs_and_a_real_table():
    t = tables.pairs({"rows": 569, "folds": 5, "hospitals": ["h-1", "h-2"]}, key="setting")
    assert t.index.name == "setting" and t.loc["folds", "value"] == 5 and t.loc["hospitals", "value"] == ["h-1", "h-2"]
    messages = tables.frame(roles.message_rows(), index="message")
    assert "lr.encrypt" in messages.index and "reveals" in messages.columns
    assert messages.loc["lr.encrypt", "reveals"] == next(m.reveals for m in roles.MESSAGES if m.type == "lr.encrypt")
