"""The public slot layout shared by hospitals and the server."""

import numpy as np
import pytest

from mpclr.errors import ParameterError
from mpclr.training.layout import Layout


def test_binary_groups_fill_slots_exactly():
    lay = Layout(8192, 49152, 10)
    assert [(g.models, g.m, g.samples_per_block, g.blocks) for g in lay.groups] == [
        (tuple(range(8)), 8, 1024, 48),
        ((8, 9), 2, 4096, 12),
    ]
    assert lay.rotation_steps() == [2**k for k in range(1, 13)]


def test_small_data_take_one_padded_group():
    lay = Layout(8192, 569, 5)
    (g,) = lay.groups
    assert g.models == (0, 1, 2, 3, 4) and g.m == 8 and g.blocks == 1
    assert lay.sum_steps(g) == [8 * 2**k for k in range(10)]


def test_pack_and_unpack_round_trip():
    lay = Layout(64, 20, 3)  # one group of 4 model slots, 16 samples per block, 2 blocks... or padded
    g = lay.groups[0]
    values = np.arange(20, dtype=float)
    rows = np.array([1, 5, 17])
    block = 1 if g.samples_per_block < 20 else 0
    packed = lay.pack_rows(g, block, values[rows], rows)
    grid = packed.reshape(g.samples_per_block, g.m)
    for r in rows:
        if lay.rows_of_block(g, block).start <= r < lay.rows_of_block(g, block).stop:
            assert np.all(grid[r - lay.rows_of_block(g, block).start] == values[r])
    w = np.array([0.5, -1.0, 2.0])
    assert lay.unpack_models(g, lay.pack_models(g, w)) == {k: w[k] for k in g.models}


def test_masks_exclude_each_models_fold():
    lay = Layout(64, 12, 3)
    g = lay.groups[0]
    folds = np.arange(12) % 3
    mask = lay.pack_mask(g, 0, folds, np.array([1.0, 2.0, 3.0])).reshape(g.samples_per_block, g.m)
    for i in range(12):
        for j, k in enumerate(g.models):
            assert mask[i, j] == (0.0 if folds[i] == k else k + 1.0)
    assert np.all(mask[:, len(g.models) :] == 0) and np.all(mask[12:] == 0)


def test_bad_layouts():
    with pytest.raises(ParameterError, match="power of two"):
        Layout(100, 10, 2)
    with pytest.raises(ParameterError, match="folds"):
        Layout(64, 10, 0)


def test_small_folds_pack_features_side_by_side():
    """Breast cancer's shape: folds of about 114 rows fit a lane of 1024 eight times, so 8 of the 31 columns
    lie side by side (segments of 1024 slots, 128 samples each): 4 weight ciphertexts, 5 blocks."""
    sizes = [114, 114, 114, 114, 113]
    lay = Layout(8192, 569, 5, sizes, 31)
    (g,) = lay.groups
    assert (g.segments, g.samples_per_block, g.blocks, g.chunks(31)) == (8, 128, 5, 4)
    assert lay.segment_steps(g) == [1024, 2048, 4096] and lay.sum_steps(g) == [8 * 2**k for k in range(7)]
    assert Layout.from_description(lay.describe()).groups == lay.groups
    first = lay.first_positions(g).reshape(8, 128, 8)
    assert first[:, 0].all() and first.sum() == 64
    # a chunk's segments hold its features; a weight ciphertext each model's weight in its lane
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(569, 31))
    rows = np.arange(130, 300)
    packed = lay.pack_chunk(g, 1, 3, Z[rows], rows).reshape(8, 128, 8)
    for f in range(8):
        j = 3 * 8 + f
        want = Z[128:256, j] if j < 31 else np.zeros(128)
        held = (np.arange(128, 256) >= 130)
        assert np.allclose(packed[f, :, 2], np.where(held, want, 0.0))
    W = rng.normal(size=(5, 31))
    for c in range(4):
        back = lay.unpack_weights(g, c, lay.pack_weights(g, c, W), 31)
        want = {(k, j): W[k, j] for k in range(5) for j in range(8 * c, min(8 * c + 8, 31))}
        assert back.keys() == want.keys() and all(abs(back[key] - want[key]) < 1e-12 for key in want)
    # fold sizes that fill a lane (paper scale) keep one feature per ciphertext, unless the unpacking is on
    sizes = [4916] * 2 + [4915] * 8
    assert not Layout(8192, 49152, 10, sizes, 11).packed


def test_folds_filling_a_lane_pack_and_unpack_when_asked(monkeypatch):
    """With TRAIN_SEGMENTS = 4, paper scale: 4 features side by side in the training, one per trained weight
    ciphertext (the evaluation's layout: the last refresh unpacks)."""
    from mpclr.training import layout as training_layout

    monkeypatch.setattr(training_layout, "TRAIN_SEGMENTS", 4)
    paper = Layout(8192, 49152, 10, [4916] * 2 + [4915] * 8, 11)
    assert [(g.segments, g.unpack, g.chunks(11), g.final_chunks(11), g.blocks) for g in paper.groups] == [
        (4, True, 3, 11, 192), (4, True, 3, 11, 48)]
    mask = paper.segment_first_positions(paper.groups[0], 2).reshape(4, 256, 8)
    assert mask.sum() == 8 and mask[2, 0].all()
