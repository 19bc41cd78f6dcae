"""Metrics from counts: what the researcher computes in the clear from the revealed counts (ROC, AUC,
confusion matrix and its ratios)."""

from __future__ import annotations

import numpy as np


def roc_from_counts(thresholds, tp, fp, positives: int, negatives: int) -> dict:
    """ROC points and trapezoid AUC from the positives (tp) and negatives (fp) above each threshold.

    Adds (1, 1) below every threshold and (0, 0) above; auc_bound = sum over cells of p_c n_c / (2 P N)."""
    order = np.argsort(np.asarray(thresholds, dtype=np.float64))
    th = np.asarray(thresholds, dtype=np.float64)[order]
    tp = np.asarray(tp, dtype=np.float64)[order]
    fp = np.asarray(fp, dtype=np.float64)[order]
    TP = np.r_[positives, tp, 0.0]
    FP = np.r_[negatives, fp, 0.0]
    tpr = TP / positives if positives else np.full(TP.shape, np.nan)
    fpr = FP / negatives if negatives else np.full(FP.shape, np.nan)
    auc = float(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2.0))
    p_c, n_c = TP[:-1] - TP[1:], FP[:-1] - FP[1:]
    bound = float(np.sum(np.maximum(p_c, 0) * np.maximum(n_c, 0)) / (2.0 * positives * negatives))
    return {
        "thresholds": [None, *th.tolist(), None],
        "fpr": fpr.tolist(),
        "tpr": tpr.tolist(),
        "auc": auc,
        "auc_bound": bound,
    }


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
