"""Fold assignment: stratified and balanced; a hospital's from its secret key, a reference's from a seed."""

import numpy as np
import pytest

from mpclr.errors import DataError, ParameterError
from mpclr.plain.folds import assign_folds, fold_sizes, secret_folds, training_masks


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


@pytest.mark.parametrize("folds", [2, 5, 10])
def test_a_hospital_s_folds_are_stratified_and_balanced(labels, folds):
    f = secret_folds(labels, folds, bytes(range(32)))
    sizes = fold_sizes(f, folds)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == labels.size
    for c in (0, 1):
        per_fold = np.bincount(f[labels == c], minlength=folds)
        assert per_fold.max() - per_fold.min() <= 1


def test_a_hospital_s_folds_follow_its_key_and_rows_only(labels):
    """Same key and rows: the same folds (a resumed study); another key, fold count or row numbering:
    an independent deal. Starts and orders vary with the key, uniformly enough to see in 200 keys."""
    key = bytes(range(32))
    rows = np.arange(labels.size) + 40
    f = secret_folds(labels, 5, key, rows)
    np.testing.assert_array_equal(f, secret_folds(labels, 5, bytearray(key), rows))
    assert (f != secret_folds(labels, 5, bytes(32), rows)).mean() > 0.5
    assert (f != secret_folds(labels, 5, key, rows + 1)).mean() > 0.5
    g, one = np.random.default_rng(0), np.array([0] + [1] * 9)  # the one row of class 0 is dealt first
    starts = np.bincount([secret_folds(one, 5, g.bytes(32))[0] for _ in range(200)], minlength=5)
    assert starts.min() > 15  # each fold starts a deal in about 40 of 200


def test_a_hospital_s_fold_key_is_checked():
    with pytest.raises(ParameterError, match="at least 32 secret bytes"):
        secret_folds(np.array([0, 1] * 10), 2, b"short")
    with pytest.raises(ParameterError, match="20 labels but 3 row numbers"):
        secret_folds(np.array([0, 1] * 10), 2, bytes(32), [1, 2, 3])


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
