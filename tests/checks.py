"""Checks shared by the API tests."""

from __future__ import annotations

import hashlib

import numpy as np


def pin_fold_keys(fed) -> None:
    """Tests only: fixed fold keys instead of the hospitals' secret ones, so that a test whose bar depends
    on the folds (accuracy against scikit-learn) sees the same folds in every run."""
    for p in fed.parties:
        p._fold_key = hashlib.sha256(b"mpclr tests: the fold key of " + p.name.encode()).digest()

# SEAL's key switching splits c1 into RNS digits in [0, q_j), not centred on 0: the digits' mean q_j / 2
# times the rotation key's error is an offset that depends on the key, not on the ciphertext, and lands
# in the one slot whose root of unity is nearest 1 (slot 0 after the rotation). Single-key SEAL shows it
# too. Measured at the fast preset (scale 2^30, 49-bit q_0), 3 parties: 3e-4 to 2.3e-3 over 12 key sets.
# Every other slot keeps the precision of a fresh encryption.
ROTATION_OFFSET_TOL = 1e-2


def assert_rotated(out, expected, tol: float, key_switches: int = 1) -> None:
    """`out` matches `expected` within `tol` except in at most one slot per key switch, which is within
    ROTATION_OFFSET_TOL (see above). A wrong rotation misses everywhere and fails."""
    err = np.abs(np.asarray(out) - np.asarray(expected))
    assert err.max() < ROTATION_OFFSET_TOL, f"max error {err.max():.2e}"
    rest = np.sort(err)[: err.size - key_switches]
    assert rest.max() < tol, f"error {rest.max():.2e} outside the key-switch offset slots"
