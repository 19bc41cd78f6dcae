"""Logistic regression, plaintext side: sigmoid polynomials, public folds, the plaintext twin of the
encrypted trainer, scikit-learn baselines and clear-text metrics.

`NesterovLR` (the twin as a scikit-learn classifier) is imported on first use: scikit-learn takes
seconds to import, and a hospital's node never needs it."""

from .baselines import sklearn_cv
from .folds import assign_folds, training_masks
from .metrics import auc, confusion, fold_metrics, mean_sd, roc_curve
from .sigmoid import evaluate, sigmoid_poly
from .twin import (
    FoldModels,
    curvature,
    curvature_from_aggregates,
    fit_folds,
    fit_folds_z,
    make_z,
    standardization_stats,
    standardize_from_aggregates,
)

__all__ = [
    "NesterovLR",
    "FoldModels",
    "fit_folds",
    "fit_folds_z",
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


def __getattr__(name: str):
    if name == "NesterovLR":
        from .nesterov import NesterovLR

        return NesterovLR
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
