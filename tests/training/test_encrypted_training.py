"""Encrypted CV training against an independent float64 implementation of the same algorithm."""

import numpy as np
import pytest

import mpclr
from mpclr.errors import ProtocolError
from mpclr.plain.sigmoid import sigmoid_poly
from mpclr.training.cv import run_encrypted_cv
from mpclr.training.encrypted import TrainingPlan
from mpclr.training.party import design_rows

from ..checks import refresh_flooding


def nesterov_reference(Z, folds, K, plan):
    """The algorithm in mpclr.training.encrypted's docstring, in float64, written out independently."""
    p = np.asarray(plan.sigmoid)
    W = np.zeros((K, Z.shape[1]))
    V = np.zeros_like(W)
    for gamma, eta in plan.schedule:
        G = np.zeros_like(W)
        for k in range(K):
            m = folds != k
            t = Z[m] @ V[k]
            G[k] = (np.polyval(p[::-1], -t)[:, None] * Z[m]).sum(axis=0) / m.sum()
        W_new = V + gamma * G
        V = (1 - eta) * W_new + eta * W
        W = W_new
    return W


def make_data(n, d, seed=0):
    g = np.random.default_rng(seed)
    X = g.normal(size=(n, d)) * g.uniform(0.5, 4, d) + g.uniform(-3, 3, d)
    logit = ((X - X.mean(0)) / X.std(0)) @ g.normal(size=d)
    y = (g.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def run(fed, X, y, folds, plan, workers="auto"):
    for p, rows in zip(fed.hospitals, np.array_split(np.arange(len(y)), len(fed.hospitals))):
        p.load_data(X[rows], y[rows], rows)
    res = run_encrypted_cv(fed, folds=folds, plan=plan, workers=workers)
    W = res.decrypt_models(fed)
    ref = nesterov_reference(design_rows(X, y, res.mean, res.std), res.fold_of_row, folds, plan)
    return res, W, ref


SCHEDULE = [(2.0, 0.0), (1.5, 0.0), (1.0, -0.25), (1.0, -0.4)]


def tolerance(fed) -> float:
    """Weights against the float64 reference: 10 times the smudging one refresh adds to a slot (each
    refresh hides the noise of its input behind every hospital's smudging; 3e-4 for 3 hospitals at the
    train preset). Measured: up to 6.6 times that here (steps up to 2, degree 7's refreshes mid-iteration),
    2.9 on breast cancer."""
    return 10 * refresh_flooding(fed.params, fed.n)


@pytest.mark.parametrize("workers,degree,rows", [(0, 3, 400), (2, 5, 1500)])
def test_train_preset_matches_reference(fed_train, workers, degree, rows):
    """400 rows fit one block with all 5 models in 8 slots; 1500 rows take the 4 + 1 split, one block
    per group, one per worker process."""
    X, y = make_data(rows, 4)
    res, W, ref = run(fed_train, X, y, 5, TrainingPlan(sigmoid_poly(degree, 8.0), SCHEDULE), workers)
    assert res.trainer.log.workers == workers
    assert np.abs(W - ref).max() < tolerance(fed_train)
    assert np.abs(ref).max() > 0.1  # the models moved away from zero
    # standardization statistics came from the encrypted aggregate
    assert np.abs(res.mean - X.mean(0)).max() < 1e-4 * np.abs(X).max()
    assert np.abs(res.std - X.std(0)).max() < 1e-4 * np.abs(X).max()
    # folds: stratified per hospital, every row in exactly one fold
    assert sorted(np.unique(res.fold_of_row)) == list(range(5))
    # one refresh round per iteration when the preset has the depth, and one for the final models; one
    # refresh input per weight ciphertext (G with the fresh terms added in)
    assert res.trainer.log.refreshes == len(SCHEDULE) + 1
    weights = sum(g.chunks(res.features) for g in res.layout.groups)
    assert res.trainer.log.refreshed_ciphertexts == (len(SCHEDULE) + 1) * weights
    # folds that fit a lane several times: the 5 columns side by side (k = the lane's copies of a fold, at most
    # 8): 1 weight ciphertext for 400 rows, 2 + 1 for the 4 + 1 split of 1500 rows (k = 4 and 8)
    assert res.layout.packed and weights == (1 if rows == 400 else 3)


def test_degree_seven_refreshes_mid_iteration(fed_train, tmp_path, monkeypatch):
    """Degree 7 needs depth 6 per iteration; 'train' has 5 levels above its refresh level, so the
    per-sample ciphertexts are refreshed inside each iteration and the result is the same algorithm.
    Here the rows are spooled to disk (a zero threshold) and streamed from there."""
    monkeypatch.setenv("MPCLR_SPOOL_BYTES", "0")
    monkeypatch.setenv("MPCLR_SPOOL_DIR", str(tmp_path))
    X, y = make_data(300, 3, seed=1)
    plan = TrainingPlan(sigmoid_poly(7, 8.0), SCHEDULE[:3])
    res, W, ref = run(fed_train, X, y, 4, plan, workers=0)
    assert res.blocks.on_disk and res.trainer._spool is res.blocks
    assert res.trainer.log.refreshes > len(plan.schedule) + 1
    assert np.abs(W - ref).max() < tolerance(fed_train)


@pytest.mark.parametrize("degree", [5, 7])
def test_unpacked_rows_stream_from_disk(fed_train, tmp_path, monkeypatch, degree):
    """A large study's regime at a small size: one feature per ciphertext (as where folds fill a lane), the
    rows on disk and streamed, block by block (degree 5) and step by step with refreshes inside each
    iteration (degree 7)."""
    from mpclr.training import layout as training_layout

    monkeypatch.setattr(training_layout, "segments_for", lambda *args: 1)
    monkeypatch.setattr(training_layout, "TRAIN_SEGMENTS", 1)
    monkeypatch.setenv("MPCLR_SPOOL_BYTES", "0")
    monkeypatch.setenv("MPCLR_SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv("MPCLR_SPOOL_COMPACT", "1" if degree == 7 else "")  # rows kept in the wire form, or not
    X, y = make_data(300, 3, seed=1)
    plan = TrainingPlan(sigmoid_poly(degree, 8.0), SCHEDULE[:2])
    res, W, ref = run(fed_train, X, y, 4, plan, workers=0)
    assert not res.layout.packed and res.blocks.on_disk and res.trainer._spool is res.blocks
    assert res.blocks.compact is (degree == 7)  # the disk has room for 64-bit words: compact only when asked
    assert len(res.blocks) == sum(g.blocks for g in res.layout.groups) * res.features  # one per feature
    assert np.abs(W - ref).max() < tolerance(fed_train)


def test_folds_filling_a_lane_train_packed_and_end_unpacked(fed_train, monkeypatch):
    """Where a fold fills a lane (paper scale), the training can pack 4 features side by side all the same (off by
    default: mpclr.training.layout.TRAIN_SEGMENTS) and its last refresh round output the evaluation's layout: one
    ciphertext per feature, each model's weight in every slot of its lane (the decryption reads it there)."""
    from mpclr.training import layout as training_layout

    monkeypatch.setattr(training_layout, "segments_for", lambda *args: 1)
    monkeypatch.setattr(training_layout, "TRAIN_SEGMENTS", 4)
    X, y = make_data(300, 3, seed=2)
    res, W, ref = run(fed_train, X, y, 4, TrainingPlan(sigmoid_poly(5, 8.0), SCHEDULE[:3]), workers=0)
    assert all(g.unpack and g.segments == 4 and g.chunks(4) == 1 for g in res.layout.groups)
    assert sorted(res.weights) == [(g.index, j) for g in res.layout.groups for j in range(4)]
    assert res.trainer.log.refreshed_ciphertexts == (len(SCHEDULE[:3]) + 1) * len(res.layout.groups)
    assert np.abs(W - ref).max() < tolerance(fed_train)
    assert np.abs(ref).max() > 0.1


def test_fast_preset_adapts_its_schedule():
    """N = 8192 has one level too few for an iteration above its refresh level: it refreshes the
    per-sample batch mid-iteration, and still trains the same models (to the precision of scale 2^30)."""
    fed = mpclr.Federation(manifest="exploration", hospitals=3, preset="fast")
    X, y = make_data(250, 3, seed=2)
    plan = TrainingPlan(sigmoid_poly(3, 8.0), SCHEDULE[:3], bound_bits=4)
    res, W, ref = run(fed, X, y, 3, plan, workers=0)
    assert res.trainer.log.refreshes > len(plan.schedule) + 1
    assert np.abs(W - ref).max() < 2e-2
    fed.close()


def test_prepare_needs_every_block(fed_train):
    from mpclr.training.encrypted import EncryptedTrainer
    from mpclr.training.layout import Layout

    layout = Layout(fed_train.params.slots, 100, 2)
    tr = EncryptedTrainer(fed_train.server, layout, 3, TrainingPlan(sigmoid_poly(3, 8.0), SCHEDULE[:1]))
    with pytest.raises(ProtocolError, match="no party contributed"):
        tr.prepare(np.arange(100) % 2, np.array([50, 50]))
    with pytest.raises(ProtocolError, match="prepare"):
        tr.train()


def test_layout_rejects_foreign_blocks(fed_train):
    from mpclr.training.encrypted import EncryptedTrainer
    from mpclr.training.layout import Layout

    layout = Layout(fed_train.params.slots, 100, 2)
    tr = EncryptedTrainer(fed_train.server, layout, 3, TrainingPlan(sigmoid_poly(3, 8.0), SCHEDULE[:1]))
    low = fed_train.server.multiply_plain(fed_train.hospitals[0].encrypt([1.0]), 1.0)
    with pytest.raises(ProtocolError, match="not the top"):
        tr.add_data(0, 0, 0, fed_train.server.export_ciphertext(low))


def test_training_goes_on_when_a_key_holder_dies_in_two_of_three():
    fed = mpclr.Federation(manifest="exploration", hospitals=3, threshold=2, preset="train")
    X, y = make_data(200, 3, seed=4)
    for p, rows in zip(fed.hospitals, np.array_split(np.arange(len(y)), 3)):
        p.load_data(X[rows], y[rows], rows)
    plan = TrainingPlan(sigmoid_poly(3, 8.0), SCHEDULE)

    def kill_after_first(done, total):
        if done == 1:
            fed.network.down.add("hospital-3")

    res = run_encrypted_cv(fed, folds=3, plan=plan, workers=0, progress=kill_after_first)
    W = res.decrypt_models(fed)
    ref = nesterov_reference(design_rows(X, y, res.mean, res.std), res.fold_of_row, 3, plan)
    assert np.abs(W - ref).max() < tolerance(fed)
    assert fed.server.unavailable == {"hospital-3"}
    fed.close()
