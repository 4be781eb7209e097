"""``amtl_cvx.problems.objective`` against hand-written references (issue 17, item 4).

Every function is evaluated at non-optimal points where each term of the objective is
nonzero and of a different size, against a reference written with explicit loops (not
the vectorised formula under test), and every input check is exercised with its message.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from amtl_cvx.data import LOSSES, MultiTaskData
from amtl_cvx.problems.objective import (
    _check_c,
    _check_W,
    amtl_objective,
    bstep_objective,
    curriculum_objective,
    imbalance_weights,
    loss_weights,
    task_loss,
    task_losses,
    wstep_objective,
)


def _exact(message: str) -> str:
    return "^" + re.escape(message) + "$"


def _sq(X, y, w):
    n = X.shape[0]
    return sum((y[i] - sum(X[i, j] * w[j] for j in range(X.shape[1]))) ** 2 for i in range(n)) / (2 * n)


def _lg(X, y, w):
    n = X.shape[0]
    return sum(np.log1p(np.exp(-y[i] * sum(X[i, j] * w[j] for j in range(X.shape[1])))) for i in range(n)) / n


REF = {"squared": _sq, "logistic": _lg}


def _frob2(A):
    return sum(float(a) ** 2 for a in np.ravel(A))


@pytest.fixture
def problem():
    """Three tasks of different sizes, a non-symmetric feasible B, a non-optimal W."""
    rng = np.random.default_rng(7)
    ns, d = (5, 8, 3), 3
    Xs = [rng.standard_normal((n, d)) for n in ns]
    ys_sq = [rng.standard_normal(n) for n in ns]
    ys_lg = [np.where(rng.standard_normal(n) > 0, 1.0, -1.0) for n in ns]
    W = rng.standard_normal((d, 3))
    B = np.array([[0.0, 0.7, 0.0], [0.2, 0.0, 1.3], [0.0, 0.4, 0.0]])
    return Xs, ys_sq, ys_lg, W, B


# --------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------
def test_task_loss_hand_computed():
    X = np.array([[1.0, 2.0], [3.0, 4.0], [0.0, 1.0]])
    y = np.array([1.0, -1.0, 2.0])
    w = np.array([0.5, -1.0])
    # z = X w = [-1.5, -2.5, -1]; y - z = [2.5, 1.5, 3]; sum of squares 17.5; / (2 * 3)
    assert task_loss(X, y, w) == pytest.approx(17.5 / 6, rel=1e-15)
    assert task_loss(X, y, w, "squared") == pytest.approx(17.5 / 6, rel=1e-15)
    yl = np.array([1.0, -1.0, 1.0])
    # -y z = [1.5, -2.5, 1]
    expected = (np.log1p(np.exp(1.5)) + np.log1p(np.exp(-2.5)) + np.log1p(np.exp(1.0))) / 3
    assert task_loss(X, yl, w, "logistic") == pytest.approx(expected, rel=1e-14)
    assert isinstance(task_loss(X, y, w), float)


def test_task_loss_refuses_unknown_loss():
    X, y, w = np.eye(2), np.ones(2), np.zeros(2)
    with pytest.raises(ValueError, match=_exact(f"loss must be one of {LOSSES}, got 'hinge'")):
        task_loss(X, y, w, "hinge")


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_task_losses_per_task(problem, loss):
    Xs, ys_sq, ys_lg, W, _ = problem
    ys = ys_sq if loss == "squared" else ys_lg
    data = MultiTaskData(Xs, ys)
    out = task_losses(W, data, loss)
    assert out.shape == (3,)
    np.testing.assert_allclose(out, [REF[loss](Xs[t], ys[t], W[:, t]) for t in range(3)], rtol=1e-13)
    if loss == "squared":
        np.testing.assert_allclose(task_losses(W, data), out, rtol=0)


def test_check_W_message(problem):
    Xs, ys, _, W, _ = problem
    data = MultiTaskData(Xs, ys)
    with pytest.raises(ValueError, match=_exact("W must have shape (3, 3), got (3, 2)")):
        _check_W(W[:, :2], data)
    with pytest.raises(ValueError, match=_exact("W must be 2-dimensional, got shape (9,)")):
        _check_W(W.ravel(), data)
    np.testing.assert_array_equal(_check_W(W, data), W)


# --------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------
def test_imbalance_weights_hand_computed():
    np.testing.assert_array_equal(imbalance_weights(np.array([4, 16])), [1.0, 1.0])
    np.testing.assert_allclose(imbalance_weights(np.array([4, 16]), s=2.0, sigma=0.5), [1.0, 0.5], rtol=1e-15)
    np.testing.assert_allclose(imbalance_weights([1, 8], s=3.0), [3.0, 3.0], rtol=0)
    np.testing.assert_allclose(imbalance_weights([2, 8], sigma=1.0 / 3.0), [2 ** (-1 / 3), 0.5], rtol=1e-15)
    np.testing.assert_array_equal(imbalance_weights([1, 1]), [1.0, 1.0])  # n = 1 is allowed
    np.testing.assert_array_equal(imbalance_weights([5], s=0.0), [0.0])  # s = 0 is allowed


def test_imbalance_weights_checks():
    for bad in ([0, 3], [3, -1], [0.5, 2.0], [[1, 2]]):
        with pytest.raises(ValueError, match=_exact("n_samples must be a vector of positive counts")):
            imbalance_weights(np.array(bad))
    with pytest.raises(ValueError, match=_exact("s must be >= 0.0, got -1.0")):
        imbalance_weights([1, 2], s=-1.0)
    with pytest.raises(ValueError, match=_exact("sigma must be >= 0.0, got -0.5")):
        imbalance_weights([1, 2], sigma=-0.5)


def test_loss_weights_hand_computed():
    B = np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    c = np.array([1.0, 2.0, 5.0])
    # row sums of B: [3, 3, 0]
    np.testing.assert_allclose(loss_weights(B, c, 0.5), [1 + 0.5 * 1 * 3, 1 + 0.5 * 2 * 3, 1.0], rtol=1e-15)
    # absolute values: ||B[t, :]||_1
    np.testing.assert_allclose(loss_weights(-B, c, 0.5), [2.5, 4.0, 1.0], rtol=1e-15)


def test_check_c():
    np.testing.assert_array_equal(_check_c(None, 3), np.ones(3))
    np.testing.assert_array_equal(_check_c(np.array([0.0, 1.0, 2.0]), 3), [0.0, 1.0, 2.0])
    for bad in (np.ones(2), np.array([1.0, -1.0, 1.0])):
        with pytest.raises(ValueError, match=_exact("c must be a nonnegative vector of length 3")):
            _check_c(bad, 3)
    with pytest.raises(ValueError, match=_exact("c must be 1-dimensional, got shape (1, 3)")):
        _check_c(np.ones((1, 3)), 3)


# --------------------------------------------------------------------------------------
# the objectives
# --------------------------------------------------------------------------------------
def _ref_amtl(Xs, ys, W, B, lam, mu, loss, c, ridge, transfer_ridge):
    T = W.shape[1]
    total = 0.0
    for t in range(T):
        a = 1.0 + mu * c[t] * sum(abs(B[t, s]) for s in range(T))
        total += a * REF[loss](Xs[t], ys[t], W[:, t])
    for t in range(T):
        r = W[:, t] - sum(W[:, s] * B[s, t] for s in range(T))
        total += lam * float(r @ r)
    return total + ridge * _frob2(W) + transfer_ridge * _frob2(B)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_amtl_objective_hand_computed(problem, loss):
    Xs, ys_sq, ys_lg, W, B = problem
    ys = ys_sq if loss == "squared" else ys_lg
    data = MultiTaskData(Xs, ys)
    c = np.array([0.5, 2.0, 1.5])
    kw = dict(lam=0.3, mu=0.7, loss=loss, c=c, ridge=0.11, transfer_ridge=0.23)
    got = amtl_objective(W, B, data, **kw)
    assert got == pytest.approx(_ref_amtl(Xs, ys, W, B, 0.3, 0.7, loss, c, 0.11, 0.23), rel=1e-13)
    # each term on its own: changing one weight changes the value by exactly that term
    ref0 = _ref_amtl(Xs, ys, W, B, 0.3, 0.0, loss, np.ones(3), 0.0, 0.0)
    assert amtl_objective(W, B, data, lam=0.3, mu=0.0, loss=loss) == pytest.approx(ref0, rel=1e-13)


def test_amtl_objective_defaults(problem):
    """Defaults: squared loss, c = 1, no ridges."""
    Xs, ys, _, W, B = problem
    data = MultiTaskData(Xs, ys)
    got = amtl_objective(W, B, data, lam=0.3, mu=0.7)
    assert got == pytest.approx(_ref_amtl(Xs, ys, W, B, 0.3, 0.7, "squared", np.ones(3), 0.0, 0.0), rel=1e-13)
    assert isinstance(got, float)


def test_amtl_objective_checks(problem):
    Xs, ys, _, W, B = problem
    data = MultiTaskData(Xs, ys)
    kw = dict(lam=0.3, mu=0.7)
    with pytest.raises(ValueError, match=_exact("lam must be > 0.0, got 0.0")):
        amtl_objective(W, B, data, lam=0.0, mu=0.7)
    with pytest.raises(ValueError, match=_exact("mu must be >= 0.0, got -0.1")):
        amtl_objective(W, B, data, lam=0.3, mu=-0.1)
    assert amtl_objective(W, B, data, lam=0.3, mu=0) == pytest.approx(
        amtl_objective(W, np.zeros((3, 3)), data, lam=0.3, mu=0.5)
        + 0.3 * (_frob2(W - W @ B) - _frob2(W)), rel=1e-12)
    with pytest.raises(ValueError, match=_exact("ridge must be >= 0.0, got -1.0")):
        amtl_objective(W, B, data, ridge=-1.0, **kw)
    with pytest.raises(ValueError, match=_exact("transfer_ridge must be >= 0.0, got -1.0")):
        amtl_objective(W, B, data, transfer_ridge=-1.0, **kw)
    with pytest.raises(ValueError, match=_exact("B must have a zero diagonal")):
        amtl_objective(W, B + np.eye(3), data, **kw)
    with pytest.raises(ValueError, match=_exact("B must have shape (3, 3), got (2, 2)")):
        amtl_objective(W, B[:2, :2], data, **kw)
    with pytest.raises(ValueError, match=_exact("c must be a nonnegative vector of length 3")):
        amtl_objective(W, B, data, c=-np.ones(3), **kw)
    with pytest.raises(ValueError, match=_exact("W must have shape (3, 3), got (2, 3)")):
        amtl_objective(W[:2], B, data, **kw)
    with pytest.raises(ValueError, match=_exact(f"loss must be one of {LOSSES}, got 'hinge'")):
        amtl_objective(W, B, data, loss="hinge", **kw)


def test_bstep_objective_hand_computed(problem):
    _, _, _, W, B = problem
    p = np.array([0.5, 2.0, 0.0])
    expected = 0.4 * _frob2(W - W @ B) + sum(p[s] * B[s, t] for s in range(3) for t in range(3))
    assert bstep_objective(W, B, p, 0.4) == pytest.approx(expected, rel=1e-14)
    assert bstep_objective(W, B, list(p), 0.4) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_wstep_objective_hand_computed(problem, loss):
    Xs, ys_sq, ys_lg, W, B = problem
    ys = ys_sq if loss == "squared" else ys_lg
    data = MultiTaskData(Xs, ys)
    a = np.array([1.5, 0.25, 3.0])
    lossv = [REF[loss](Xs[t], ys[t], W[:, t]) for t in range(3)]
    coupling = _frob2(W @ (np.eye(3) - B))
    expected = sum(a[t] * lossv[t] for t in range(3)) + 0.6 * coupling + 0.05 * _frob2(W)
    got = wstep_objective(W, B, data, lam=0.6, weights=list(a), loss=loss, ridge=0.05)
    assert got == pytest.approx(expected, rel=1e-13)
    if loss == "squared":  # the defaults: squared loss, no ridge
        assert wstep_objective(W, B, data, lam=0.6, weights=a) == pytest.approx(
            expected - 0.05 * _frob2(W), rel=1e-13)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_curriculum_objective_hand_computed(problem, loss):
    Xs, ys_sq, ys_lg, W, _ = problem
    X, y = Xs[1], (ys_sq if loss == "squared" else ys_lg)[1]
    w = W[:, 1]
    W_S = W[:, [0, 2]] * 1.5
    b = np.array([0.3, 0.8])
    q = [0.2, 1.1]
    r = w - (W_S[:, 0] * b[0] + W_S[:, 1] * b[1])
    expected = REF[loss](X, y, w) + 0.9 * float(r @ r) + (0.2 * 0.3 + 1.1 * 0.8) + 0.07 * float(w @ w)
    got = curriculum_objective(X, y, w, b, W_S, q, lam=0.9, loss=loss, ridge=0.07)
    assert got == pytest.approx(expected, rel=1e-13)
    if loss == "squared":
        assert curriculum_objective(X, y, w, b, W_S, q, lam=0.9) == pytest.approx(
            expected - 0.07 * float(w @ w), rel=1e-13)
