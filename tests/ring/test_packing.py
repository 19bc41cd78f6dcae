"""Residue packing (mpclr.ring.packing) against numpy: every width, stacks, and malformed input."""

import numpy as np
import pytest

from mpclr.errors import FormatError
from mpclr.ring.packing import pack_residues, unpack_residues


@pytest.mark.parametrize("top", [1, 7, 8, 9, 31, 32, 33, 49, 50, 60, 63, 64])
def test_round_trip_at_every_width(top):
    rng = np.random.default_rng(top)
    widths = [top, max(1, top - 3), top]
    rows = [rng.integers(0, 2 ** min(w, 63), size=16, dtype=np.uint64) for w in widths]
    for r, w in zip(rows, widths):
        r[0] = np.uint64((1 << w) - 1)  # the widest value each row may hold
    data = np.stack([np.stack(rows), np.stack(rows)[::-1].copy()])  # shape (2, 3, 16)
    raw = b"head" + pack_residues(data)
    got = unpack_residues(raw, 4, data.shape, [64] * 3, "test")
    assert np.array_equal(got, data)
    assert len(raw) == 4 + 3 + sum(2 * 16 * w // 8 for w in widths)  # the stack has 2 rows per prime


def test_malformed_input_is_refused():
    data = np.random.default_rng(0).integers(0, 2**50, size=(2, 64), dtype=np.uint64)
    raw = pack_residues(data)
    with pytest.raises(FormatError, match="truncated"):
        unpack_residues(raw[:-1], 0, data.shape, [50, 50], "share")
    with pytest.raises(FormatError, match="truncated"):
        unpack_residues(raw + b"\0", 0, data.shape, [50, 50], "share")
    with pytest.raises(FormatError, match="truncated header"):
        unpack_residues(raw[:1], 0, data.shape, [50, 50], "share")
    with pytest.raises(FormatError, match="exceed the primes"):
        unpack_residues(raw, 0, data.shape, [50, 49], "share")
