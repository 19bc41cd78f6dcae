"""Plots and reports the notebooks and batch runs share (matplotlib only, imported when first used)."""

from __future__ import annotations

import csv
import html
import math
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_key_ceremony", "plot_metric", "write_csv", "write_html_report"]


def _plt():
    import matplotlib.pyplot as plt  # the inline backend in a kernel, Agg headless

    return plt


def plot_key_ceremony(traffic: dict, timings: dict[str, float]):
    """Three panels: bytes per message type, bytes sent per node, seconds per phase."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    panels = [
        (
            axes[0],
            {k: v["bytes"] / 1e6 for k, v in traffic["by_type"].items()},
            "MB (requests + replies)",
            "per message type",
        ),
        (axes[1], {k: v["bytes"] / 1e6 for k, v in traffic["by_sender"].items()}, "MB sent", "per node"),
        (axes[2], {k: float(v) for k, v in timings.items()}, "seconds", "time per phase"),
    ]
    for ax, values, xlabel, title in panels:
        names = list(values)
        ax.barh(names, [values[n] for n in names], color="#4c72b0")
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        for i, n in enumerate(names):
            ax.annotate(
                f"{values[n]:.3g}", (values[n], i), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8
            )
        ax.margins(x=0.25)
    fig.suptitle(f"key ceremony: {traffic['total_bytes'] / 1e6:.1f} MB in all")
    return fig


def _number(v) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float) and math.isfinite(v):
        return float(v)
    return None


def plot_metric(rows: Sequence[dict], metric: str, varied: Sequence[str]):
    """One metric across runs: against the first varied parameter with numeric values (one line per
    setting of the other varied parameters), or one bar per run when there is none. None if no run has
    the metric."""
    plt = _plt()
    have = [r for r in rows if _number(r.get(metric)) is not None]
    if not have:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
    xs = [p for p in varied if all(_number(r.get(p)) is not None for r in have)]
    if xs:
        x = xs[0]
        others = [p for p in varied if p != x and len({repr(r.get(p)) for r in have}) > 1]
        groups: dict[tuple, list[dict]] = {}
        for r in have:
            groups.setdefault(tuple(r.get(p) for p in others), []).append(r)
        for key, members in groups.items():
            members.sort(key=lambda r: r[x])
            label = ", ".join(f"{p}={v}" for p, v in zip(others, key)) or None
            ax.plot([r[x] for r in members], [r[metric] for r in members], "o-", label=label)
        ax.set_xlabel(x)
        if all(isinstance(r[x], int) for r in have):
            ax.xaxis.get_major_locator().set_params(integer=True)
        if others:
            ax.legend(fontsize=7)
    else:
        ax.bar([r["run"] for r in have], [r[metric] for r in have], color="#4c72b0")
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    ax.set_ylabel(metric)
    ax.set_title(metric)
    return fig


def write_csv(rows: Sequence[dict], columns: Sequence[str], path: Path) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: "" if r.get(c) is None else r.get(c) for c in columns})
    return path


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def write_html_report(
    path: Path,
    title: str,
    rows: Sequence[dict],
    columns: Sequence[str],
    plots: Sequence[Path],
    failures: Sequence[tuple[str, str]],
    images: Sequence[tuple[str, Path]] = (),
) -> Path:
    """A small self-contained page (images by relative path): the table, plots, failures, run images."""
    base = path.parent
    e = html.escape
    out = [
        f"<!doctype html><meta charset='utf-8'><title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#eee}"
        "tr.failed td{background:#fdd}img{max-width:620px;margin:4px}pre{background:#f6f6f6;padding:6px;"
        "white-space:pre-wrap}</style>",
        f"<h1>{e(title)}</h1>",
        "<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in columns) + "</tr>",
    ]
    for r in rows:
        cls = " class='failed'" if r.get("status") != "ok" else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{e(_cell(r.get(c)))}</td>" for c in columns) + "</tr>")
    out.append("</table>")
    if plots:
        out.append("<h2>Across runs</h2>")
        out += [f"<img src='{e(os.path.relpath(p, base))}' alt='{e(p.stem)}'>" for p in plots]
    if failures:
        out.append("<h2>Failures</h2>")
        out += [f"<h3>{e(run)}</h3><pre>{e(text)}</pre>" for run, text in failures]
    if images:
        out.append("<h2>Per run</h2>")
        out += [
            f"<figure><img src='{e(os.path.relpath(p, base))}' alt='{e(label)}'><figcaption>{e(label)}"
            "</figcaption></figure>"
            for label, p in images
        ]
    path.write_text("\n".join(out) + "\n")
    return path
