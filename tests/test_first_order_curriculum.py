"""Tests of the first-order curriculum-step solver ``solvers.first_order_curriculum``.

The same referees, instances and checks as ``tests/test_solvers_curriculum.py``:
relative objective gap <= 1e-7 against Clarabel / OSQP / ECOS, ``b >= 0`` exactly, an
independent KKT check, and the solution compared where the minimiser is unique.
"""

from __future__ import annotations

import numpy as np
import pytest

from amtl_cvx import make_regression_tasks
from solvers.curriculum import curriculum_gradient, solve_curriculum_step
from solvers.first_order_curriculum import solve_curriculum_step_first_order
from tests.instances import distance_bound, is_pd, modulus
from tests.test_solvers_curriculum import (
    CASES,
    CFAMILY_CASES,
    CLARABEL,
    ECOS,
    LOG_CASES,
    OSQP,
    assert_matches,
    check_kkt,
    curriculum_hessian,
    family_instance,
    make_instance,
    numpy_objective,
    referee,
)


def _kkt_residual(X, y, w, b, W_S, q, lam, ridge, loss):
    """``sqrt(||g_w||^2 + ||min(b, g_b)||^2) / ||(grad L(0), q)||`` from the public gradient."""
    gw, gb = curriculum_gradient(X, y, w, b, W_S, q, lam, loss=loss, ridge=ridge)
    g0, _ = curriculum_gradient(X, y, np.zeros_like(w), np.zeros_like(b), W_S, q, lam, loss=loss, ridge=ridge)
    ref = np.sqrt(g0 @ g0 + q @ q)  # g_w at (0, 0) is grad L(0)
    rb = np.minimum(b, gb)
    return np.sqrt(gw @ gw + rb @ rb) / (ref or 1.0)


def _certificate(X, y, w, b, W_S, q, lam, ridge, loss):
    """The documented certificate: for the squared loss the KKT residual in the units where
    ``max(|y|, |W_S|) = 1``, where ``solve_curriculum_step`` certifies (``y, W_S, w``
    divided by that scale, ``q`` by its square)."""
    sigma = max(np.abs(y).max(), np.abs(W_S).max() if W_S.size else 0.0)
    if loss == "squared" and sigma > 0:
        return _kkt_residual(X, y / sigma, w / sigma, b, W_S / sigma, q / sigma**2, lam, ridge, loss)
    return _kkt_residual(X, y, w, b, W_S, q, lam, ridge, loss)


@pytest.mark.parametrize("seed,d,k,n,ridge,lam,dup", CASES)
def test_squared_matches_clarabel(seed, d, k, n, ridge, lam, dup):
    X, y, W_S, q = make_instance(seed, d, k, n, dup=dup)
    res = solve_curriculum_step_first_order(X, y, W_S, q, lam, ridge=ridge)
    b_unique = k <= d and not dup and (ridge > 0 or n >= d)
    assert_matches(res, X, y, W_S, q, lam, ridge, "squared", "CLARABEL", CLARABEL, w_tol=1e-6, b_unique=b_unique)
    w, b = res.solution
    assert res.certificate == pytest.approx(_certificate(X, y, w, b, W_S, q, lam, ridge, "squared"),
                                            rel=1e-6, abs=1e-14)


@pytest.mark.parametrize("seed,d,k,n,ridge,lam,dup", [CASES[i] for i in (2, 3, 5)])
def test_squared_matches_osqp(seed, d, k, n, ridge, lam, dup):
    X, y, W_S, q = make_instance(seed, d, k, n, dup=dup)
    res = solve_curriculum_step_first_order(X, y, W_S, q, lam, ridge=ridge)
    assert_matches(res, X, y, W_S, q, lam, ridge, "squared", "OSQP", OSQP, w_tol=1e-5, b_unique=False)


def test_squared_rank_deficient_without_ridge():
    X, y, W_S, q = make_instance(8, 10, 6, 4)  # n < d, ridge = 0
    res = solve_curriculum_step_first_order(X, y, W_S, q, 1.0)
    assert_matches(res, X, y, W_S, q, 1.0, 0.0, "squared", "CLARABEL", CLARABEL, w_tol=0, b_unique=False)


@pytest.mark.parametrize("seed,d,k,n,ridge,lam,dup", LOG_CASES)
def test_logistic_matches_clarabel(seed, d, k, n, ridge, lam, dup):
    X, y, W_S, q = make_instance(seed, d, k, n, loss="logistic", dup=dup)
    res = solve_curriculum_step_first_order(X, y, W_S, q, lam, loss="logistic", ridge=ridge)
    assert_matches(res, X, y, W_S, q, lam, ridge, "logistic", "CLARABEL", CLARABEL, w_tol=1e-5, b_unique=False)


@pytest.mark.parametrize("seed,d,k,n,ridge,lam,dup", [LOG_CASES[0], LOG_CASES[3]])
def test_logistic_matches_ecos(seed, d, k, n, ridge, lam, dup):
    X, y, W_S, q = make_instance(seed, d, k, n, loss="logistic", dup=dup)
    res = solve_curriculum_step_first_order(X, y, W_S, q, lam, loss="logistic", ridge=ridge)
    assert_matches(res, X, y, W_S, q, lam, ridge, "logistic", "ECOS", ECOS, w_tol=1e-5, b_unique=False)


@pytest.mark.parametrize("kind,seed,n,k,ridge,lam,null_in_WS,unique", CFAMILY_CASES)
def test_onehot_and_column_scaled_families(kind, seed, n, k, ridge, lam, null_in_WS, unique):
    """The instance families. The column-scaled case with n < d and no ridge (seed 85) is
    unique but so ill conditioned in the metric of the iteration that 50,000 steps end at
    a certificate of 2.4e-10: a first-order method must say so (converged=False) and
    return a feasible point no better than the optimum."""
    X, y, W_S, q = family_instance(kind, seed, n, k, null_in_WS=null_in_WS)
    d = X.shape[1]
    if seed == 85:
        res = solve_curriculum_step_first_order(X, y, W_S, q, lam, ridge=ridge, max_iter=2000)
        assert not res.converged and res.certificate > res.tol and np.all(res.solution[1] >= 0)
        exact, _, _ = referee(X, y, W_S, q, lam, ridge, "squared", "CLARABEL", CLARABEL)
        assert res.objective >= exact - 1e-7 * max(1.0, abs(exact))
        return
    res = solve_curriculum_step_first_order(X, y, W_S, q, lam, ridge=ridge)
    assert res.converged and res.certificate <= res.tol
    w, b = res.solution
    assert np.all(b >= 0)
    exact, w_ex, b_ex = referee(X, y, W_S, q, lam, ridge, "squared", "CLARABEL", CLARABEL)
    b_ex = np.maximum(b_ex, 0.0)
    F = lambda w_, b_: numpy_objective(X, y, w_, b_, W_S, q, lam, ridge, "squared")  # noqa: E731
    assert res.objective == pytest.approx(F(w, b), rel=1e-12, abs=1e-13)
    assert (res.objective - exact) / max(1.0, abs(exact)) <= 1e-7
    check_kkt(res, X, y, W_S, q, lam, ridge, "squared")
    H = curriculum_hessian(X, W_S, lam, ridge)
    assert is_pd(H) == unique
    if not unique:
        return
    m, L = modulus(H), float(np.linalg.eigvalsh(H)[-1])
    x, x_ref = np.r_[w, b], np.r_[w_ex, b_ex]
    g = H @ x - np.r_[X.T @ y / X.shape[0], -q]
    nonneg = np.r_[np.zeros(d, bool), np.ones(k, bool)]
    bound = distance_bound(x, F(w, b), F(w_ex, b_ex), g, nonneg, m, L, F(np.zeros(d), np.zeros(k)))
    assert np.linalg.norm(x - x_ref) <= bound, (np.linalg.norm(x - x_ref), bound)


def test_agrees_with_the_active_set_solver_on_a_family():
    """Issue 11's large-frozen-norms shape (a subset): the same minimum as the exact
    active-set solver, exact zeros in b where it has them."""
    for seed in range(0, 40, 2):
        rng = np.random.default_rng(seed)
        n, d = int(rng.integers(3, 30)), int(rng.integers(2, 10))
        X = rng.standard_normal((n, d)) * rng.choice([0.1, 1.0, 10.0])
        y = rng.standard_normal(n) * rng.choice([1.0, 10.0, 100.0])
        W_S = rng.standard_normal((d, 2))
        W_S *= np.array([3e3, 3e2]) / np.linalg.norm(W_S, axis=0)
        q = rng.uniform(0.0, 1.0, 2) * rng.choice([0.0, 1.0, 100.0])
        lam = float(rng.uniform(10.0, 50.0))
        res = solve_curriculum_step_first_order(X, y, W_S, q, lam)
        ref = solve_curriculum_step(X, y, W_S, q, lam)
        assert res.converged, (seed, res.certificate)
        assert (res.objective - ref.objective) / max(1.0, abs(ref.objective)) <= 1e-7, seed


def test_k_zero_is_ridge_regression():
    X, y, _, _ = make_instance(30, 4, 0, 15)
    lam, ridge = 0.3, 0.2
    res = solve_curriculum_step_first_order(X, y, np.zeros((4, 0)), np.zeros(0), lam, ridge=ridge)
    n = X.shape[0]
    w = np.linalg.solve(X.T @ X / n + 2 * (lam + ridge) * np.eye(4), X.T @ y / n)
    assert np.allclose(res.solution[0], w, atol=1e-9)
    assert res.solution[1].shape == (0,)


def test_exact_zeros_with_large_penalties():
    X, y, W_S, _ = make_instance(32, 6, 10, 30)
    res = solve_curriculum_step_first_order(X, y, W_S, np.full(10, 1e3), 1.0)
    assert np.array_equal(res.solution[1], np.zeros(10))


def test_identical_tasks_pick_the_cheaper_one():
    rng = np.random.default_rng(31)
    d = 5
    w_s = rng.standard_normal(d)
    W_S = np.column_stack([w_s, w_s])
    X = rng.standard_normal((40, d))
    y = X @ w_s
    q = np.array([0.05, 0.01])
    for loss, yy in [("squared", y), ("logistic", np.where(y + rng.standard_normal(40) > 0, 1.0, -1.0))]:
        res = solve_curriculum_step_first_order(X, yy, W_S, q, 1.0, loss=loss, ridge=0.01)
        assert res.converged
        assert res.solution[1][0] == 0.0 and res.solution[1][1] > 0
        check_kkt(res, X, yy, W_S, q, 1.0, 0.01, loss)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_warm_start_returns_immediately(loss):
    X, y, W_S, q = make_instance(33, 6, 9, 30, loss=loss)
    r1 = solve_curriculum_step_first_order(X, y, W_S, q, 1.0, loss=loss, ridge=0.01, record_history=True)
    assert r1.converged and r1.n_iter >= 1 and len(r1.history) == r1.n_iter
    w, b = r1.solution
    r2 = solve_curriculum_step_first_order(X, y, W_S, q, 1.0, loss=loss, ridge=0.01, w0=w, b0=b)
    assert r2.converged and r2.n_iter == 0


def test_max_iter_cut_is_reported():
    X, y, W_S, q = family_instance("colscaled", 85, 4, 2)
    res = solve_curriculum_step_first_order(X, y, W_S, q, 2.0, max_iter=50)
    assert not res.converged and res.n_iter == 50
    w, b = res.solution
    assert np.all(b >= 0)
    assert res.certificate == pytest.approx(_certificate(X, y, w, b, W_S, q, 2.0, 0.0, "squared"), rel=1e-6)


@pytest.mark.parametrize("scale", [1e-100, 1e20, 1e150])
def test_squared_step_is_scale_free(scale):
    data = make_regression_tasks(n_tasks=6, n_features=4, n_samples=10, n_parents=1, random_state=0).train
    rng = np.random.default_rng(0)
    W_S = rng.standard_normal((4, 3))
    q = np.array([0.1, 0.05, 0.2])
    unit = solve_curriculum_step_first_order(data.Xs[2], data.ys[2], W_S, q, 1.0, ridge=0.01)
    res = solve_curriculum_step_first_order(data.Xs[2], data.ys[2] * scale, W_S * scale, q * scale**2, 1.0,
                                            ridge=0.01)
    assert res.converged
    np.testing.assert_allclose(res.solution[0] / scale, unit.solution[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.solution[1], unit.solution[1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(lam=0.0), "lam"),
        (dict(ridge=-1.0), "ridge"),
        (dict(q=np.array([0.1, -0.1])), "q"),
        (dict(loss="hinge"), "loss"),
        (dict(W_S=np.zeros((4, 2))), "W_S"),
        (dict(w0=np.zeros(2)), "w0"),
        (dict(b0=np.array([1.0, -1.0])), "b0"),
        (dict(tol=-1.0), "tol"),
        (dict(loss="logistic"), "y"),
    ],
)
def test_validation_errors(kwargs, match):
    X, y, W_S, q = make_instance(40, 3, 2, 6)
    kw = dict(X=X, y=y, W_S=W_S, q=q, lam=1.0)
    kw.update(kwargs)
    with pytest.raises(ValueError, match=match):
        solve_curriculum_step_first_order(**kw)
