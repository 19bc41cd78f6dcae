import numpy as np
import pytest

from mpclr.ring import CommonRandomString, Ring, SecretRandom
from mpclr.ring.sampling import CBD_ETA

N = 8192
Q = [562949952798721, 1073430529]


def test_cbd_moments_and_support():
    e = SecretRandom().cbd(200_000)
    assert abs(e.mean()) < 0.05
    assert abs(e.var() - CBD_ETA / 2) < 0.2
    assert e.min() >= -CBD_ETA and e.max() <= CBD_ETA


def test_ternary_uniform():
    t = SecretRandom().ternary(300_000)
    counts = np.array([(t == v).sum() for v in (-1, 0, 1)]) / t.size
    assert set(np.unique(t)) == {-1, 0, 1}
    assert np.all(np.abs(counts - 1 / 3) < 0.005)


def test_gaussian_sigma():
    g = SecretRandom().gaussian(200_000, 2.0**20)
    assert abs(g.std() / 2.0**20 - 1) < 0.01
    assert abs(g.mean()) < 2.0**20 * 0.01


def test_secret_random_is_fresh_and_unpicklable():
    import pickle

    a, b = SecretRandom(), SecretRandom()
    assert a.bytes(32) != b.bytes(32)
    with pytest.raises(TypeError):
        pickle.dumps(a)


def test_uniform_polys_are_reduced_and_cover_range():
    r = Ring(N, Q)
    u = SecretRandom().uniform_poly(r)
    assert r.is_reduced(u)
    # top bits are used: the maximum of 8192 uniform values is close to q
    assert all(int(u[i].max()) > q * 0.99 for i, q in enumerate(Q))


def test_crs_deterministic_and_label_separated():
    r = Ring(N, Q)
    a1 = CommonRandomString(b"s" * 32).uniform_poly(r, "cpk/a")
    a2 = CommonRandomString(b"s" * 32).uniform_poly(r, "cpk/a")
    b = CommonRandomString(b"s" * 32).uniform_poly(r, "rlk/a/0")
    c = CommonRandomString(b"t" * 32).uniform_poly(r, "cpk/a")
    assert np.array_equal(a1, a2)
    assert not np.array_equal(a1, b) and not np.array_equal(a1, c)
    assert r.is_reduced(a1)
    with pytest.raises(ValueError):
        a1[0, 0] = 1  # public and shared: read-only


def test_crs_needs_a_real_seed():
    with pytest.raises(ValueError, match="seed"):
        CommonRandomString(b"short")
