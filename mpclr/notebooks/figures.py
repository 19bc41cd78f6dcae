"""The study steps' plots (02-05), drawn from what each step writes to its JSON record, so that a plot can
be redrawn from a run folder alone. matplotlib only, imported when first used."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "plot_data",
    "plot_correlation",
    "plot_training",
    "plot_roc",
    "plot_confusion",
    "plot_coefficients",
    "plot_times",
]

_COLORS = {"encrypted": "#c44e52", "secure": "#c44e52", "twin": "#4c72b0", "sklearn": "#55a868", "study": "#8c8c8c"}


def _plt():
    import matplotlib.pyplot as plt  # the inline backend in a kernel, Agg headless

    return plt


def plot_data(record: dict):
    """Two panels from data.json: rows per hospital; rows per fold, stacked by hospital."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.4), layout="constrained")
    rows = record["rows_per_hospital"]
    names = list(rows)
    a.bar(names, [rows[n] for n in names], color="#4c72b0")
    for i, n in enumerate(names):
        a.annotate(str(rows[n]), (i, rows[n]), ha="center", va="bottom", fontsize=8)
    a.set_ylabel("rows")
    a.set_title("rows per hospital (each keeps its own)")
    per = record["folds"]["per_hospital"]
    k = record["folds"]["count"]
    bottom = np.zeros(k)
    for n in names:
        v = np.asarray(per[n], dtype=float)
        b.bar(range(k), v, bottom=bottom, label=n)
        bottom += v
    b.set_xticks(range(k), [f"fold {i}" for i in range(k)])
    b.set_ylabel("test rows")
    b.set_title("fold sizes (public fold ids, stratified by each hospital)")
    b.legend(fontsize=7)
    return fig


def plot_correlation(correlation, names: Sequence[str]):
    """The correlation matrix the researcher computes from the decrypted pooled cross-products."""
    plt = _plt()
    corr = np.asarray(correlation, dtype=float)
    d = corr.shape[0]
    size = min(9.0, 2.5 + 0.28 * d)
    fig, ax = plt.subplots(figsize=(size + 1.0, size), layout="constrained")
    im = ax.imshow(corr, vmin=-1, vmax=1, cmap="RdBu_r")
    labels = [str(n)[:18] for n in names]
    ax.set_xticks(range(d), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(d), labels, fontsize=7)
    if d <= 12:
        for i in range(d):
            for j in range(d):
                ax.annotate(f"{corr[i, j]:.2f}", (j, i), ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, shrink=0.8, label="correlation")
    ax.set_title("pooled correlation matrix (from the decrypted aggregate)")
    return fig


def plot_training(record: dict):
    """Three panels from training.json: the twin's mean log-likelihood per iteration (train and test rows
    of each fold), the twin's largest |margin| per iteration against the sigmoid interval, and the
    encrypted run's seconds per iteration (gradient; update and collective refresh)."""
    plt = _plt()
    twin, enc = record["twin"], record["encrypted"]
    train_ll = np.asarray(twin["train_log_likelihood"], dtype=float)
    test_ll = np.asarray(twin["test_log_likelihood"], dtype=float)
    margins = np.asarray(twin["max_abs_margin"], dtype=float)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), layout="constrained")
    its = np.arange(train_ll.shape[0])
    for k in range(train_ll.shape[1]):
        line = axes[0].plot(its, train_ll[:, k], "o-", ms=3, label=f"fold {k}: train")[0]
        axes[0].plot(its, test_ll[:, k], "x--", ms=4, color=line.get_color(), alpha=0.7)
    axes[0].set_xlabel("iteration (0 = start)")
    axes[0].set_ylabel("mean log-likelihood")
    axes[0].set_title("twin: training (o) and test (x) rows")
    axes[0].legend(fontsize=6, ncol=2)
    steps = np.arange(1, margins.shape[0] + 1)
    for k in range(margins.shape[1]):
        axes[1].plot(steps, margins[:, k], "o-", ms=3, label=f"fold {k}")
    axes[1].axhline(twin["interval"], color="k", lw=0.8, ls=":", label="interval R")
    axes[1].set_xlabel("iteration")
    axes[1].set_ylabel("max |margin| on training rows")
    axes[1].set_title("twin: margins the sigmoid polynomial sees")
    axes[1].legend(fontsize=6)
    per = enc["per_iteration"]
    x = [r["iteration"] for r in per]
    g = [r["gradient_s"] for r in per]
    u = [r["update_refresh_s"] for r in per]
    axes[2].bar(x, g, label="gradient", color="#4c72b0")
    axes[2].bar(x, u, bottom=g, label="update + collective refresh", color="#dd8452")
    axes[2].set_xlabel("iteration")
    axes[2].set_ylabel("seconds")
    axes[2].set_title("encrypted run: time per iteration")
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


def plot_roc(folds: Sequence[dict]):
    """ROC curves per fold from the securely computed counts (points at every revealed threshold)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4.6), layout="constrained")
    for f in folds:
        fpr, tpr = f["roc"]["fpr"], f["roc"]["tpr"]
        order = np.lexsort((tpr, fpr))
        label = f"fold {f['fold']}: AUC {f['auc']:.3f}"
        ax.plot(np.asarray(fpr)[order], np.asarray(tpr)[order], ".-", ms=3, label=label)
    ax.plot([0, 1], [0, 1], color="#999", lw=0.8, ls=":")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("secure ROC per fold")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_aspect("equal")
    return fig


def plot_confusion(folds: Sequence[dict], cutoff: float):
    """One confusion matrix per fold at the cutoff, and their sum."""
    plt = _plt()
    mats = [(f"fold {f['fold']}", f["confusion"]) for f in folds]
    total = {k: sum(m[k] for _, m in mats) for k in ("tp", "fp", "tn", "fn")}
    mats.append(("all folds", total))
    fig, axes = plt.subplots(1, len(mats), figsize=(2.3 * len(mats), 2.6), layout="constrained", squeeze=False)
    for ax, (title, m) in zip(axes[0], mats):
        grid = np.array([[m["tn"], m["fp"]], [m["fn"], m["tp"]]])
        ax.imshow(grid, cmap="Blues", vmin=0, vmax=max(1, grid.max()))
        for i in range(2):
            for j in range(2):
                dark = grid[i, j] > 0.6 * grid.max()
                ax.annotate(
                    str(int(grid[i, j])),
                    (j, i),
                    ha="center",
                    va="center",
                    fontsize=10,
                    color="white" if dark else "black",
                )
        ax.set_xticks([0, 1], ["pred 0", "pred 1"], fontsize=7)
        ax.set_yticks([0, 1], ["true 0", "true 1"], fontsize=7)
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"confusion matrices at predicted probability {cutoff:g}")
    return fig


def plot_coefficients(names: Sequence[str], methods: dict[str, np.ndarray]):
    """Each coefficient's mean over the fold models (bars: +/- one sd across folds), per method."""
    plt = _plt()
    d = len(names)
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.32 * d * max(1, len(methods)) / 2), layout="constrained")
    width = 0.8 / max(1, len(methods))
    y = np.arange(d)
    for i, (label, W) in enumerate(methods.items()):
        W = np.asarray(W, dtype=float)
        sd = W.std(axis=0, ddof=1) if W.shape[0] > 1 else np.zeros(d)
        ax.barh(
            y + (i - (len(methods) - 1) / 2) * width,
            W.mean(axis=0),
            width,
            xerr=sd,
            label=label,
            color=_COLORS.get(label.split()[0], None),
            error_kw={"lw": 0.8},
        )
    ax.set_yticks(y, [str(n)[:24] for n in names], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("coefficient (standardized features), mean over folds +/- sd")
    ax.legend(fontsize=7)
    return fig


def plot_times(times: Sequence[dict], setting: str, study_setting: str):
    """Seconds per phase (log scale), ours beside the source study's figures where it gives one."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.42 * len(times)), layout="constrained")
    y = np.arange(len(times))
    ours = [max(r["mpclr_s"], 1e-3) for r in times]  # a phase with nothing left to do shows as 1 ms
    ax.barh(y - 0.2, ours, 0.4, label=f"mpclr: {setting}", color="#4c72b0")
    study = [(i, r["study_s"]) for i, r in enumerate(times) if r.get("study_s")]
    if study:
        ax.barh(
            [i + 0.2 for i, _ in study],
            [s for _, s in study],
            0.4,
            label=f"the study: {study_setting}",
            color=_COLORS["study"],
        )
    for i, v in enumerate(ours):
        ax.annotate(f"{v:.3g} s", (v, i - 0.2), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    for i, v in study:
        ax.annotate(
            f"{v / 60:.0f} min", (v, i + 0.2), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7
        )
    ax.set_yticks(y, [r["phase"] for r in times], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(left=min(0.01, min(ours) / 2), right=max([*ours, *(s for _, s in study)]) * 8)
    ax.set_xlabel("seconds (log scale)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16 - 0.3 / len(times)), ncol=1)
    return fig
