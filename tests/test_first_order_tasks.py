"""Tests of the first-order W-step solver ``solvers.first_order_tasks`` against CVXPY.

The same referees, instances and checks as ``tests/test_solvers_tasks.py`` (the fast
exact solver's tests): relative objective gap <= 1e-7 against Clarabel / OSQP / ECOS,
the reported objective is the true objective of the returned point, the solution equals
the referee's where the minimiser is unique, and the certificate is the one of
``solve_tasks``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import solvers.first_order_tasks as fo_mod
from solvers.wstep import metric
from amtl_cvx import make_regression_tasks
from solvers.first_order_tasks import solve_tasks_first_order
from solvers.tasks import precompute_grams, solve_tasks, tasks_gradient
from tests.test_solvers_tasks import (
    CLARABEL,
    ECOS,
    LOG_CASES,
    OSQP,
    SQ_CASES,
    WFAMILY_CASES,
    assert_matches,
    assert_wstep_solution_matches,
    dense_system,
    family_instance,
    make_instance,
    onehot_instance,
    referee,
)


def _certificate(Xs, ys, W, B, lam, a, ridge, loss):
    """The certificate recomputed independently from the public gradient."""
    G = tasks_gradient(Xs, ys, W, B, lam, loss=loss, weights=a, ridge=ridge)
    G0 = tasks_gradient(Xs, ys, np.zeros_like(W), B, lam, loss=loss, weights=a, ridge=ridge)
    return np.linalg.norm(G) / (np.linalg.norm(G0) or 1.0)


# ----------------------------------------------------------------------------
# Squared loss
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed,T,d,n,b_kind,ridge,lam", SQ_CASES)
def test_squared_matches_clarabel(seed, T, d, n, b_kind, ridge, lam):
    Xs, ys, B, a = make_instance(seed, T, d, n, b_kind=b_kind)
    res = solve_tasks_first_order(Xs, ys, B, lam, weights=a, ridge=ridge)
    full_rank = all(X.shape[0] >= d for X in Xs)
    assert_matches(res, Xs, ys, B, lam, a, ridge, "squared", "CLARABEL", CLARABEL,
                   unique=ridge > 0 or full_rank, w_tol=1e-6)
    assert res.certificate == pytest.approx(_certificate(Xs, ys, res.solution, B, lam, a, ridge, "squared"),
                                            rel=1e-3, abs=1e-14)


@pytest.mark.parametrize("seed,T,d,n,b_kind,ridge,lam", [SQ_CASES[i] for i in (2, 4, 8)])
def test_squared_matches_osqp_with_sparse_B(seed, T, d, n, b_kind, ridge, lam):
    Xs, ys, B, a = make_instance(seed, T, d, n, b_kind=b_kind)
    res = solve_tasks_first_order(Xs, ys, sp.csr_matrix(B), lam, weights=a, ridge=ridge)
    assert_matches(res, Xs, ys, B, lam, a, ridge, "squared", "OSQP", OSQP, unique=True, w_tol=1e-5)


def test_squared_rank_deficient_without_ridge():
    Xs, ys, B, a = make_instance(11, 6, 10, (3, 6), b_kind="sparse")
    res = solve_tasks_first_order(Xs, ys, B, 0.7, weights=a)
    assert_matches(res, Xs, ys, B, 0.7, a, 0.0, "squared", "CLARABEL", CLARABEL, unique=False, w_tol=0)


def test_squared_agrees_with_the_fast_solver_and_caches_factorisations():
    Xs, ys, B, a = make_instance(16, 10, 4, 12)
    grams = precompute_grams(Xs, ys)
    fast = solve_tasks(Xs, ys, B, 1.0, weights=a, grams=grams)
    r1 = solve_tasks_first_order(Xs, ys, B, 1.0, weights=a, grams=grams)
    assert metric._EIG_CACHE[0][0] is grams  # the factorisations are kept for this object
    r2 = solve_tasks_first_order(Xs, ys, B, 1.0, weights=a, grams=grams)
    assert np.array_equal(r1.solution, r2.solution)
    assert np.allclose(r1.solution, fast.solution, atol=1e-8)
    with pytest.raises(ValueError, match="grams"):
        solve_tasks_first_order(Xs, ys, B, 1.0, grams=precompute_grams(Xs[:3], ys[:3]))


def test_singular_system_returns_minimum_norm_minimiser():
    """ridge = 0, I - B singular, a feature direction no task sees: from zeros the
    documented choice is the minimum-norm minimiser (as solve_tasks); from a warm start
    the minimiser nearest to it (its null-space component is kept)."""
    Xs, ys, B = onehot_instance(21, 6, (3, 12), near=1.0)
    T, d = len(Xs), Xs[0].shape[1]
    a = np.ones(T)
    H, rhs = dense_system(Xs, ys, B, 0.8, a, 0.0)
    evals, evecs = np.linalg.eigh(H)
    null = evecs[:, evals < 1e-10 * evals[-1]]
    assert null.shape[1] > 0  # really singular
    res = solve_tasks_first_order(Xs, ys, B, 0.8)
    assert res.converged, res.certificate
    w_min = np.linalg.lstsq(H, rhs, rcond=1e-12)[0]
    x = res.solution.T.ravel()
    assert np.linalg.norm(null.T @ x) <= 1e-6 * np.linalg.norm(w_min)
    assert np.allclose(x, w_min, atol=1e-5 * np.abs(w_min).max())
    assert_matches(res, Xs, ys, B, 0.8, a, 0.0, "squared", "CLARABEL", CLARABEL, unique=False, w_tol=0)
    # warm start with a null-space component: the minimiser nearest W0
    W0 = (null @ np.random.default_rng(0).standard_normal(null.shape[1]) * 10.0).reshape(T, d).T
    warm = solve_tasks_first_order(Xs, ys, B, 0.8, W0=W0)
    assert warm.converged
    xw = warm.solution.T.ravel()
    assert np.allclose(xw, w_min + W0.T.ravel(), atol=1e-5 * np.abs(w_min).max())
    assert warm.objective == pytest.approx(res.objective, rel=1e-9)


@pytest.mark.parametrize("kind,seed,T,n,b_kind,ridge,lam,unique", WFAMILY_CASES)
def test_onehot_and_column_scaled_families(kind, seed, T, n, b_kind, ridge, lam, unique):
    """The instance families, including the column-scaled ones with a singular I - B and
    no ridge (condition numbers near 1e12, unique minimisers): block Jacobi alone stalls
    there (certificates 1e-7..1e-6 after thousands of steps, objective gaps up to 1.8);
    the coarse correction on M's null space makes them converge."""
    Xs, ys, B, a = family_instance(kind, seed, T, n, b_kind)
    res = solve_tasks_first_order(Xs, ys, B, lam, weights=a, ridge=ridge)
    assert_matches(res, Xs, ys, B, lam, a, ridge, "squared", "CLARABEL", CLARABEL, unique=False, w_tol=0)
    _, W_ex = referee(Xs, ys, B, lam, a, ridge, "squared", "CLARABEL", CLARABEL)
    assert assert_wstep_solution_matches(res, W_ex, Xs, ys, B, lam, a, ridge) == unique


def test_without_the_coarse_correction_an_ill_conditioned_case_says_so(monkeypatch):
    """Block Jacobi alone on the column-scaled cycle (condition number ~1e12): the run
    must report that it missed tol (converged=False, the backend then warns) and return a
    point no better than the optimum."""
    monkeypatch.setattr(fo_mod, "COARSE_MAX_T", 0)
    Xs, ys, B, a = family_instance("colscaled", 56, 5, (2, 4), "cycle")
    res = solve_tasks_first_order(Xs, ys, B, 1.0, weights=a, max_iter=3000)
    assert not res.converged and res.certificate > res.tol
    exact, _ = referee(Xs, ys, B, 1.0, a, 0.0, "squared", "CLARABEL", CLARABEL)
    assert res.objective >= exact - 1e-7 * max(1.0, abs(exact))


@pytest.mark.parametrize("kind,seed,T,n,b_kind,ridge,lam", [
    ("onehot", 52, 6, (12, 25), "cycle", 0.01, 1.0),  # singular I - B, ridge > 0
    ("onehot", 53, 8, (4, 9), "sparse", 0.0, 0.3),  # n_t < d
    ("colscaled", 55, 5, (8, 15), "cycle", 1e-4, 0.5),  # condition number ~1e12
])
def test_deflated_step_keeps_the_step_bound_and_raises_the_smallest_eigenvalue(kind, seed, T, n, b_kind, ridge,
                                                                                lam):
    """The squared solver's step ``(I - Pi H) P^{-1} g / L`` (module docstring): on
    ``{R g = 0}`` every eigenvalue of ``(I - Pi H) P^{-1} H`` is at most the ``L`` of block
    Jacobi alone, and the smallest is at least the additive ``P^{-1} + Pi``'s. ``H``,
    ``P`` and ``R`` are built here from the data; ``C^+`` and ``H R'`` come from
    ``_coarse_space``."""
    Xs, ys, B, a = family_instance(kind, seed, T, n, b_kind)
    d = Xs[0].shape[1]
    H, _ = dense_system(Xs, ys, B, lam, a, ridge)
    prob = fo_mod._setup(Xs, ys, B, lam, "squared", a, ridge)
    K = metric._coupling_matrix(prob.cp, lam, ridge)
    sG = np.stack([a[t] / X.shape[0] * X.T @ X for t, X in enumerate(Xs)])
    c = 2.0 * lam * np.diag((np.eye(T) - B) @ (np.eye(T) - B).T) + 2.0 * ridge
    P_inv = np.zeros_like(H)
    for t in range(T):
        P_inv[t * d:(t + 1) * d, t * d:(t + 1) * d] = np.linalg.inv(sG[t] + c[t] * np.eye(d))
    Z, C_pinv, HZ = metric._coarse_space(prob.cp, K, sG)
    R = np.kron(Z.T, np.eye(d))
    np.testing.assert_allclose(HZ, H @ R.T, atol=1e-12 * np.abs(H).max())
    Pi = R.T @ C_pinv @ R
    L = metric._step_bound(K, c)
    # an orthonormal basis of {e : R H e = 0}, where the iterates' errors live
    S = np.linalg.svd(R @ H)[2][R.shape[0]:].T
    defl = np.linalg.lstsq(S, (np.eye(T * d) - Pi @ H) @ P_inv @ H @ S, rcond=None)[0]
    ev_def = np.sort(np.linalg.eigvals(defl).real)
    ev_add = np.sort(np.linalg.eigvals((P_inv + Pi) @ H).real)
    assert ev_def[-1] <= L * (1 + 1e-9)
    assert ev_add[-1] > L  # the additive one needs L + 1
    assert ev_def[0] >= ev_add[0] * (1 - 1e-9) and ev_def[0] > 0


def test_deflation_cuts_the_iterations_on_the_instance_families():
    """Measured before deflation (additive two-level step, L + 1): 600 iterations over
    these seven W-steps, and 1,044 when the first coarse solve is left out; now 305."""
    total = 0
    for kind, seed, T, n, b_kind, ridge, lam, _ in WFAMILY_CASES:
        Xs, ys, B, a = family_instance(kind, seed, T, n, b_kind)
        res = solve_tasks_first_order(Xs, ys, B, lam, weights=a, ridge=ridge)
        assert res.converged
        total += res.n_iter
    assert total <= 400, total


@pytest.fixture(scope="module")
def tabular_stall():
    """tests/test_solvers_tasks.py's nearly singular real-data case (I - B with smallest
    singular value below 0.01, one-hot + bias designs)."""
    from amtl_cvx.data import make_tabular_tasks

    data = make_tabular_tasks(30, random_state=1).train
    B = np.load(Path(__file__).parent / "data" / "tabular_stall_B.npz")["B"]
    a = 1.0 + 0.1 * B.sum(axis=1)
    return list(data.Xs), list(data.ys), B, a


def test_logistic_on_nearly_singular_coupling(tabular_stall):
    Xs, ys, B, a = tabular_stall
    ys = [np.where(y > np.median(y), 1.0, -1.0) for y in ys]
    res = solve_tasks_first_order(Xs, ys, B, 1.0, loss="logistic", weights=a, ridge=1e-3)
    assert res.converged, res.certificate
    assert_matches(res, Xs, ys, B, 1.0, a, 1e-3, "logistic", "CLARABEL", CLARABEL, unique=False, w_tol=0)


def test_squared_stall_rule_reports_unconverged(tabular_stall, monkeypatch):
    """A run cut short (here by max_iter) reports its honest certificate, unconverged."""
    Xs, ys, B, a = tabular_stall
    res = solve_tasks_first_order(Xs, ys, B, 1.0, weights=a, max_iter=250)  # between two refreshes
    assert not res.converged and res.n_iter == 250
    assert res.certificate == pytest.approx(_certificate(Xs, ys, res.solution, B, 1.0, a, 0.0, "squared"),
                                            rel=1e-6)


# ----------------------------------------------------------------------------
# Logistic loss
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed,T,d,n,b_kind,ridge,lam", LOG_CASES)
def test_logistic_matches_clarabel(seed, T, d, n, b_kind, ridge, lam):
    Xs, ys, B, a = make_instance(seed, T, d, n, loss="logistic", b_kind=b_kind)
    res = solve_tasks_first_order(Xs, ys, B, lam, loss="logistic", weights=a, ridge=ridge)
    assert_matches(res, Xs, ys, B, lam, a, ridge, "logistic", "CLARABEL", CLARABEL, unique=True, w_tol=1e-5)
    assert res.certificate == pytest.approx(_certificate(Xs, ys, res.solution, B, lam, a, ridge, "logistic"),
                                            rel=1e-6, abs=1e-14)


@pytest.mark.parametrize("seed,T,d,n,b_kind,ridge,lam", [LOG_CASES[1], LOG_CASES[2]])
def test_logistic_matches_ecos(seed, T, d, n, b_kind, ridge, lam):
    Xs, ys, B, a = make_instance(seed, T, d, n, loss="logistic", b_kind=b_kind)
    res = solve_tasks_first_order(Xs, ys, B, lam, loss="logistic", weights=a, ridge=ridge)
    assert_matches(res, Xs, ys, B, lam, a, ridge, "logistic", "ECOS", ECOS, unique=True, w_tol=1e-5)


def test_logistic_diverging_run_stops_unconverged():
    rng = np.random.default_rng(25)
    X = rng.standard_normal((20, 2))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    B = np.array([[0.0, 1.0], [1.0, 0.0]])
    res = solve_tasks_first_order([X, X], [y, y], B, 1.0, loss="logistic", max_iter=20)
    assert not res.converged
    assert res.objective < 2 * np.log(2)


# ----------------------------------------------------------------------------
# Warm start, magnitudes, options, validation
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_warm_start_at_solution(loss):
    Xs, ys, B, a = make_instance(30, 12, 5, (10, 25), loss=loss)
    r1 = solve_tasks_first_order(Xs, ys, B, 1.0, loss=loss, weights=a, ridge=0.01, record_history=True)
    assert r1.converged and r1.n_iter > 1 and len(r1.history) >= 1
    r2 = solve_tasks_first_order(Xs, ys, B, 1.0, loss=loss, weights=a, ridge=0.01, W0=r1.solution)
    assert r2.converged and r2.n_iter == 0
    W0 = r1.solution + 1e-3 * np.random.default_rng(0).standard_normal(r1.solution.shape)
    r3 = solve_tasks_first_order(Xs, ys, B, 1.0, loss=loss, weights=a, ridge=0.01, W0=W0)
    assert r3.converged and r3.n_iter <= r1.n_iter
    assert np.allclose(r3.solution, r1.solution, atol=1e-8)


@pytest.mark.parametrize("scale", [1e-160, 1e-20, 1e20, 1e150])
def test_squared_is_scale_free(scale):
    data = make_regression_tasks(n_tasks=6, n_features=4, n_samples=10, n_parents=1, random_state=0).train
    B = np.zeros((6, 6))
    B[0, 1] = 0.5
    w = np.linspace(1.0, 2.0, 6)
    unit = solve_tasks_first_order(data.Xs, data.ys, B, 1.0, weights=w, ridge=0.1)
    res = solve_tasks_first_order(data.Xs, [y * scale for y in data.ys], B, 1.0, weights=w, ridge=0.1)
    assert res.converged and res.certificate == pytest.approx(unit.certificate, abs=1e-13)
    np.testing.assert_allclose(res.solution / scale, unit.solution, rtol=1e-10, atol=1e-12)


def test_max_iter_zero_reports_start():
    Xs, ys, B, _ = make_instance(33, 3, 2, 6)
    res = solve_tasks_first_order(Xs, ys, B, 1.0, max_iter=0)
    assert res.n_iter == 0 and not res.converged
    assert np.array_equal(res.solution, np.zeros((2, 3)))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(lam=0.0), "lam"),
        (dict(ridge=-0.1), "ridge"),
        (dict(loss="hinge"), "loss"),
        (dict(weights=np.array([1.0, -1.0, 1.0])), "weights"),
        (dict(W0=np.zeros((3, 2))), "W0"),
        (dict(tol=0.0), "tol"),
        (dict(max_iter=-1), "max_iter"),
        (dict(B=-np.ones((3, 3)) + np.eye(3)), "B"),
        (dict(loss="logistic"), "ys"),
    ],
)
def test_validation_errors(kwargs, match):
    Xs, ys, B, _ = make_instance(40, 3, 2, 5)
    kw = dict(Xs=Xs, ys=ys, B=B, lam=1.0)
    kw.update(kwargs)
    with pytest.raises(ValueError, match=match):
        solve_tasks_first_order(**kw)


def test_first_order_solvers_import_numpy_and_scipy_only():
    import subprocess
    import sys

    code = (
        "import sys, solvers.first_order_tasks, solvers.first_order_curriculum;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('cvxpy', 'sklearn', 'amtl_cvx')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_logistic_cache_follows_the_data_object():
    """A MultiTaskData's immutable task tuple keys the cached Gram eigendecompositions; a
    different data set never reuses them."""
    from amtl_cvx import make_classification_tasks

    d1 = make_classification_tasks(n_tasks=6, n_features=4, n_samples=20, random_state=0).train
    d2 = make_classification_tasks(n_tasks=6, n_features=4, n_samples=20, random_state=1).train
    B = np.zeros((6, 6))
    B[0, 1] = 0.5
    for data in (d1, d2, d1):
        cached = solve_tasks_first_order(data.Xs, data.ys, B, 0.5, loss="logistic", ridge=0.01)
        assert fo_mod._LOGISTIC_CACHE[0][0] is data.Xs
        plain = solve_tasks_first_order(list(data.Xs), list(data.ys), B, 0.5, loss="logistic", ridge=0.01)
        assert cached.converged and np.array_equal(cached.solution, plain.solution)
