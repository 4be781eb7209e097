"""The input checks of ``amtl_cvx._validation``, message by message (issue 17, item 4).

Written against the mutants that survived the rest of the suite: each test pins one
behaviour a plausible edit could break (a bound made strict, a message naming the wrong
argument, a default changed).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from amtl_cvx._validation import check_array, check_scalar, check_transfer_matrix


def _exact(message: str) -> str:
    return "^" + re.escape(message) + "$"


# --------------------------------------------------------------------------------------
# check_array
# --------------------------------------------------------------------------------------
def test_check_array_returns_float64_values():
    out = check_array([[1, 2], [3, 4]], "X")
    assert out.dtype == np.float64 and out.shape == (2, 2)
    np.testing.assert_array_equal(out, [[1.0, 2.0], [3.0, 4.0]])
    b = check_array(np.array([True, False]), "mask")
    assert b.dtype == np.float64
    np.testing.assert_array_equal(b, [1.0, 0.0])
    f32 = check_array(np.ones(3, dtype=np.float32), "v", ndim=1)
    assert f32.dtype == np.float64
    # any dimension when ndim is not given
    assert check_array(np.zeros((2, 3, 4)), "Z").shape == (2, 3, 4)
    assert check_array(5, "s").shape == ()


@pytest.mark.parametrize(
    "value, dtype",
    [(np.array([1, "a"], dtype=object), "object"), (np.array(["a", "b"]), "<U1"),
     (np.array([b"x"]), "|S1")],
)
def test_check_array_refuses_non_numeric(value, dtype):
    with pytest.raises(ValueError, match=_exact(f"Xs[0] must be numeric, got dtype {dtype}")):
        check_array(value, "Xs[0]")


def test_check_array_refuses_complex_and_names_it():
    with pytest.raises(ValueError, match=_exact("W must be real, got a complex array")):
        check_array(np.array([1 + 2j, 3.0]), "W")


def test_check_array_ndim_message():
    with pytest.raises(ValueError, match=_exact("y must be 2-dimensional, got shape (3,)")):
        check_array(np.ones(3), "y", ndim=2)
    with pytest.raises(ValueError, match=_exact("y must be 1-dimensional, got shape (1, 3)")):
        check_array(np.ones((1, 3)), "y", ndim=1)
    assert check_array(np.ones((2, 2)), "y", ndim=2).shape == (2, 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_array_refuses_non_finite(bad):
    with pytest.raises(ValueError, match=_exact("c contains NaN or infinite values")):
        check_array([1.0, bad, 2.0], "c", ndim=1)


# --------------------------------------------------------------------------------------
# check_scalar
# --------------------------------------------------------------------------------------
def test_check_scalar_values_and_type():
    for value in (3, 2.5, np.float64(0.25), np.int64(7)):
        out = check_scalar(value, "lam")
        assert type(out) is float and out == float(value)
    assert check_scalar(0, "mu") == 0.0  # the default bound 0 is not strict
    assert check_scalar(0.0, "mu", strict=False) == 0.0
    assert check_scalar(1e-300, "lam", strict=True) == 1e-300
    assert check_scalar(-5.0, "shift", min_value=None) == -5.0
    assert check_scalar(-5.0, "shift", min_value=None, strict=True) == -5.0


@pytest.mark.parametrize("value", [True, False, "1.0", None, [1.0], 1 + 0j])
def test_check_scalar_refuses_non_reals(value):
    with pytest.raises(ValueError, match=_exact(f"lam must be a real number, got {value!r}")):
        check_scalar(value, "lam")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_check_scalar_refuses_non_finite(value):
    with pytest.raises(ValueError, match=_exact(f"mu must be finite, got {value!r}")):
        check_scalar(value, "mu", min_value=None)


def test_check_scalar_bounds():
    with pytest.raises(ValueError, match=_exact("mu must be >= 0.0, got -1")):
        check_scalar(-1, "mu")
    with pytest.raises(ValueError, match=_exact("mu must be >= 0.0, got -1e-300")):
        check_scalar(-1e-300, "mu")
    with pytest.raises(ValueError, match=_exact("lam must be > 0.0, got 0")):
        check_scalar(0, "lam", strict=True)
    with pytest.raises(ValueError, match=_exact("lam must be > 0.0, got -2.0")):
        check_scalar(-2.0, "lam", strict=True)
    # a bound other than 0
    with pytest.raises(ValueError, match=_exact("alpha must be >= 1.0, got 0.5")):
        check_scalar(0.5, "alpha", min_value=1.0)
    assert check_scalar(1.0, "alpha", min_value=1.0) == 1.0
    with pytest.raises(ValueError, match=_exact("alpha must be > 1.0, got 1.0")):
        check_scalar(1.0, "alpha", min_value=1.0, strict=True)
    assert check_scalar(1.5, "alpha", min_value=1.0, strict=True) == 1.5


# --------------------------------------------------------------------------------------
# check_transfer_matrix
# --------------------------------------------------------------------------------------
def test_check_transfer_matrix_accepts_feasible():
    B = [[0, 0.5, 0], [0, 0, 0], [2, 0, 0]]  # zeros off the diagonal are feasible
    out = check_transfer_matrix(B, 3)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, B)
    np.testing.assert_array_equal(check_transfer_matrix(np.zeros((1, 1)), 1), [[0.0]])


def test_check_transfer_matrix_messages_name_the_argument():
    with pytest.raises(ValueError, match=_exact("B must have shape (3, 3), got (2, 2)")):
        check_transfer_matrix(np.zeros((2, 2)), 3)
    with pytest.raises(ValueError, match=_exact("B must be nonnegative (min entry -0.5)")):
        check_transfer_matrix([[0, -0.5], [1, 0]], 2)
    with pytest.raises(ValueError, match=_exact("B must have a zero diagonal")):
        check_transfer_matrix([[0, 1], [1, 1e-300]], 2)
    with pytest.raises(ValueError, match=_exact("B0 must have shape (2, 2), got (3, 3)")):
        check_transfer_matrix(np.zeros((3, 3)), 2, "B0")
    with pytest.raises(ValueError, match=_exact("B0 must be nonnegative (min entry -1)")):
        check_transfer_matrix([[0, -1], [0, 0]], 2, name="B0")
    with pytest.raises(ValueError, match=_exact("B0 must have a zero diagonal")):
        check_transfer_matrix([[1, 0], [0, 0]], 2, name="B0")
    with pytest.raises(ValueError, match=_exact("B0 contains NaN or infinite values")):
        check_transfer_matrix([[0, np.nan], [0, 0]], 2, name="B0")
    with pytest.raises(ValueError, match=_exact("B0 must be 2-dimensional, got shape (4,)")):
        check_transfer_matrix(np.zeros(4), 2, name="B0")


def test_check_array_does_not_copy_float64_input():
    """A float64 array is validated in place, not copied (inputs can be large)."""
    a = np.arange(6.0).reshape(2, 3)
    out = check_array(a, "X", ndim=2)
    assert np.shares_memory(out, a)


class _Unconvertible:
    def __array__(self, *args, **kwargs):
        raise RuntimeError("no array here")


def test_check_array_names_an_unconvertible_argument():
    with pytest.raises(ValueError, match=_exact("Xs[1] could not be converted to an array: no array here")):
        check_array(_Unconvertible(), "Xs[1]")
