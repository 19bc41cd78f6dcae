"""A secure "Table 1": baseline characteristics overall and per outcome class, from encrypted per-hospital
counts and sums; small cells suppressed under encryption, by rules the hospitals enforce.

Protocol (the coordinator's side; each hospital's is mpclr.stats.hospital.on_table_counts):
1. min_cell: the largest of the hospitals' own settings (`stats.settings`), unless given (a hospital
   refuses a smaller one).
2. table.counts: each hospital checks the request's structure (every level of a categorical variable
   listed, continuous variables with more than three values, no variable switching kind) and encrypts its
   counts clipped at min_cell, its counts, and its continuous variables' sums and sums of squares per
   table column. The server adds each over hospitals.
3. Under encryption, s = [1 <= pooled count < min_cell] per cell (mpclr.stats.suppress).
4. The researcher decrypts s of the class sizes only; a class below min_cell hides the class columns
   (else the overall column minus one class would give the other).
5. The researcher decrypts s of the cells of the columns shown. A categorical variable with a small cell
   in a shown column is suppressed whole (its small cells shown as "<m", the others as "-": one cell
   hidden among known ones would follow by difference from the column's total).
6. The server multiplies counts and sums by the public 0/1 mask of what is shown; the researcher decrypts
   those (hidden slots are zero) and computes percentages, means and standard deviations (ddof 1).

What the researcher learns: the released counts, class sizes, means and standard deviations; which cells
of the shown columns are small (1..min_cell-1: that is what "<5" says) and whether a class is small; the
total row count. Never a small count's value, nor the zero or non-zero pattern of hidden cells. A
coordinator that deviates from the protocol (decrypts the raw pooled counts instead of the masked ones)
is bounded only by the study manifest (mpclr.stats.manifest: the table's decryptions and values, which
the raw counts fit as well), as for every aggregate (README, "Residual risks").
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..errors import ProtocolError
from .encoding import SHIFT
from .requests import TableRequest
from .suppress import composite, small_cell_flags

__all__ = ["table_one", "TableOne", "LABEL"]

LABEL = "table1"
_MISSING = "-"


def _sum(server, items, what: str, length: int):
    """items: (hospital, its ciphertext) pairs."""
    handles = [server.import_ciphertext(server.uploads.load(raw, what, p), length) for p, raw in items]
    total, made = handles[0], list(handles)
    for h in handles[1:]:
        total = server.add(total, h)
        made.append(total)
    server.forget(*[h for h in made if h.id != total.id])
    return total


def _decrypt(fed, handles, labels, by, level):
    return fed.decrypt_many(handles, by=by, labels=labels, level=level)


def _rounded(values: np.ndarray, what: str) -> np.ndarray:
    r = np.rint(values.real)
    if np.abs(values.real - r).max(initial=0.0) > 0.05:
        raise ProtocolError(f"{what} decrypted to non-integers (max distance {np.abs(values.real - r).max():.3g})")
    return r.astype(np.int64)


def table_one(fed, *, by: str | None = None, continuous=(), categorical=None, min_cell: int | None = None,
              decrypt_by=None) -> TableOne:
    """Table 1 of the hospitals' rows: `continuous` variables (count, mean, SD), `categorical` ones ({name:
    levels}, every level listed: counts and percentages), overall and per class of the 0/1 column `by`."""
    t0 = time.perf_counter()
    s = fed.server
    names = [p.name for p in fed.hospitals]
    revealed0 = len(fed.researcher.revealed)
    if min_cell is None:
        settings = s.call_many("stats.settings", {p: {"label": f"{LABEL}: settings"} for p in names})
        min_cell = max(int(r["min_cell"]) for r in settings.values())
    cats = tuple((n, tuple(lv)) for n, lv in (categorical.items() if isinstance(categorical, dict)
                                                else (categorical or ())))
    req = TableRequest(by, tuple(continuous), cats, int(min_cell), float(min_cell * len(names)))
    K = req.cells
    if 2 * K > s.ctx.params.slots:
        raise ProtocolError(f"the table has {K} cells; at most {s.ctx.params.slots // 2} fit the secure test")
    _check_feasible(s, req, decrypt_by)
    replies = s.call_many("table.counts", {p: req.to_fields(LABEL) for p in names})
    counts = _sum(s, [(p, replies[p]["counts"]) for p in names], "table.counts", K)
    V, L = len(req.continuous), 2 * req.columns  # the sums: L per variable, packed variable by variable
    if any(len(replies[p]["sums"]) != (1 if V else 0) for p in names):
        raise ProtocolError(f"table.counts: each hospital sends its {V} variables' sums in {1 if V else 0} ciphertext")
    sums = [_sum(s, [(p, replies[p]["sums"][0]) for p in names], "table.counts", V * L)] if V else []
    flags = _sum(s, [(p, replies[p]["flags"]) for p in names], "table.counts", 2 * K)
    sflags, cost = small_cell_flags(fed, flags, K, req.min_cell, req.bound, decrypt_by, LABEL)
    keys = req.cell_keys()
    small = np.zeros(K, dtype=bool)
    # the sizes first: too few rows stops the table; a small class hides the class columns (else the overall
    # column minus one class would give the other away)
    sizes = [i for i, (col, _, _) in enumerate(keys) if col in ("class size", "rows")]
    small[sizes] = _flags(fed, sflags, sizes, K, f"{LABEL}: sizes below min_cell", decrypt_by)
    if small[-1]:
        s.forget(counts, *sums, flags, sflags)
        raise ProtocolError(f"the hospitals hold fewer than min_cell = {req.min_cell} rows together: no table")
    shown = list(req.column_names) if not small[sizes[:-1]].any() else ["overall"]
    cells = [i for i, (col, _, _) in enumerate(keys) if col in shown]
    if cells:
        small[cells] = _flags(fed, sflags, cells, K, f"{LABEL}: cells below min_cell", decrypt_by)
    s.forget(flags, sflags)
    suppressed = {n for i, (col, n, _) in enumerate(keys) if col in shown and small[i]}
    release = np.array([(col in shown and n not in suppressed) or (col == "class size" and len(shown) > 1)
                        or col == "rows" for col, n, _ in keys], dtype=np.float64)
    col_mask = np.tile(np.array([c in shown for c in req.column_names] * 2, dtype=np.float64), V)
    handles = [s.multiply_plain(counts, release)] + [s.multiply_plain(h, col_mask) for h in sums]
    labels = [f"{LABEL}: released counts"] + [f"{LABEL}: sums of {V} continuous variables"] * len(sums)
    values = _decrypt(fed, handles, labels, decrypt_by, None)
    s.forget(counts, *sums, *handles)
    released = _rounded(values[0][:K] / 2.0**SHIFT, "the released counts")
    per_variable = [values[1][v * L: (v + 1) * L] / 2.0**SHIFT for v in range(V)]
    return TableOne(req, shown, small, suppressed, released, per_variable, list(fed.researcher.revealed[revealed0:]),
                    {**cost, "seconds": time.perf_counter() - t0})


def _check_feasible(server, req: TableRequest, by) -> None:
    """The small-cell test tells pooled clipped counts 1 / (2 min_cell hospitals) apart under the noise of
    every refresh, which grows with the key holders refreshing: refuse up front what it cannot tell."""
    from ..errors import ParameterError

    parties = len(server.participants(by))
    try:
        composite(server.ctx, req.bound, parties)
    except ParameterError:
        raise ParameterError(
            f"a Table 1 over {int(req.bound // req.min_cell)} hospitals with min_cell {req.min_cell}: the secure "
            f"small-cell test would have to tell counts 1/{int(2 * req.bound)} apart, finer than the refresh noise "
            f"of {parties} key holders allows; refresh with fewer key holders (t-out-of-n, decrypt_by) or a smaller "
            "min_cell"
        ) from None


def _flags(fed, sflags, slots, K: int, label: str, by) -> np.ndarray:
    """The small-cell tests of `slots` only (the rest masked to zero before decryption), as booleans."""
    mask = np.zeros(K)
    mask[slots] = 1.0
    got = _decrypt(fed, [fed.server.multiply_plain(sflags, mask)], [label], by, 0)[0]
    return _rounded(got[slots], "the small-cell tests") == 1


class TableOne:
    """The rendered table (`to_frame`, `to_html`, `to_latex`) and its numbers (`numbers`)."""

    def __init__(self, req: TableRequest, shown, small, suppressed, counts, sums, revealed, cost):
        self.request, self.shown, self.revealed, self.cost = req, list(shown), revealed, cost
        self.min_cell = req.min_cell
        self.suppressed = sorted(suppressed)
        keys = req.cell_keys()
        self.total = int(counts[-1])
        self.sizes = {"overall": self.total}
        if req.by is not None and len(self.shown) > 1:
            self.sizes[req.column_names[1]] = int(counts[-3])
            self.sizes[req.column_names[2]] = int(counts[-2])
        self.small = {k for k, flag in zip(keys, small) if flag and k[0] in self.shown}
        self.counts = {k: int(c) for k, c in zip(keys, counts) if k[0] in self.shown and k[1] not in suppressed}
        self.stats = {}
        C = req.columns
        for name, v in zip(req.continuous, sums):
            for j, col in enumerate(req.column_names):
                if col not in self.shown:
                    continue
                n = self.sizes[col]
                mean = v[j] / n if n else math.nan
                var = (v[C + j] - n * mean * mean) / (n - 1) if n > 1 else math.nan
                self.stats[(col, name)] = (n, mean, math.sqrt(max(var, 0.0)))

    def cell(self, column: str, variable: str, level) -> str:
        key = (column, variable, float(level))
        if key in self.small:
            return f"<{self.min_cell}"
        if key not in self.counts:
            return _MISSING
        n = self.sizes[column]
        return f"{self.counts[key]} ({100.0 * self.counts[key] / n:.1f}%)" if n else "0"

    def _rows(self):
        """(variable, what) row labels with their cells per shown column."""
        req = self.request
        rows = [(("n", ""), [str(self.sizes[c]) for c in self.shown])]
        for name in req.continuous:
            rows.append(((name, "mean (SD)"), [f"{self.stats[(c, name)][1]:.2f} ({self.stats[(c, name)][2]:.2f})"
                                                for c in self.shown]))
        for name, levels in req.categorical:
            for lv in levels:
                label = f"{int(lv)}" if float(lv).is_integer() else f"{lv:g}"
                rows.append(((name, label), [self.cell(c, name, lv) for c in self.shown]))
        return rows

    def _header(self, column: str) -> str:
        return f"{'Overall' if column == 'overall' else column} (n={self.sizes[column]})"

    def to_frame(self):
        import pandas as pd

        rows = self._rows()
        index = pd.MultiIndex.from_tuples([r[0] for r in rows], names=["variable", ""])
        return pd.DataFrame([r[1] for r in rows], index=index, columns=[self._header(c) for c in self.shown])

    def numbers(self):
        """Numeric table: counts (NaN where hidden), means and SDs per shown column."""
        import pandas as pd

        out = {}
        for c in self.shown:
            col = {("n", ""): float(self.sizes[c])}
            for name in self.request.continuous:
                n, mean, sd = self.stats[(c, name)]
                col[(name, "mean")], col[(name, "sd")] = mean, sd
            for name, levels in self.request.categorical:
                for lv in levels:
                    col[(name, lv)] = float(self.counts.get((c, name, float(lv)), math.nan))
            out[c] = col
        return pd.DataFrame(out)

    def notes(self) -> list[str]:
        out = [f"Pooled cells of 1 to {self.min_cell - 1} rows are shown as <{self.min_cell} (decided under "
               "encryption; the researcher never saw their values)."]
        if self.suppressed:
            out.append(f"{', '.join(self.suppressed)}: a small cell hides the variable's other cells ({_MISSING}), "
                       "which would give it away by difference from the column total.")
        if self.request.by is not None and len(self.shown) == 1:
            out.append(f"Columns by {self.request.by} hidden: a class has fewer than {self.min_cell} rows.")
        return out

    def to_html(self) -> str:
        notes = "".join(f"<p><small>{n}</small></p>" for n in self.notes())
        return self.to_frame().to_html() + notes

    def _repr_html_(self) -> str:
        return self.to_html()

    def to_latex(self, caption: str = "Baseline characteristics") -> str:
        """A LaTeX table (booktabs), written here so no templating package is needed."""
        def esc(text: str) -> str:
            for a, b in (("\\", r"\textbackslash{}"), ("%", r"\%"), ("_", r"\_"), ("&", r"\&"), ("#", r"\#"),
                         ("<", r"$<$")):
                text = text.replace(a, b)
            return text

        heads = " & ".join(esc(self._header(c)) for c in self.shown)
        lines = [r"\begin{table}", r"\centering", f"\\caption{{{esc(caption)}}}",
                 r"\begin{tabular}{ll" + "r" * len(self.shown) + "}", r"\toprule", f"Variable &  & {heads} \\\\",
                 r"\midrule"]
        last = None
        for (var, what), cells in self._rows():
            first = esc(var) if var != last else ""
            last = var
            lines.append(f"{first} & {esc(what)} & " + " & ".join(esc(c) for c in cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        lines += [f"\\par\\footnotesize {esc(n)}" for n in self.notes()]
        lines.append(r"\end{table}")
        return "\n".join(lines)

    def cells(self) -> list[dict]:
        """The table as numbers, one entry per variable and shown column (class): a continuous variable's
        count, mean and SD; a categorical one's count per level, "<min_cell" for a small cell and None for a
        cell hidden with it (its variable has a small cell)."""
        out = []
        for name in self.request.continuous:
            for c in self.shown:
                n, mean, sd = self.stats[(c, name)]
                out.append({"variable": name, "class": c, "count": int(n), "mean": float(mean), "sd": float(sd)})
        for name, levels in self.request.categorical:
            for c in self.shown:
                counts = {}
                for lv in levels:
                    key = (c, name, float(lv))
                    label = f"{int(lv)}" if float(lv).is_integer() else f"{lv:g}"
                    counts[label] = f"<{self.min_cell}" if key in self.small else self.counts.get(key)
                out.append({"variable": name, "class": c, "count": self.sizes[c], "counts": counts})
        return out

    def to_dict(self) -> dict:
        """JSON-able: "rows" as the table shows them (strings), "cells" as numbers (see `cells`)."""
        return {
            "by": self.request.by,
            "min_cell": self.min_cell,
            "columns": self.shown,
            "sizes": self.sizes,
            "rows": [{"variable": v, "what": w, **dict(zip(self.shown, cells))} for (v, w), cells in self._rows()],
            "cells": self.cells(),
            "suppressed_variables": self.suppressed,
            "notes": self.notes(),
            "revealed": self.revealed,
            "cost": self.cost,
        }
