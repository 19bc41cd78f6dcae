"""Checks shared by the API tests."""

from __future__ import annotations

import hashlib

import numpy as np


def pin_fold_keys(fed) -> None:
    """Tests only: fixed fold keys instead of the hospitals' secret ones, so that a test whose bar depends
    on the folds (accuracy against scikit-learn) sees the same folds in every run."""
    for p in fed.hospitals:
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


def refresh_flooding(params, parties: int) -> float:
    """The standard deviation a collective refresh's smudging adds to one slot (value units at the preset's
    scale): each hospital's Gaussian of sigma 2^refresh_smudging_bits per coefficient, summed over the
    hospitals and over the N coefficients a slot evaluates (a real part: N / 2 of their variance)."""
    bits = getattr(params, "refresh_smudging", params.smudging_bits)
    return 2.0**bits * np.sqrt(parties * params.n / 2) / 2.0**params.scale_bits


def decryption_flooding(params, parties: int) -> float:
    """The same for a decryption's smudging."""
    return 2.0**params.smudging_bits * np.sqrt(parties * params.n / 2) / 2.0**params.scale_bits


def exact_decrypt(fed, ct) -> np.ndarray:
    """TESTS ONLY: the slots of a server-side ciphertext decrypted without smudging, each hospital's
    s_i c1 made in its own place (the key shares are never summed): what the ciphertext holds, to its CKKS
    noise, where a real decryption would add every hospital's smudging."""
    from mpclr.protocols.decryption import ThresholdDecryption
    from mpclr.ring import SecretRandom
    from mpclr.seal.format import CiphertextData, PlaintextData

    data = CiphertextData.from_bytes(ct.to_bytes(compr_mode="none"))
    level = fed.ctx.check_ciphertext(data)
    dec, rng, ring = ThresholdDecryption(fed.ctx, smudging_bits=0), SecretRandom(), fed.ctx.ring(level)
    shares = [dec.gen_share(p._share_for(None), data.data[1], level, rng).data for p in fed.hospitals]
    plain = PlaintextData(fed.ctx.level_parms_id(level), data.scale, ring.add(data.data[0], ring.sum(shares)))
    return fed.ctx.decode(fed.ctx.pyfhel(), plain)


def exact_scores(fed, ev) -> np.ndarray:
    """TESTS ONLY: the scores a SecureEvaluation compared, in global row order, decrypted exactly."""
    rows = np.arange(ev.layout.n_rows)
    block, _, first = ev.layout.place(rows)
    out = np.full(rows.size, np.nan)
    for b, s in ev.scores.items():
        sel = block == b
        out[sel] = exact_decrypt(fed, s.ct)[first[sel]] * ev.D
    return out


def assert_fold_aucs_close(study, reference, X, y, weight_tol: float, bound: float = 0.002) -> None:
    """The fold AUCs that the weights' tolerance promises: within `bound` of the reference's, except that
    pairs whose reference scores lie within twice the largest score shift `weight_tol` allows (a row's
    shift is at most weight_tol x (1 + |z|_1)) may swap. A fold of 60 rows has about 30 x 30 pairs, so one
    such near tie is 0.0011 of AUC: a flat `bound` would fail on the ties the CKKS noise may break."""
    from sklearn.metrics import roc_auc_score

    from mpclr.pipeline import fold_scores

    folds = np.asarray(study["fold_of_row"])
    y = np.asarray(y)
    Z = (np.asarray(X, dtype=np.float64) - np.asarray(study["mean"])) / np.asarray(study["std"])
    a, b = fold_scores(Z, study["models"], folds), fold_scores(Z, reference["models"], folds)
    shift = weight_tol * float((1 + np.abs(Z).sum(axis=1)).max())
    for k in range(len(study["models"])):
        pos, neg = (folds == k) & (y == 1), (folds == k) & (y == 0)
        near = float((np.abs(b[pos][:, None] - b[neg][None, :]) <= 2 * shift).mean())
        diff = abs(roc_auc_score(y[folds == k], a[folds == k]) - roc_auc_score(y[folds == k], b[folds == k]))
        assert diff <= max(bound, near), f"fold {k}: AUC differs by {diff:.5f} ({near:.5f} of pairs near ties)"
