"""Logistic regression, plaintext side: sigmoid polynomials, public folds, the plaintext twin of the
encrypted trainer, scikit-learn baselines and clear-text metrics."""

from .baselines import sklearn_cv
from .folds import assign_folds, training_masks
from .metrics import auc, confusion, fold_metrics, mean_sd, roc_curve
from .sigmoid import evaluate, sigmoid_poly
from .twin import (
    NesterovLR,
    curvature,
    curvature_from_aggregates,
    make_z,
    standardization_stats,
    standardize_from_aggregates,
)

__all__ = [
    "NesterovLR",
    "assign_folds",
    "training_masks",
    "sigmoid_poly",
    "evaluate",
    "make_z",
    "curvature",
    "curvature_from_aggregates",
    "standardization_stats",
    "standardize_from_aggregates",
    "sklearn_cv",
    "auc",
    "roc_curve",
    "confusion",
    "fold_metrics",
    "mean_sd",
]
