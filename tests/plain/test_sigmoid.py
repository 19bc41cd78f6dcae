"""Sigmoid polynomials: HELR's coefficients, L2 optimality, symmetry, error by degree."""

import numpy as np
import pytest

from mpclr.errors import ParameterError
from mpclr.plain.sigmoid import DEGREES, evaluate, max_error, sigmoid, sigmoid_poly


def test_degree_3_on_8_reproduces_helr():
    c = sigmoid_poly(3, 8.0)
    assert c[0] == 0.5 and c[2] == 0.0
    assert c[1] == pytest.approx(0.15012, rel=1e-3)
    assert c[3] == pytest.approx(-0.001593, rel=1e-3)


@pytest.mark.parametrize("degree", DEGREES)
@pytest.mark.parametrize("interval", [4.0, 8.0, 16.0])
def test_is_the_continuous_l2_projection(degree, interval):
    """Normal equations: the residual sigmoid - p is orthogonal to every odd power on [-R, R]."""
    c = sigmoid_poly(degree, interval)
    x = np.linspace(-interval, interval, 400_001)
    resid = sigmoid(x) - evaluate(c, x)
    for k in range(1, degree + 1, 2):
        moment = np.trapezoid(resid * (x / interval) ** k, x) / interval
        assert abs(moment) < 1e-7
    assert np.all(c[2::2] == 0)


@pytest.mark.parametrize("degree", DEGREES)
def test_odd_around_one_half(degree):
    c = sigmoid_poly(degree, 8.0)
    x = np.linspace(-8, 8, 101)
    np.testing.assert_allclose(evaluate(c, x) + evaluate(c, -x), 1.0, atol=1e-12)


def test_max_error_decreases_with_degree():
    errs = [max_error(d, 8.0) for d in DEGREES]
    assert errs[0] > errs[1] > errs[2]
    assert 0.10 < errs[0] < 0.12 and errs[2] < 0.035


def test_evaluate_is_horner():
    c = [0.5, 0.2, 0.0, -0.01]
    x = np.array([-3.0, 0.0, 2.5])
    np.testing.assert_allclose(evaluate(c, x), np.polyval(c[::-1], x))


def test_returned_coefficients_are_a_copy():
    c = sigmoid_poly(5, 8.0)
    c[1] = 99.0
    assert sigmoid_poly(5, 8.0)[1] != 99.0


@pytest.mark.parametrize("degree, interval", [(4, 8.0), (1, 8.0), (True, 8.0), (3, 0.0), (3, -8.0),
                                              (3, float("nan")), (3, "eight")])
def test_bad_parameters(degree, interval):
    with pytest.raises(ParameterError, match="parameter (degree|interval)"):
        sigmoid_poly(degree, interval)


def test_exact_sigmoid_is_stable_for_large_inputs():
    with np.errstate(over="raise"):
        s = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(s, [0.0, 0.5, 1.0])
