"""The first-order backend: whole fits equal the fast backend's, and every subproblem met
along a fit on the release data is held to the CVXPY statements (relative objective gap
<= 1e-7, exact feasibility), as ``tests/test_fast_vs_exact.py`` does for the fast solvers.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from amtl_cvx import (
    AMTLRegressor,
    fit_alternating,
    fit_curriculum,
    load_release_mat,
    make_classification_tasks,
    make_regression_tasks,
    stack_tasks,
)
from amtl_cvx.algorithms import BACKENDS, ConvergenceWarning, make_backend
from amtl_cvx.algorithms.backends import FastBackend, FirstOrderBackend
from tests.conftest import release_file
from tests.test_fast_vs_exact import _check_calls, _record

GAP = 1e-7


def _small(loss: str, seed: int = 0):
    make = make_regression_tasks if loss == "squared" else make_classification_tasks
    return make(n_tasks=6, n_features=5, n_samples=25, random_state=seed).train


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(1.0, abs(b))


# ----------------------------------------------------------------------------
# Whole fits: first-order == fast
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("loss, ridge", [("squared", 0.0), ("squared", 0.05), ("logistic", 0.01)])
def test_alternating_fit_equals_the_fast_backend(loss, ridge):
    data = _small(loss)
    kw = dict(lam=0.5, mu=0.3, loss=loss, ridge=ridge, max_iter=30, method="alternating")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="first-order", category=ConvergenceWarning)
        fo = fit_alternating(data, backend="first-order", **kw)
    fast = fit_alternating(data, backend="fast", **kw)
    assert _rel(fo.objective, fast.objective) <= GAP
    assert np.allclose(fo.W, fast.W, atol=1e-5 * max(1.0, np.abs(fast.W).max()))
    assert np.allclose(fo.B, fast.B, atol=1e-5 * max(1.0, np.abs(fast.B).max()))
    assert np.all(fo.B >= 0) and np.all(np.diag(fo.B) == 0)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_curriculum_fit_equals_the_fast_backend(loss):
    data = _small(loss, seed=1)
    kw = dict(lam=0.5, mu=0.3, loss=loss, ridge=0.01, selection="static")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="first-order", category=ConvergenceWarning)
        fo = fit_curriculum(data, backend="first-order", **kw)
    fast = fit_curriculum(data, backend="fast", **kw)
    assert list(fo.order) == list(fast.order)
    assert _rel(fo.objective, fast.objective) <= GAP
    assert np.allclose(fo.W, fast.W, atol=1e-5 * max(1.0, np.abs(fast.W).max()))
    assert np.allclose(fo.B, fast.B, atol=1e-5)
    assert np.all(fo.B >= 0)


def test_estimator_accepts_the_first_order_backend():
    """The estimator alternates with the first-order backend, as with the CVXPY one (the
    fast backend's default is L-BFGS on the joint problem): the same fit."""
    ds = make_regression_tasks(n_tasks=6, n_features=4, n_samples=20, random_state=2)
    X, y = stack_tasks(ds.train)
    fo = AMTLRegressor(lam=0.5, mu=0.3, backend="first-order").fit(X, y)
    exact = AMTLRegressor(lam=0.5, mu=0.3, backend="cvxpy").fit(X, y)
    scale = max(1.0, np.abs(exact.coef_).max())
    assert np.allclose(fo.coef_, exact.coef_, atol=1e-5 * scale)
    assert np.allclose(fo.transfer_matrix_, exact.transfer_matrix_, atol=1e-5)


# ----------------------------------------------------------------------------
# Backend behaviour
# ----------------------------------------------------------------------------


def test_backend_is_registered_and_built():
    data = _small("squared")
    assert "first-order" in BACKENDS
    engine = make_backend("first-order", data, "squared", tol=1e-8)
    assert isinstance(engine, FirstOrderBackend) and isinstance(engine, FastBackend)
    assert engine.tol == 1e-8 and engine.client is None
    with pytest.raises(ValueError, match="solver"):
        make_backend("first-order", data, "squared", solver="CLARABEL")
    with pytest.raises(ValueError, match="client"):
        make_backend("fast", data, "squared", client=object())
    with pytest.raises(ValueError, match="backend"):
        make_backend("first_order", data, "squared")


def test_unconverged_solve_warns_and_is_recorded():
    data = _small("squared")
    engine = FirstOrderBackend(data, "squared", tol=1e-30)  # below any rounding floor
    T = data.n_tasks
    B = np.zeros((T, T))
    B[0, 1] = 0.4
    with pytest.warns(ConvergenceWarning, match="first-order W-step solver stopped"):
        W = engine.tasks(B, 0.5, np.ones(T), 0.0, None)
    assert W.shape == (data.n_features, T)
    assert len(engine.stats) == 1 and not engine.stats[0].converged


def test_each_step_matches_the_fast_solver():
    data = _small("squared", seed=3)
    fo, fast = FirstOrderBackend(data, "squared"), FastBackend(data, "squared")
    T = data.n_tasks
    W = fast.tasks(np.zeros((T, T)), 0.5, np.ones(T), 0.0, None)
    p = 0.3 * np.linspace(0.1, 1.0, T)
    B_fo, B_fast = fo.transfer(W, p, 0.5), fast.transfer(W, p, 0.5)
    assert isinstance(B_fo, np.ndarray) and np.allclose(B_fo, B_fast, atol=1e-7)
    a = 1.0 + 0.3 * B_fast.sum(axis=1)
    assert np.allclose(fo.tasks(B_fast, 0.5, a, 0.01, W), fast.tasks(B_fast, 0.5, a, 0.01, W), atol=1e-7)
    learned = np.zeros(T, bool)
    learned[:3] = True
    w_fo, b_fo = fo.curriculum(4, W, learned, p, 0.5, 0.01)
    w_fast, b_fast = fast.curriculum(4, W, learned, p, 0.5, 0.01)
    assert np.allclose(w_fo, w_fast, atol=1e-7) and np.allclose(b_fo, b_fast, atol=1e-7)
    assert np.all(b_fo[~learned] == 0) and np.all(b_fo >= 0)


# ----------------------------------------------------------------------------
# Every subproblem along fits on the release data, held to CVXPY
# ----------------------------------------------------------------------------


def _record_first_order(monkeypatch, fitter, data, **kwargs):
    """The subproblems of a first-order fit (each certified: a first-order warning fails)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="first-order", category=ConvergenceWarning)
        return _record(monkeypatch, fitter, data, FirstOrderBackend, backend="first-order", **kwargs)


@pytest.mark.filterwarnings("ignore:fit_alternating stopped after")  # max_iter on purpose
@pytest.mark.parametrize("lam, mu", [(10.0, 0.1), (1.0, 1.0)])
def test_alternating_on_release_data_held_to_cvxpy(monkeypatch, lam, mu):
    data = load_release_mat(release_file("synthetic_dataset.mat")).train
    calls = _record_first_order(monkeypatch, fit_alternating, data, lam=lam, mu=mu, max_iter=4, method="alternating")
    # objective gap <= 1e-7 both ways round, B exactly feasible, W equal to the unique
    # exact W-step minimiser (n_t = 30 > d = 21)
    assert _check_calls(calls, data, "squared") == {"transfer", "tasks"}
    assert len(calls) >= 5


def test_curriculum_on_release_data_held_to_cvxpy(monkeypatch):
    data = load_release_mat(release_file("synthetic_dataset.mat")).train
    calls = _record_first_order(monkeypatch, fit_curriculum, data, lam=10.0, mu=0.1, selection="static")
    assert _check_calls(calls, data, "squared") == {"curriculum", "tasks"}
