"""The exact arithmetic layer against Python integers and a schoolbook negacyclic product."""

import numpy as np
import pytest

from mpclr.ring import Ring
from mpclr.ring.rns import minimal_primitive_root

SMALL_N = 16
# primes that are 1 mod 2N = 32, of very different sizes (including near the 61-bit limit)
SMALL_PRIMES = [97, 193, 1073479681, 562949952798721, 2305843009213554689]


def negacyclic(a, b, q):
    n = len(a)
    out = [0] * n
    for i in range(n):
        for j in range(n):
            k = i + j
            if k < n:
                out[k] += a[i] * b[j]
            else:
                out[k - n] -= a[i] * b[j]
    return [x % q for x in out]


def test_primes_fit():
    for q in SMALL_PRIMES:
        assert (q - 1) % (2 * SMALL_N) == 0


@pytest.fixture
def ring():
    return Ring(SMALL_N, SMALL_PRIMES)


def test_ntt_product_is_negacyclic_convolution(ring, rng):
    a = [[int(x) % q for x in rng.integers(0, 2**62, SMALL_N)] for q in ring.moduli]
    b = [[int(x) % q for x in rng.integers(0, 2**62, SMALL_N)] for q in ring.moduli]
    A = ring.ntt(np.array(a, dtype=np.uint64))
    B = ring.ntt(np.array(b, dtype=np.uint64))
    prod = ring.intt(ring.mul(A, B))
    for r, q in enumerate(ring.moduli):
        assert [int(v) for v in prod[r]] == negacyclic(a[r], b[r], q)


def test_ntt_round_trip_and_reduced(ring, rng):
    a = np.stack([rng.integers(0, q, SMALL_N, dtype=np.uint64) for q in ring.moduli])
    fa = ring.ntt(a)
    assert ring.is_reduced(fa)
    assert np.array_equal(ring.intt(fa), a)


def test_ntt_evaluates_at_seal_points(ring, rng):
    """Slot i of SEAL's NTT is a(psi^(2 bitrev(i) + 1)) with psi the minimal primitive 2N-th root."""
    from mpclr.ring.rns import bit_reverse

    q = ring.moduli[2]
    a = [int(x) for x in rng.integers(0, q, SMALL_N)]
    fa = ring.sub_ring([2]).ntt(np.array([a], dtype=np.uint64))[0]
    psi = minimal_primitive_root(2 * SMALL_N, q)
    logn = SMALL_N.bit_length() - 1
    for i in range(SMALL_N):
        point = pow(psi, 2 * bit_reverse(i, logn) + 1, q)
        assert int(fa[i]) == sum(c * pow(point, k, q) for k, c in enumerate(a)) % q


def test_minimal_root_is_minimal():
    q, degree = 97, 32
    root = minimal_primitive_root(degree, q)
    primitive = [x for x in range(1, q) if pow(x, degree // 2, q) == q - 1 and pow(x, degree, q) == 1]
    assert root == min(primitive)


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
def test_elementwise_against_python_ints(ring, rng, op):
    edge = []
    for q in ring.moduli:
        row = [0, 1, q - 1, q - 2, q // 2, (q + 1) // 2]
        row += [int(x) % q for x in rng.integers(0, 2**63, SMALL_N - len(row))]
        edge.append(row)
    other = [list(reversed(r)) for r in edge]
    a, b = np.array(edge, dtype=np.uint64), np.array(other, dtype=np.uint64)
    got = getattr(ring, op)(a, b)
    f = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y}[op]
    for r, q in enumerate(ring.moduli):
        assert [int(v) for v in got[r]] == [f(x, y) % q for x, y in zip(edge[r], other[r])]


def test_mulmod_large_random_against_python_ints():
    q = 2305843009213554689  # 61 bits: products near 2^122 stress the Barrett reduction
    r = Ring(SMALL_N, [q])
    g = np.random.default_rng(7)
    for _ in range(50):
        a = g.integers(0, q, (1, SMALL_N), dtype=np.uint64)
        b = g.integers(0, q, (1, SMALL_N), dtype=np.uint64)
        got = r.mul(a, b)
        assert [int(v) for v in got[0]] == [int(x) * int(y) % q for x, y in zip(a[0], b[0])]


def test_stacks_and_broadcast(ring, rng):
    a = np.stack([np.stack([rng.integers(0, q, SMALL_N, dtype=np.uint64) for q in ring.moduli]) for _ in range(3)])
    s = a[0].copy()
    prod = ring.mul(a, s)
    for k in range(3):
        assert np.array_equal(prod[k], ring.mul(a[k], s))
    assert np.array_equal(ring.intt(ring.ntt(a)), a)


def test_lift_signed_and_crt(ring):
    coeffs = np.array([0, 1, -1, 5, -7, 2**40, -(2**40), 96] + [3] * (SMALL_N - 8), dtype=np.int64)
    lifted = ring.from_signed(coeffs)
    for r, q in enumerate(ring.moduli):
        assert [int(v) for v in lifted[r]] == [int(c) % q for c in coeffs]
    assert ring.to_centered_int_list(lifted) == [int(c) for c in coeffs]


def test_automorphism_matches_coefficient_definition(ring, rng):
    """sigma_k(a)(X) = a(X^k) mod X^N + 1, checked through the NTT."""
    q = ring.moduli[3]
    sub = ring.sub_ring([3])
    a = [int(x) for x in rng.integers(0, q, SMALL_N)]
    for k in (3, 9, 2 * SMALL_N - 1, 5):
        expect = [0] * SMALL_N
        for i, c in enumerate(a):
            e = (i * k) % (2 * SMALL_N)
            if e < SMALL_N:
                expect[e] = (expect[e] + c) % q
            else:
                expect[e - SMALL_N] = (expect[e - SMALL_N] - c) % q
        got = sub.intt(sub.automorphism_ntt(sub.ntt(np.array([a], dtype=np.uint64)), k))[0]
        assert [int(v) for v in got] == expect


def test_bad_inputs_give_clear_errors(ring):
    with pytest.raises(ValueError, match="power of two"):
        Ring(12, [97])
    with pytest.raises(ValueError, match="1 mod 2N"):
        Ring(16, [101])
    with pytest.raises(ValueError, match="shape"):
        ring.ntt(np.zeros((2, SMALL_N), dtype=np.uint64))
    with pytest.raises(ValueError, match="uint64"):
        ring.ntt(np.zeros(ring.shape, dtype=np.int64))
