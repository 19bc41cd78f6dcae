"""Issue 12: fold ids must not give labels away. The observer below knows every public input (the study's
seed, the fold count, the row numbers, each hospital's class counts) and every message the server sees,
and predicts each row's label from the fold ids.

Its best attack, the reviewer's: the deal is documented (class 0 dealt round-robin from a start, then
class 1), so if the observer can replay the order within each class (numpy's generator seeded with a
number it knows, or row order), the fold ids in row order are an interleaving of the two classes'
replayed fold sequences, and counting the interleavings that explain them (forward-backward over rows)
gives each row's exact posterior. Failing that, it uses what any stratified deal leaves: the class mix
of each fold, which depends on the deal's start (inferred from the hospital's fold sizes).

Margin: with nothing to learn, the number of rows any rule predicts correctly is a sum of hypergeometric
counts (labels spread at random within folds) whose mean is at most the majority guess's, so by
Hoeffding's bound (which holds for sampling without replacement) it exceeds that by t rows with
probability below exp(-2 t^2 / N). The tests allow t = sqrt(N ln(10^6) / 2): a false alarm below 1e-6.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest

import mpclr
from mpclr.errors import PrivacyWarning, ProtocolError
from mpclr.plain.folds import secret_folds
from mpclr.training.cv import encrypt_study

ROWS = 150  # per hospital, as in the review
PREVALENCE = 0.35  # each fold's minority stays the hospital's minority, so the majority guess is optimal


def margin(n: int, false_alarm: float = 1e-6) -> float:
    return math.sqrt(n * math.log(1 / false_alarm) / 2)


def labels(g, n=ROWS):
    return (g.random(n) < PREVALENCE).astype(np.int64)


# ---------------------------------------------------------------------------------------------- the observer
def _interleavings(F, f0, f1):
    """(number of label vectors whose replayed deal gives F, per row how many of them put it in class 0)."""
    n, n0, n1 = F.size, f0.size, f1.size
    j = np.arange(n0 + 1)
    f0p, f1p = np.append(f0, -1), np.append(f1, -1)
    take0, take1 = [], []
    a, forward = np.zeros(n0 + 1), []
    a[0] = 1.0
    for i in range(n):
        k = i - j
        m0 = (j < n0) & (f0p[np.minimum(j, n0)] == F[i])
        m1 = (k >= 0) & (k < n1) & (f1p[np.clip(k, 0, n1)] == F[i])
        forward.append(a)
        take0.append(m0)
        take1.append(m1)
        nxt = np.zeros_like(a)
        nxt[1:] += (a * m0)[:-1]
        nxt += a * m1
        if not nxt.any():
            return 0.0, None
        a = nxt
    total = a[n0]
    b = np.zeros(n0 + 1)
    b[n0] = 1.0
    zero = np.zeros(n)
    for i in range(n - 1, -1, -1):
        shifted = np.append(b[1:], 0.0)
        zero[i] = (forward[i] * take0[i] * shifted).sum()
        b = take0[i] * shifted + take1[i] * b
    return total, zero


def _replays(n, folds, seeds):
    """Every deal the observer can replay, per class-0 count n0: (n0, fold sequence of class 0 in row order,
    of class 1). Seeded: today's hospital code (numpy, start from the seed); row order: every start."""
    for n0 in range(n + 1):
        for s in seeds:
            rng = np.random.default_rng(s)
            inv0, inv1 = np.argsort(rng.permutation(n0)), np.argsort(rng.permutation(n - n0))
            start = int(np.random.default_rng([s, 1]).integers(folds))
            yield n0, (start + inv0) % folds, (start + n0 + inv1) % folds
        for start in range(folds):
            yield n0, (start + np.arange(n0)) % folds, (start + n0 + np.arange(n - n0)) % folds


def _class_mix(F, folds, n0):
    """P(class 0) of each row from its fold's class mix, averaged over the starts the fold sizes allow."""
    n = F.size
    sizes = np.bincount(F, minlength=folds)
    p = np.zeros(n)
    starts = 0
    for s in range(folds):
        if np.array_equal(np.bincount((s + np.arange(n)) % folds, minlength=folds), sizes):
            p += np.bincount((s + np.arange(n0)) % folds, minlength=folds)[F] / sizes[F]
            starts += 1
    return p / max(starts, 1)


def predict(F, folds, seeds, n0):
    """The observer's guess of each row's label from a hospital's fold ids F (row order)."""
    F = np.asarray(F, dtype=np.int64)
    total, zero = 0.0, np.zeros(F.size)
    for _, f0, f1 in _replays(F.size, folds, seeds):
        t, z = _interleavings(F, f0, f1)
        if t:
            total, zero = total + t, zero + z
    p0 = zero / total if total else _class_mix(F, folds, n0)
    majority = int(2 * n0 < F.size)
    return np.where(np.isclose(p0, 0.5), majority, (p0 < 0.5).astype(np.int64))


def today_s_hospital(y, folds, seed):
    """The hospital's deal before issue 12 (lr/party.py local_folds), to show what the observer can do."""
    rng = np.random.default_rng(seed)
    fold = np.empty(y.size, dtype=np.int64)
    dealt = int(np.random.default_rng([seed, 1]).integers(folds))
    for c in (0, 1):
        rows = rng.permutation(np.flatnonzero(y == c))
        fold[rows] = (dealt + np.arange(rows.size)) % folds
        dealt += rows.size
    return fold


# ---------------------------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("folds,bar", [(5, 0.85), (10, 0.9)])
def test_the_observer_reads_labels_off_a_replayable_deal(folds, bar):
    """The attack is strong: against the seeded deal it recovers most labels (the review: 90 % with 5
    folds, 95 % with 10), far above the majority guess."""
    g = np.random.default_rng(folds)
    right = majority = total = 0
    for h in range(4):
        y = labels(g)
        seed = 1000 * 7 + h  # the study seed 7, hospital h: what the server sent
        guess = predict(today_s_hospital(y, folds, seed), folds, [seed], int((y == 0).sum()))
        right += int((guess == y).sum())
        majority += max(int(y.sum()), int((1 - y).sum()))
        total += y.size
    assert right / total >= bar, (right / total, majority / total)
    assert right > majority + margin(total)


@pytest.mark.parametrize("folds", [5, 10])
def test_secret_folds_tell_the_observer_nothing(folds):
    """The hospital's own fold function, with fresh secret keys as hospitals draw them: the observer,
    knowing the class counts and trying every seed it could know, does no better than the majority."""
    g = np.random.default_rng(100 + folds)
    right = majority = total = 0
    for h in range(12):
        y = labels(g)
        F = secret_folds(y, folds, os.urandom(32), np.arange(ROWS) + h * ROWS)
        guess = predict(F, folds, [7, 7000 + h, h], int((y == 0).sum()))
        right += int((guess == y).sum())
        majority += max(int(y.sum()), int((1 - y).sum()))
        total += y.size
    assert right <= majority + margin(total), (right / total, majority / total)


@pytest.fixture(scope="module")
def fed():
    f = mpclr.Federation(hospitals=3, preset="fast", manifest="exploration")
    yield f
    f.close()


def observed_study(fed, y_parts, folds, X=None):
    """encrypt_study with the server's messages recorded, as the observer sees them: (step, what the
    server sent each hospital, what each answered)."""
    seen = []
    call_many, call_sequence = fed.server.call_many, fed.server.call_sequence

    def record(step, requests):
        replies = call_many(step, requests)
        seen.append((step, requests, replies))
        return replies

    def record_sequence(steps):  # several steps in one round: each seen as its own
        replies = call_sequence(steps)
        seen.extend((step, requests, r) for (step, requests), r in zip(steps, replies))
        return replies

    g = np.random.default_rng(len(y_parts))
    offset = 0
    for p, y in zip(fed.hospitals, y_parts):
        rows = offset + np.arange(y.size)
        p.load_data(g.normal(size=(y.size, 3)) if X is None else X[rows], y, rows)
        offset += y.size
    fed.server.call_many, fed.server.call_sequence = record, record_sequence
    try:
        cv = encrypt_study(fed, folds=folds)
    finally:
        del fed.server.call_many, fed.server.call_sequence
    return cv, seen


def test_the_server_s_messages_tell_the_observer_nothing(fed):
    """A whole encrypt_study over the in-process network, 3 hospitals: the observer takes the fold ids from
    the lr.folds replies and every number in the server's requests as a candidate seed."""
    g = np.random.default_rng(5)
    folds = 5
    right = majority = total = 0
    for _ in range(4):
        y_parts = [labels(g) for _ in fed.hospitals]
        cv, seen = observed_study(fed, y_parts, folds)
        steps = [step for step, _, _ in seen]
        assert steps[:3] == ["lr.folds", "lr.aggregate", "lr.encrypt"]
        _, requests, replies = seen[0]
        for p, y in zip(fed.hospitals, y_parts):
            request, reply = requests[p.name], replies[p.name]
            assert set(request) == {"folds"}  # nothing a hospital's deal could be replayed from
            seeds = [7] + [v for v in request.values() if isinstance(v, int)]
            guess = predict(reply["folds"], folds, seeds, int((y == 0).sum()))
            right += int((guess == y).sum())
            majority += max(int(y.sum()), int((1 - y).sum()))
            total += y.size
        # what lr.encrypt tells every hospital about the folds: their pooled sizes, nothing per label
        counts = seen[2][1][fed.hospitals[0].name]["train_counts"]
        assert counts == (cv.fold_of_row.size - np.bincount(cv.fold_of_row, minlength=folds)).tolist()
    assert right <= majority + margin(total), (right / total, majority / total)


def test_a_resumed_hospital_deals_the_same_folds_and_a_new_session_others(fed, tmp_path):
    g = np.random.default_rng(9)
    y_parts = [labels(g) for _ in fed.hospitals]
    first, _ = observed_study(fed, y_parts, 5)
    fed.save(tmp_path / "fed")
    again = mpclr.Federation.load(tmp_path / "fed")
    try:
        resumed, _ = observed_study(again, y_parts, 5)
    finally:
        again.close()
    np.testing.assert_array_equal(resumed.fold_of_row, first.fold_of_row)
    key = (tmp_path / "fed" / "nodes" / fed.hospitals[0].name / "secret-fold-key.bin")
    assert key.stat().st_mode & 0o777 == 0o600
    with mpclr.Federation(hospitals=3, preset="fast", manifest="exploration") as other:
        fresh, _ = observed_study(other, y_parts, 5)
    assert not np.array_equal(fresh.fold_of_row, first.fold_of_row)


def test_two_hospitals_learn_each_other_s_sums_and_are_warned():
    """What README says two hospitals reveal to each other, computed from one hospital's view: its own
    rows and the lr.encrypt request (pooled means, standard deviations, training counts per fold)."""
    g = np.random.default_rng(3)
    X = g.normal(size=(200, 3)) * [1.0, 4.0, 0.5] + [2.0, -1.0, 0.0]
    y_parts = [labels(g, 90), labels(g, 110)]
    with mpclr.Federation(hospitals=2, preset="fast", manifest="exploration") as two:
        with pytest.warns(PrivacyWarning, match="two hospitals"):
            cv, seen = observed_study(two, y_parts, 5, X)
        request = seen[2][1][two.hospitals[0].name]
    n = int(round(sum(request["train_counts"]) / (5 - 1)))
    mean, std = np.asarray(request["mean"]), np.asarray(request["std"])
    own = X[:90]
    n_other = n - own.shape[0]
    sums = n * mean - own.sum(0)
    squares = n * (std**2 + mean**2) - (own**2).sum(0)  # std with ddof 0 (mpclr.plain.twin)
    assert n_other == 110
    np.testing.assert_allclose(sums, X[90:].sum(0), rtol=1e-6, atol=1e-3)  # to CKKS's precision at scale 2^30
    np.testing.assert_allclose(squares, (X[90:] ** 2).sum(0), rtol=1e-5, atol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivacyWarning)
        with mpclr.Federation(hospitals=3, preset="fast", manifest="exploration") as three:
            observed_study(three, [labels(g, 60) for _ in range(3)], 5, X)


def test_a_hospital_takes_no_seed_for_its_folds(fed):
    fed.hospitals[0].load_data(np.zeros((20, 2)), np.array([0, 1] * 10), np.arange(20))
    with pytest.raises(ProtocolError, match="takes no seed"):
        fed.server.call(fed.hospitals[0].name, "lr.folds", folds=5, seed=7000)
