"""The secure Table 1 against pandas on the same (pooled) rows; suppression decided under encryption (the
researcher never decrypts a small count); the hospitals' refusals of requests that would let a suppressed
cell be derived."""

from __future__ import annotations

import numpy as np
import pytest

import mpclr
from mpclr.errors import ProtocolError
from mpclr.stats import configure, deal
from mpclr.stats.columns import Columns, load_columns, split_rows
from mpclr.stats.hospital import Settings
from mpclr.stats.manifest import table_manifest
from mpclr.stats.table1 import table_one

LEVELS = {"x3": [0, 1], "x4": [0, 1], "x5": [0, 1], "x6": [0, 1, 2, 3], "x7": [0, 1], "x8": [0, 1],
          "x9": [0, 1, 2, 3, 4, 6]}


@pytest.fixture(scope="module")
def fed():
    """One federation for many tables (protocol tests): its hospitals answer without a budget
    ("exploration"); the manifest a table is held to is tested below."""
    f = mpclr.Federation(hospitals=3, preset="train", manifest="exploration")
    yield f
    f.close()


@pytest.fixture(scope="module")
def lbw():
    return load_columns("lbw")


@pytest.fixture
def decrypted(fed):
    """Everything the researcher decrypts during a test, as it decrypted it."""
    got = []
    original = fed.decrypt_many

    def spy(handles, by=None, *, labels=None, level=0):
        out = original(handles, by=by, labels=labels, level=level)
        got.extend(zip(labels, out))
        return out

    fed.decrypt_many = spy
    yield got
    del fed.decrypt_many


def test_lbw_table_matches_pandas_and_suppresses_small_cells(fed, lbw, decrypted):
    deal(fed, split_rows(lbw, 3))
    t = table_one(fed, by="y", continuous=["x1", "x2"], categorical=LEVELS)
    df = lbw.to_frame()
    assert t.shown == ["overall", "y=0", "y=1"] and t.min_cell == 5
    assert t.sizes == {"overall": 189, "y=0": 59, "y=1": 130}
    groups = {"overall": df, "y=0": df[df.y == 0], "y=1": df[df.y == 1]}
    for col, part in groups.items():
        for v in ("x1", "x2"):
            n, mean, sd = t.stats[(col, v)]
            assert n == len(part)
            assert mean == pytest.approx(part[v].mean(), rel=1e-9) and sd == pytest.approx(part[v].std(), rel=1e-9)
    small = set()
    for col, part in groups.items():
        for v, levels in LEVELS.items():
            for lv in levels:
                n = int((part[v] == lv).sum())
                if 1 <= n < 5:
                    small.add((col, v, float(lv)))
    assert t.small == small and {k[1] for k in small} == {"x6", "x9"}
    assert t.suppressed == ["x6", "x9"]
    for col, part in groups.items():
        for v, levels in LEVELS.items():
            for lv in levels:
                key, n = (col, v, float(lv)), int((part[v] == lv).sum())
                if v in ("x6", "x9"):
                    assert key not in t.counts
                    assert t.cell(col, v, lv) == ("<5" if key in small else "-")
                else:
                    assert t.counts[key] == n
                    assert t.cell(col, v, lv) == f"{n} ({100 * n / len(part):.1f}%)"
    # suppression happened under encryption: the released counts the researcher decrypted hold zeros (CKKS
    # noise) where a small or complementary-suppressed cell is, never its value
    keys = t.request.cell_keys()
    released = dict(decrypted)["table1: released counts"] / 2.0**40
    for i, key in enumerate(keys):
        if key[1] in ("x6", "x9"):
            assert abs(released[i]) < 1e-6, key
    assert [label for label, _ in decrypted] == ["table1: sizes below min_cell", "table1: cells below min_cell",
                                                 "table1: released counts", "table1: sums of 2 continuous variables"]
    frame = t.to_frame()
    assert list(frame.columns) == ["Overall (n=189)", "y=0 (n=59)", "y=1 (n=130)"]
    one = groups["y=1"].x1
    assert frame.loc[("x1", "mean (SD)"), "y=1 (n=130)"] == f"{one.mean():.2f} ({one.std():.2f})"
    assert frame.loc[("x9", "6"), "Overall (n=189)"] == "<5"
    assert "&lt;5" in t.to_html() and r"$<$5" in t.to_latex() and r"\toprule" in t.to_latex()
    num = t.numbers()
    assert np.isnan(num.loc[("x6", 2.0), "y=0"]) and num.loc[("x3", 1.0), "y=1"] == 73


def test_min_cell_is_the_largest_of_the_hospitals_own(fed, lbw):
    deal(fed, split_rows(lbw, 3))
    configure(fed.hospitals[2], min_cell=10)
    try:
        with pytest.raises(ProtocolError, match="hospital-3 suppresses pooled cells below 10: a table with min_cell 5"):
            table_one(fed, by="y", categorical={"x7": [0, 1]}, min_cell=5)
        t = table_one(fed, by="y", categorical={"x7": [0, 1]})
        assert t.min_cell == 10
        assert t.small == {("y=0", "x7", 1.0), ("y=1", "x7", 1.0)}  # 7 and 5 rows: below 10 now, shown at 5
        assert t.counts == {} and t.cell("overall", "x7", 1) == "-"  # 12 rows, hidden beside its small cells
    finally:
        configure(fed.hospitals[2], Settings())


def test_a_hospital_refuses_requests_that_allow_differencing(fed, lbw):
    deal(fed, split_rows(lbw, 3))
    with pytest.raises(ProtocolError, match="x9' takes values outside the listed levels here; a level left out "
                                            "would be derivable as the total minus the listed cells"):
        table_one(fed, by="y", categorical={"x9": [0, 1, 2, 3, 4]})  # the class sizes and all levels but 6
    with pytest.raises(ProtocolError, match="'x5' takes 2 distinct values here; its count, mean and SD per class"):
        table_one(fed, by="y", continuous=["x5"])
    with pytest.raises(ProtocolError, match="a table is split by a 0/1 column; 'x6' takes other values"):
        table_one(fed, by="x6", continuous=["x1"])
    # the same column as categorical, then as continuous: its mean and SD beside the first table's cells
    age = lbw.column("x1")
    deal(fed, split_rows(Columns(("mothers_age", "y"), np.column_stack([age, lbw.column("y")]), "y"), 3))
    table_one(fed, categorical={"mothers_age": sorted(set(age.tolist()))})
    with pytest.raises(ProtocolError, match="'mothers_age' was tabulated as categorical in this session; as "
                                            "continuous as well, the two tables together could reveal cells"):
        table_one(fed, by="y", continuous=["mothers_age"])


def test_a_small_class_hides_the_class_columns(fed):
    rng = np.random.default_rng(4)
    n = 120
    rare = np.zeros(n)
    rare[[5, 50, 90]] = 1.0  # 3 rows in class 1
    age = rng.normal(60, 8, n)
    cols = Columns(("age", "sex", "rare"), np.column_stack([age, (rng.random(n) < 0.5) * 1.0, rare]), "rare")
    deal(fed, split_rows(cols, 3))
    t = table_one(fed, by="rare", continuous=["age"], categorical={"sex": [0, 1]})
    assert t.shown == ["overall"] and any("hidden" in note for note in t.notes())
    assert t.stats[("overall", "age")][1] == pytest.approx(age.mean(), rel=1e-9)
    assert t.small == set() and t.counts[("overall", "sex", 1.0)] == int(cols.column("sex").sum())


def test_a_table_uses_exactly_its_manifest(lbw):
    """The hospitals' ledgers after a Table 1 equal its manifest's budgets (rounds, ciphertexts, values: its
    refreshes carry the table's label); a second table is beyond it. (A deployed table: tests/deploy.)"""
    manifest = table_manifest("train", 3, 5, levels=6, continuous=1)
    cats = {"x3": [0, 1], "x6": [0, 1, 2, 3]}
    with mpclr.Federation(hospitals=3, preset="train", manifest=manifest) as fed:
        deal(fed, split_rows(lbw, 3))
        t = table_one(fed, by="y", continuous=["x1"], categorical=cats)
        assert t.suppressed == ["x6"]  # the protocol ran through: both cell tests, then the release
        exact = {b.key: [b.rounds, b.ciphertexts, b.values] for b in manifest.budgets if b.label == "table1"}
        assert set(exact) == {f"{step} table1" for step in ("stats.settings", "table.counts", "refresh.share",
                                                               "decrypt.share")}
        for party in fed.hospitals:
            assert {k: v for k, v in party.policy.used.items() if k.endswith("table1")} == exact
        with pytest.raises(ProtocolError, match=r"hospital-1 refuses stats.settings 'table1: settings' from server: "
                                                r"beyond the study manifest 'Table 1'"):
            table_one(fed, by="y", continuous=["x1"], categorical=cats)


def test_a_test_finer_than_the_refresh_noise_is_refused_up_front(fed):
    """The clipped counts' domain grows with hospitals x min_cell, the refresh noise with the key holders."""
    from types import SimpleNamespace

    from mpclr.errors import ParameterError
    from mpclr.stats.requests import TableRequest
    from mpclr.stats.table1 import _check_feasible

    many = SimpleNamespace(ctx=fed.ctx, participants=lambda by: [f"h{i}" for i in range(64)])
    req = TableRequest("y", (), (("x3", (0.0, 1.0)),), 10, 640.0)
    with pytest.raises(ParameterError, match="over 64 hospitals with min_cell 10: .* finer than the refresh noise "
                                             "of 64 key holders allows"):
        _check_feasible(many, req, None)
    few = SimpleNamespace(ctx=fed.ctx, participants=lambda by: ["h1", "h2", "h3"])
    _check_feasible(few, TableRequest("y", (), (("x3", (0.0, 1.0)),), 5, 15.0), None)
