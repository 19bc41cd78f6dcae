"""Public fold assignment: stratified, balanced, deterministic for a seed."""

import numpy as np
import pytest

from mpclr.errors import DataError, ParameterError
from mpclr.lr.folds import assign_folds, fold_sizes, training_masks


@pytest.fixture
def labels():
    rng = np.random.default_rng(7)
    return (rng.random(503) < 0.23).astype(int)


@pytest.mark.parametrize("folds", [2, 5, 10])
def test_stratified_and_balanced(labels, folds):
    f = assign_folds(labels, folds, seed=0)
    assert f.shape == labels.shape and set(np.unique(f)) == set(range(folds))
    sizes = fold_sizes(f, folds)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == labels.size
    for c in (0, 1):
        per_fold = np.bincount(f[labels == c], minlength=folds)
        assert per_fold.max() - per_fold.min() <= 1
        assert per_fold.min() >= 1


def test_deterministic_for_a_seed(labels):
    np.testing.assert_array_equal(assign_folds(labels, 5, seed=3), assign_folds(labels, 5, seed=3))
    assert (assign_folds(labels, 5, seed=3) != assign_folds(labels, 5, seed=4)).any()


def test_too_few_rows_of_a_class_names_the_counts():
    y = np.array([0] * 40 + [1] * 3)
    with pytest.raises(DataError, match=r"class counts are 0: 40, 1: 3"):
        assign_folds(y, 5, seed=0)
    assert assign_folds(y, 3, seed=0).max() == 2


@pytest.mark.parametrize("folds", [1, 0, -2, 2.5, True, "5"])
def test_bad_fold_count(folds):
    with pytest.raises(ParameterError, match="parameter folds"):
        assign_folds(np.array([0, 1] * 10), folds)


def test_labels_must_be_binary():
    with pytest.raises(DataError, match="0/1"):
        assign_folds(np.array([0, 1, 2] * 10), 2)


def test_training_masks():
    f = np.array([0, 1, 2, 0, 1, 2, 2])
    m = training_masks(f)
    assert m.shape == (3, 7)
    for k in range(3):
        np.testing.assert_array_equal(m[k], (f != k).astype(float))
    with pytest.raises(ParameterError, match="0..1"):
        training_masks(f, folds=2)
    with pytest.raises(ParameterError, match="at least 2 folds"):
        training_masks(np.zeros(4, dtype=int))
