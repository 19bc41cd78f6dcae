"""Metrics from counts: what the researcher computes in the clear from the revealed counts (ROC, AUC,
confusion matrix and its ratios)."""

from __future__ import annotations

import numpy as np


def roc_from_counts(thresholds, tp, fp, positives: int, negatives: int) -> dict:
    """ROC points and AUC from the positives (tp) and negatives (fp) above each threshold.

    Adds (1, 1) below every threshold and (0, 0) above. Between two thresholds a cell holds p_c positives
    and n_c negatives whose order the counts do not show: their pairs add between 0 and p_c n_c / (P N)
    to the AUC. The trapezoid (`auc_trapezoid`) counts half of that in every cell, which under-counts
    where the ROC bends (it is concave where the scores separate the classes: at paper scale with 13
    thresholds per fold the trapezoid lands 0.0015-0.0025 below the exact AUC, every fold the same way).
    `auc` instead follows a monotone cubic (PCHIP) through the revealed points inside each cell that holds
    both classes, kept within that cell's range: the same counts, no more revealed, 3 times closer there
    (benchmarks/auc_policy.py). A cell with one class only is exact either way (its ROC segment is
    horizontal or vertical). `auc_bound` certifies |auc - exact AUC| (per cell its range's half width plus
    the interpolation's move from the trapezoid); `auc_interval` is the range the counts allow."""
    order = np.argsort(np.asarray(thresholds, dtype=np.float64))
    th = np.asarray(thresholds, dtype=np.float64)[order]
    tp = np.asarray(tp, dtype=np.float64)[order]
    fp = np.asarray(fp, dtype=np.float64)[order]
    TP = np.r_[positives, tp, 0.0]
    FP = np.r_[negatives, fp, 0.0]
    tpr = TP / positives if positives else np.full(TP.shape, np.nan)
    fpr = FP / negatives if negatives else np.full(FP.shape, np.nan)
    chords = (fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2.0
    trapezoid = float(np.sum(chords))
    p_c, n_c = TP[:-1] - TP[1:], FP[:-1] - FP[1:]
    half = np.maximum(p_c, 0) * np.maximum(n_c, 0) / (2.0 * positives * negatives) if positives and negatives \
        else np.zeros(p_c.shape)
    moves = _interpolated_moves(fpr, tpr, chords, half)
    return {
        "thresholds": [None, *th.tolist(), None],
        "fpr": fpr.tolist(),
        "tpr": tpr.tolist(),
        "auc": trapezoid + float(np.sum(moves)),
        "auc_trapezoid": trapezoid,
        "auc_bound": float(np.sum(half + np.abs(moves))),
        "auc_interval": [trapezoid - float(np.sum(half)), trapezoid + float(np.sum(half))],
    }


def _interpolated_moves(fpr, tpr, chords, half) -> np.ndarray:
    """Per cell: the area between a monotone cubic through the ROC points and the cell's chord, where the
    cell holds both classes, clipped to the cell's half range (0 elsewhere).

    The cubic is PCHIP's (Fritsch-Carlson): on a cell of width h and secant d, with slopes d0, d1 at its
    ends, its area is the chord's plus h^2 (d0 - d1) / 12. An end's slope is the harmonic mean of the two
    secants meeting there (0 if either is flat, twice the cell's own if the other is vertical: a run of one
    class), at most 3 d; at (0, 0) and (1, 1) the one-sided three-point estimate, kept within [0, 3 d]."""
    moves = np.zeros(chords.shape)
    if not np.any(half > 0) or not (np.all(np.isfinite(fpr)) and np.all(np.isfinite(tpr))):
        return moves
    x, y = fpr[::-1], tpr[::-1]  # points from (0, 0) to (1, 1); cell i here is cell n - 1 - i of the input
    w, rise = np.diff(x), np.diff(y)
    cells = len(w)
    with np.errstate(divide="ignore", invalid="ignore"):
        secant = np.where(w > 0, rise / np.where(w > 0, w, 1.0), np.where(rise > 0, np.inf, 0.0))

    def joint(a, b):  # slope where secants a and b meet (PCHIP's harmonic mean)
        if a <= 0 or b <= 0:
            return 0.0
        return 2.0 / (1.0 / a + 1.0 / b)

    for i in range(cells):
        c = cells - 1 - i
        if not half[c] > 0 or not w[i] > 0:
            continue
        d = secant[i]
        if i > 0:
            d0 = joint(secant[i - 1], d)
        else:  # at (0, 0): the three-point end estimate
            d0 = ((2 * w[0] + w[1]) * d - w[0] * secant[1]) / (w[0] + w[1]) if cells > 1 and np.isfinite(secant[1]) \
                and w[1] > 0 else d
        if i < cells - 1:
            d1 = joint(d, secant[i + 1])
        else:  # at (1, 1)
            d1 = ((2 * w[i] + w[i - 1]) * d - w[i] * secant[i - 1]) / (w[i] + w[i - 1]) if i > 0 and \
                np.isfinite(secant[i - 1]) and w[i - 1] > 0 else d
        d0, d1 = min(max(d0, 0.0), 3 * d), min(max(d1, 0.0), 3 * d)
        moves[c] = min(max(w[i] ** 2 * (d0 - d1) / 12.0, -half[c]), half[c])
    return moves


def confusion_metrics(tp: int, fp: int, tn: int, fn: int) -> dict:
    def ratio(a, b):
        return float(a / b) if b else None

    return {
        "accuracy": ratio(tp + tn, tp + fp + tn + fn),
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
    }
