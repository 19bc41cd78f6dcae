"""Issue 12: the smudging of every study preset hides the key-dependent noise of everything a study decrypts
or refreshes. Measured on a small real study with tests/noise_probe.py (every ciphertext beside its noise-free
shadow; each hospital's s_i c1 made in its own place, the key never summed)."""

import math

import pytest

from mpclr.params import PRESETS

from .noise_probe import measure_study

STUDY_PRESETS = [name for name, p in PRESETS.items() if getattr(p, "study", True)]


@pytest.mark.parametrize("name", STUDY_PRESETS)
def test_smudging_is_2_to_14_above_the_noise_of_everything_a_study_reveals(name):
    # share-keyed uploads: the noisier mode (the server's switch adds to a fresh encryption's noise); a probe
    # federation plans no study, so "auto" would give public-key
    params = PRESETS[name].with_(upload="share-keyed")
    summary = measure_study(params, "synthetic:150x3", parties=3)
    kinds = set(summary)
    # the probe saw every kind of ciphertext a study decrypts or refreshes
    assert {"decrypt: aggregate", "decrypt_many: fold models", "receive: counts"} <= kinds, kinds
    for part in ("training, update", "training, final models", "evaluation, comparison"):
        assert any(k.startswith(f"refresh input: {part}") for k in kinds), (part, kinds)
    refresh_sigma = getattr(params, "refresh_smudging", params.smudging_bits)
    for kind, s in summary.items():
        noise = math.log2(s["max"])
        if kind.startswith("refresh input"):  # as the hospitals' smudging sees it (after any scaling by the server)
            assert refresh_sigma >= 20 and refresh_sigma >= noise + 14, (kind, refresh_sigma, noise)
            assert noise <= params.refresh_noise_bits, (kind, noise)  # the preset's measured bound holds here
        elif kind.startswith(("decrypt", "receive")):
            sigma = params.smudging_bits
            assert sigma >= 20 and sigma >= noise + 14, (kind, sigma, noise)
            assert noise <= params.noise_bits, (kind, noise)
        else:  # refresh outputs: what a decryption of a refreshed model sees, far below the decryption's bound
            assert kind.startswith("refresh output") and noise <= params.noise_bits - 4, (kind, noise)
