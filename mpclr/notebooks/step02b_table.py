"""Step 02b (notebooks/02b_table_one.ipynb): the study's Table 1 (mpclr.stats.table1) of the hospitals' rows,
beside pandas on the pooled rows (a simulation has them), exported as HTML and LaTeX into the run folder;
the step's record."""

from __future__ import annotations

import html

import numpy as np

from ..stats.baseline import label_name
from .rundir import RunFolder

__all__ = ["EXPORTS", "export", "pandas_check", "table_record"]

EXPORTS = {"html": "table_one.html", "latex": "table_one.tex"}
CAPTION = "Baseline characteristics"


def export(table, run: RunFolder, caption: str = CAPTION) -> dict:
    """The table as a stand-alone HTML page and a LaTeX table (booktabs) in the run folder; their paths."""
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(caption)}</title></head>\n"
            f"<body>\n<h2>{html.escape(caption)}</h2>\n{table.to_html()}\n</body></html>\n")
    out = {"html": run.file(EXPORTS["html"]), "latex": run.file(EXPORTS["latex"])}
    out["html"].write_text(page, encoding="utf-8")
    out["latex"].write_text(table.to_latex(caption) + "\n", encoding="utf-8")
    return out


def pandas_check(table, pooled):
    """Every number the secure table shows beside the same statistic from pandas on the pooled rows (only a
    simulation has them): mean and SD (ddof 1) of each continuous variable, count of each shown category
    level, per column shown. Hidden cells (a variable with a small cell) are left out."""
    import pandas as pd

    frame = pd.DataFrame(pooled.X, columns=list(pooled.feature_names))
    by = table.request.by
    groups = {"overall": np.ones(len(frame), dtype=bool)}
    if by is not None:
        groups.update({f"{by}=0": pooled.y == 0, f"{by}=1": pooled.y == 1})
    rows = []
    for cell in table.cells():
        part = frame.loc[groups[cell["class"]], cell["variable"]]
        if "mean" in cell:
            for what, ours, theirs in (("mean", cell["mean"], part.mean()), ("sd", cell["sd"], part.std())):
                rows.append({"variable": cell["variable"], "what": what, "column": cell["class"], "secure": ours,
                             "pandas": float(theirs)})
            continue
        for level, count in cell["counts"].items():
            if isinstance(count, int):
                rows.append({"variable": cell["variable"], "what": level, "column": cell["class"],
                             "secure": float(count), "pandas": float((part == float(level)).sum())})
    out = pd.DataFrame(rows)
    out["|difference|"] = (out["secure"] - out["pandas"]).abs()
    return out


def table_record(table, check, paths: dict, parts) -> dict:
    """table_one.json: the table (mpclr.stats.table1.TableOne.to_dict), the pandas check, the exports; with
    no table (01 did not agree it) a record saying so."""
    if table is None:
        return {"table1": None, "agreed": False, "summary": {}}
    means = check[check["what"].isin(["mean", "sd"])]["|difference|"]
    counts = check[~check["what"].isin(["mean", "sd"])]["|difference|"]
    return {
        "table1": table.to_dict(),
        "agreed": True,
        "label": label_name(parts[0]),
        "exports": {k: p.name for k, p in paths.items()},
        "pandas_check": check.to_dict(orient="records"),
        "summary": {
            "table1_s": round(table.cost["seconds"], 3),
            "table1_refreshes": table.cost["refreshes"],
            "table1_revealed_values": int(sum(e["values"] for e in table.revealed)),
            "table1_suppressed_variables": len(table.suppressed),
            "table1_max_abs_diff_pandas": float(max(means.max() if len(means) else 0.0,
                                                    counts.max() if len(counts) else 0.0)),
            "table1_rows": table.total,
        },
    }
