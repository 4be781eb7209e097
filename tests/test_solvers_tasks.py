"""Tests of the fast W-step solver ``solvers.tasks`` against an independent CVXPY referee.

The referee states the W-step directly from ``docs/objective.md``::

    min_W  sum_t a_t * L_t(w_t) + lam * ||W (I - B)||_F^2 + ridge * ||W||_F^2
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp

import solvers.tasks as tasks_mod
from amtl_cvx import make_regression_tasks
from solvers.tasks import precompute_grams, solve_tasks, tasks_gradient, tasks_objective

CLARABEL = dict(tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
OSQP = dict(eps_abs=1e-9, eps_rel=1e-9, max_iter=500_000, polishing=True)
ECOS = dict(abstol=1e-10, reltol=1e-10, feastol=1e-10)


# ----------------------------------------------------------------------------
# Instances and the referee
# ----------------------------------------------------------------------------


def make_instance(
    seed: int,
    T: int,
    d: int,
    n: int | tuple[int, int],
    *,
    loss: str = "squared",
    b_kind: str = "sparse",
    weighted: bool = True,
):
    rng = np.random.default_rng(seed)
    lo, hi = (n, n) if isinstance(n, int) else n
    ns = rng.integers(lo, hi + 1, size=T)
    w_common = rng.standard_normal(d)
    Xs, ys = [], []
    for t in range(T):
        X = rng.standard_normal((ns[t], d)) * rng.uniform(0.5, 2.0, size=d)
        w = w_common + 0.5 * rng.standard_normal(d)
        z = X @ w + 0.3 * rng.standard_normal(ns[t])
        if loss == "logistic":
            # noisy labels: non-separable data
            z = np.where(z + 1.5 * rng.standard_normal(ns[t]) > 0, 1.0, -1.0)
        Xs.append(X)
        ys.append(z)
    if b_kind == "zero":
        B = np.zeros((T, T))
    else:
        density = 0.3 if b_kind == "sparse" else 1.0
        B = rng.uniform(0.0, 0.6, size=(T, T)) * (rng.random((T, T)) < density)
        np.fill_diagonal(B, 0.0)
    a = 1.0 + rng.random(T) * 2.0 if weighted else np.ones(T)
    return Xs, ys, B, a


def referee(Xs, ys, B, lam, a, ridge, loss, solver, opts):
    T, d = len(Xs), Xs[0].shape[1]
    W = cp.Variable((d, T))
    terms = []
    for t in range(T):
        n = Xs[t].shape[0]
        if loss == "squared":
            terms.append(a[t] / (2 * n) * cp.sum_squares(ys[t] - Xs[t] @ W[:, t]))
        else:
            terms.append(a[t] / n * cp.sum(cp.logistic(-cp.multiply(ys[t], Xs[t] @ W[:, t]))))
    obj = cp.sum(cp.hstack(terms)) + lam * cp.sum_squares(W - W @ B)
    if ridge > 0:
        obj = obj + ridge * cp.sum_squares(W)
    prob = cp.Problem(cp.Minimize(obj))
    prob.solve(solver=solver, **opts)
    assert prob.status == "optimal", prob.status
    return float(prob.value), W.value


def numpy_objective(Xs, ys, W, B, lam, a, ridge, loss):
    """Independent numpy statement of the W-step objective."""
    total = 0.0
    for t in range(len(Xs)):
        z = Xs[t] @ W[:, t]
        if loss == "squared":
            total += a[t] * np.mean((ys[t] - z) ** 2) / 2
        else:
            total += a[t] * np.mean(np.log1p(np.exp(-ys[t] * z)))
    R = W - W @ B
    return total + lam * np.sum(R * R) + ridge * np.sum(W * W)


def assert_matches(res, Xs, ys, B, lam, a, ridge, loss, solver, opts, *, unique, w_tol):
    exact, W_ex = referee(Xs, ys, B, lam, a, ridge, loss, solver, opts)
    assert res.converged
    assert res.certificate <= res.tol
    gap = (res.objective - exact) / max(1.0, abs(exact))
    assert gap <= 1e-7, gap
    # the reported objective is the true objective of the returned point
    W = res.solution
    assert res.objective == pytest.approx(numpy_objective(Xs, ys, W, B, lam, a, ridge, loss), rel=1e-12, abs=1e-12)
    if unique:
        scale = max(1.0, np.abs(W_ex).max())
        assert np.abs(W - W_ex).max() <= w_tol * scale


# ----------------------------------------------------------------------------
# Squared loss vs Clarabel / OSQP
# ----------------------------------------------------------------------------

SQ_CASES = [
    # seed, T, d, n, b_kind, ridge, lam
    (0, 1, 1, 5, "zero", 0.0, 1.0),
    (1, 1, 7, 20, "zero", 0.1, 0.3),
    (2, 5, 3, 10, "sparse", 0.0, 1.0),
    (3, 8, 12, (15, 30), "dense", 0.0, 2.0),
    (4, 12, 20, (25, 40), "sparse", 0.05, 0.5),
    (5, 30, 6, (8, 20), "dense", 0.0, 5.0),
    (6, 20, 15, (5, 10), "sparse", 0.2, 1.0),  # n_t < d with ridge > 0
    (7, 25, 20, 30, "zero", 0.0, 1.0),  # B = 0
    (8, 30, 20, (20, 35), "sparse", 0.0, 0.1),  # d * T = 600: PCG path
]


@pytest.mark.parametrize("seed,T,d,n,b_kind,ridge,lam", SQ_CASES)
def test_squared_matches_clarabel(seed, T, d, n, b_kind, ridge, lam):
    Xs, ys, B, a = make_instance(seed, T, d, n, b_kind=b_kind)
    res = solve_tasks(Xs, ys, B, lam, weights=a, ridge=ridge)
    full_rank = all(X.shape[0] >= d for X in Xs)
    assert_matches(res, Xs, ys, B, lam, a, ridge, "squared", "CLARABEL", CLARABEL,
                   unique=ridge > 0 or full_rank, w_tol=1e-6)


@pytest.mark.parametrize("seed,T,d,n,b_kind,ridge,lam", [SQ_CASES[i] for i in (2, 4, 5, 8)])
def test_squared_matches_osqp(seed, T, d, n, b_kind, ridge, lam):
    Xs, ys, B, a = make_instance(seed, T, d, n, b_kind=b_kind)
    res = solve_tasks(Xs, ys, sp.csr_matrix(B), lam, weights=a, ridge=ridge)
    assert_matches(res, Xs, ys, B, lam, a, ridge, "squared", "OSQP", OSQP,
                   unique=True, w_tol=1e-5)


def test_squared_rank_deficient_without_ridge():
    # n_t < d, ridge = 0: the minimiser may not be unique; values must agree
    Xs, ys, B, a = make_instance(11, 6, 10, (3, 6), b_kind="sparse")
    res = solve_tasks(Xs, ys, B, 0.7, weights=a)
    assert_matches(res, Xs, ys, B, 0.7, a, 0.0, "squared", "CLARABEL", CLARABEL,
                   unique=False, w_tol=0)


def test_identical_tasks_share_solution():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((15, 4))
    y = X @ rng.standard_normal(4)
    T = 6
    Xs, ys = [X] * T, [y] * T
    B = np.full((T, T), 1.0 / (T - 1))
    np.fill_diagonal(B, 0.0)
    res = solve_tasks(Xs, ys, B, 2.0)
    W = res.solution
    # with B column-stochastic, W (I - B) = 0 for equal columns: least squares per task
    w_ls = np.linalg.lstsq(X, y, rcond=None)[0]
    assert np.allclose(W, w_ls[:, None], atol=1e-8)
    assert_matches(res, Xs, ys, B, 2.0, np.ones(T), 0.0, "squared", "CLARABEL", CLARABEL,
                   unique=True, w_tol=1e-6)


def test_zero_B_is_ridge_regression_per_task():
    Xs, ys, B, a = make_instance(12, 4, 5, 12, b_kind="zero")
    lam, ridge = 0.4, 0.1
    res = solve_tasks(Xs, ys, B, lam, weights=a, ridge=ridge)
    for t in range(4):
        n = Xs[t].shape[0]
        H = a[t] / n * Xs[t].T @ Xs[t] + 2 * (lam + ridge) * np.eye(5)
        w = np.linalg.solve(H, a[t] / n * Xs[t].T @ ys[t])
        assert np.allclose(res.solution[:, t], w, atol=1e-10)


def test_dense_and_pcg_paths_agree(monkeypatch):
    Xs, ys, B, a = make_instance(13, 15, 8, (10, 20), b_kind="dense")
    monkeypatch.setattr(tasks_mod, "DENSE_MAX", 10**9)
    dense = solve_tasks(Xs, ys, B, 1.5, weights=a, ridge=0.01)
    monkeypatch.setattr(tasks_mod, "DENSE_MAX", 0)
    pcg = solve_tasks(Xs, ys, B, 1.5, weights=a, ridge=0.01)
    assert dense.converged and pcg.converged
    assert dense.n_iter <= 2 < pcg.n_iter
    assert np.allclose(dense.solution, pcg.solution, atol=1e-8)


def test_strong_coupling_switches_preconditioner(monkeypatch):
    # Nearly singular I - B and a huge lam: block-Jacobi alone needs thousands of
    # iterations; the two-level PCG must still converge well within max_iter.
    rng = np.random.default_rng(14)
    T, d = 200, 5
    Xs = [rng.standard_normal((10, d)) for _ in range(T)]
    ys = [X @ rng.standard_normal(d) for X in Xs]
    B = np.zeros((T, T))
    for t in range(T):
        src = rng.choice(np.delete(np.arange(T), t), size=4, replace=False)
        B[src, t] = 0.245
    monkeypatch.setattr(tasks_mod, "DENSE_MAX", 0)
    res = solve_tasks(Xs, ys, sp.csr_matrix(B), 1e4, max_iter=1000)
    assert res.converged and res.n_iter < 1000
    monkeypatch.setattr(tasks_mod, "DENSE_MAX", 10**9)
    ref = solve_tasks(Xs, ys, B, 1e4)
    assert np.allclose(res.solution, ref.solution, atol=1e-7 * max(1, np.abs(ref.solution).max()))


def onehot_instance(seed: int, T: int, n: tuple[int, int], near: float):
    """One-hot groups plus a bias column (collinear in every task), integer and rare
    0/1 columns, tasks with fewer rows than features, and ``B = near * cycle``: with
    ``near = 1``, ``I - B`` is singular and so is the W-step system at ``ridge = 0``."""
    rng = np.random.default_rng(seed)
    Xs, ys = [], []
    for t in range(T):
        m = int(rng.integers(n[0], n[1] + 1))
        onehot = np.eye(4)[rng.integers(4, size=m)]
        ints = rng.integers(18, 81, size=(m, 1)).astype(float)
        rare = (rng.random((m, 2)) < [0.3, 0.02]).astype(float)
        X = np.hstack([onehot, ints, rare, np.ones((m, 1))])
        Xs.append(X)
        ys.append(X @ rng.standard_normal(8) * 3 + 30 + rng.standard_normal(m))
    B = near * np.roll(np.eye(T), 1, axis=1)
    return Xs, ys, B


def dense_system(Xs, ys, B, lam, a, ridge):
    """The squared W-step's normal equations, task-major, built independently."""
    T, d = len(Xs), Xs[0].shape[1]
    IB = np.eye(T) - B
    H = 2 * lam * np.kron(IB @ IB.T, np.eye(d)) + 2 * ridge * np.eye(d * T)
    rhs = np.zeros(d * T)
    for t in range(T):
        n = Xs[t].shape[0]
        H[t * d:(t + 1) * d, t * d:(t + 1) * d] += a[t] / n * Xs[t].T @ Xs[t]
        rhs[t * d:(t + 1) * d] = a[t] / n * Xs[t].T @ ys[t]
    return H, rhs


@pytest.mark.parametrize("dense_first", [True, False])
def test_singular_system_returns_minimum_norm_minimiser(dense_first, monkeypatch):
    # ridge = 0, I - B singular, a feature direction (one-hot sum minus bias) that no
    # task sees: infinitely many minimisers; the documented choice is the minimum-norm one
    Xs, ys, B = onehot_instance(21, 6, (3, 12), near=1.0)
    T, d = len(Xs), Xs[0].shape[1]
    a = np.ones(T)
    H, rhs = dense_system(Xs, ys, B, 0.8, a, 0.0)
    assert np.linalg.eigvalsh(H)[0] < 1e-12 * np.linalg.eigvalsh(H)[-1]  # really singular
    if not dense_first:
        monkeypatch.setattr(tasks_mod, "DENSE_MAX", 0)
        monkeypatch.setattr(tasks_mod, "PCG_BUDGET", 5)
    res = solve_tasks(Xs, ys, B, 0.8)
    assert res.converged, res.certificate
    w_min = np.linalg.lstsq(H, rhs, rcond=1e-12)[0].reshape(T, d).T
    assert np.allclose(res.solution, w_min, atol=1e-6 * np.abs(w_min).max())
    assert_matches(res, Xs, ys, B, 0.8, a, 0.0, "squared", "CLARABEL", CLARABEL,
                   unique=False, w_tol=0)


@pytest.fixture(scope="module")
def tabular_stall():
    """The real-data failure, small: 30 tabular tasks (one-hot + bias, n_t < d for many)
    and a B from an early fit on them (8 L-BFGS iterations of ``fit_alternating`` at
    lam = 1, mu = 0.1), where I - B is nearly singular (smallest singular value 0.007).
    B is stored (tests/data/tabular_stall_B.npz): recomputed, it would move with every
    change of the fit's rounding, and the CVXPY referee's accuracy with it."""
    from pathlib import Path

    from amtl_cvx.data import make_tabular_tasks

    data = make_tabular_tasks(30, random_state=1).train
    B = np.load(Path(__file__).parent / "data" / "tabular_stall_B.npz")["B"]
    a = 1.0 + 0.1 * B.sum(axis=1)
    return list(data.Xs), list(data.ys), B, a


def test_nearly_singular_coupling_falls_back_to_direct_solve(tabular_stall, monkeypatch):
    # PCG with both preconditioners stalls far above tol; the dense fallback certifies.
    Xs, ys, B, a = tabular_stall
    T, d = len(Xs), Xs[0].shape[1]
    assert np.linalg.svd(np.eye(T) - B, compute_uv=False)[-1] < 1e-2
    monkeypatch.setattr(tasks_mod, "DIRECT_MAX", 0)
    pcg_only = solve_tasks(Xs, ys, B, 1.0, weights=a, max_iter=1000)
    assert not pcg_only.converged  # the instance really defeats PCG
    monkeypatch.setattr(tasks_mod, "DIRECT_MAX", 6000)
    res = solve_tasks(Xs, ys, B, 1.0, weights=a, max_iter=1000)
    assert res.converged and res.n_iter <= tasks_mod.PCG_BUDGET + tasks_mod._MAX_REFINE
    H, rhs = dense_system(Xs, ys, B, 1.0, a, 0.0)
    w = np.linalg.solve(H, rhs).reshape(T, d).T  # unique minimiser (H nonsingular)
    assert np.allclose(res.solution, w, atol=1e-6 * np.abs(w).max())
    assert_matches(res, Xs, ys, B, 1.0, a, 0.0, "squared", "CLARABEL", CLARABEL,
                   unique=False, w_tol=0)


def test_logistic_newton_direction_falls_back_to_direct_solve(tabular_stall, monkeypatch):
    # a PCG that misses its forcing term (here: returns its zero start) must not leave
    # Newton with gradient steps: the direction comes from the dense Cholesky solve
    Xs, ys, B, a = tabular_stall
    ys = [np.where(y > np.median(y), 1.0, -1.0) for y in ys]
    monkeypatch.setattr(tasks_mod._TwoLevelPCG, "solve", lambda self, rhs, x0, r0, tol, it: (x0, 0))
    monkeypatch.setattr(tasks_mod, "DIRECT_MAX", 0)
    stalled = solve_tasks(Xs, ys, B, 1.0, loss="logistic", weights=a, ridge=1e-3, max_iter=30)
    assert not stalled.converged
    monkeypatch.setattr(tasks_mod, "DIRECT_MAX", 6000)
    res = solve_tasks(Xs, ys, B, 1.0, loss="logistic", weights=a, ridge=1e-3, max_iter=30)
    assert res.converged, res.certificate
    assert_matches(res, Xs, ys, B, 1.0, a, 1e-3, "logistic", "CLARABEL", CLARABEL,
                   unique=False, w_tol=0)


def test_logistic_on_nearly_singular_coupling(tabular_stall):
    Xs, ys, B, a = tabular_stall
    ys = [np.where(y > np.median(y), 1.0, -1.0) for y in ys]
    res = solve_tasks(Xs, ys, B, 1.0, loss="logistic", weights=a, ridge=1e-3, max_iter=30)
    assert res.converged, res.certificate
    assert_matches(res, Xs, ys, B, 1.0, a, 1e-3, "logistic", "CLARABEL", CLARABEL,
                   unique=False, w_tol=0)


def test_large_T_pcg_certificate_is_honest():
    Xs, ys, B, a = make_instance(15, 300, 6, (5, 40), b_kind="sparse")
    B = sp.csr_matrix(B * (np.random.default_rng(0).random(B.shape) < 0.03))
    res = solve_tasks(Xs, ys, B, 1.0, weights=a)
    assert res.converged
    # recompute the certificate independently
    G = tasks_gradient(Xs, ys, res.solution, B, 1.0, weights=a)
    G0 = tasks_gradient(Xs, ys, np.zeros_like(res.solution), B, 1.0, weights=a)
    cert = np.linalg.norm(G) / max(1.0, np.linalg.norm(G0))
    assert cert <= 1e-10
    assert cert == pytest.approx(res.certificate, rel=1e-3, abs=1e-14)


def test_cached_grams_give_same_answer():
    Xs, ys, B, a = make_instance(16, 10, 4, 12)
    g = precompute_grams(Xs, ys)
    r1 = solve_tasks(Xs, ys, B, 1.0, weights=a)
    r2 = solve_tasks(Xs, ys, B, 1.0, weights=a, grams=g)
    assert np.allclose(r1.solution, r2.solution, atol=1e-12)
    with pytest.raises(ValueError, match="grams"):
        solve_tasks(Xs, ys, B, 1.0, grams=precompute_grams(Xs[:3], ys[:3]))


# ----------------------------------------------------------------------------
# Logistic loss vs Clarabel / ECOS
# ----------------------------------------------------------------------------

LOG_CASES = [
    # seed, T, d, n, b_kind, ridge, lam
    (20, 1, 3, 30, "zero", 0.0, 0.5),
    (21, 5, 4, (20, 40), "sparse", 0.0, 1.0),
    (22, 10, 6, (15, 30), "dense", 0.05, 0.3),
    (23, 15, 8, (5, 10), "sparse", 0.1, 1.0),  # n_t < d with ridge > 0
]


@pytest.mark.parametrize("seed,T,d,n,b_kind,ridge,lam", LOG_CASES)
def test_logistic_matches_clarabel(seed, T, d, n, b_kind, ridge, lam):
    Xs, ys, B, a = make_instance(seed, T, d, n, loss="logistic", b_kind=b_kind)
    res = solve_tasks(Xs, ys, B, lam, loss="logistic", weights=a, ridge=ridge)
    assert_matches(res, Xs, ys, B, lam, a, ridge, "logistic", "CLARABEL", CLARABEL,
                   unique=True, w_tol=1e-5)


@pytest.mark.parametrize("seed,T,d,n,b_kind,ridge,lam", [LOG_CASES[1], LOG_CASES[2]])
def test_logistic_matches_ecos(seed, T, d, n, b_kind, ridge, lam):
    Xs, ys, B, a = make_instance(seed, T, d, n, loss="logistic", b_kind=b_kind)
    res = solve_tasks(Xs, ys, B, lam, loss="logistic", weights=a, ridge=ridge)
    assert_matches(res, Xs, ys, B, lam, a, ridge, "logistic", "ECOS", ECOS,
                   unique=True, w_tol=1e-5)


def test_logistic_large_T_uses_structure():
    Xs, ys, B, a = make_instance(24, 200, 5, (10, 30), loss="logistic", b_kind="sparse")
    B = sp.csr_matrix(B * (np.random.default_rng(1).random(B.shape) < 0.03))
    res = solve_tasks(Xs, ys, B, 1.0, loss="logistic", weights=a, ridge=0.01, record_history=True)
    assert res.converged and res.n_iter <= 30
    assert len(res.history) == res.n_iter
    # quadratic convergence at the end: the last certificate is far below the first
    assert res.history[-1] < 1e-6 * res.history[0]


def test_logistic_diverging_run_stops_unconverged():
    # Separable, identical tasks and I - B singular (W (I - B) = 0 for equal columns):
    # the infimum is 0 and not attained.
    rng = np.random.default_rng(25)
    X = rng.standard_normal((20, 2))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    B = np.array([[0.0, 1.0], [1.0, 0.0]])
    res = solve_tasks([X, X], [y, y], B, 1.0, loss="logistic", max_iter=4)
    assert not res.converged
    assert res.n_iter == 4
    assert res.objective < 2 * np.log(2)  # it did make progress from W = 0


# ----------------------------------------------------------------------------
# Warm start, gradient, objective
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_warm_start_at_solution(loss, monkeypatch):
    Xs, ys, B, a = make_instance(30, 12, 5, (10, 25), loss=loss)
    monkeypatch.setattr(tasks_mod, "DENSE_MAX", 0)
    r1 = solve_tasks(Xs, ys, B, 1.0, loss=loss, weights=a, ridge=0.01)
    assert r1.n_iter > 1
    r2 = solve_tasks(Xs, ys, B, 1.0, loss=loss, weights=a, ridge=0.01, W0=r1.solution)
    assert r2.converged and r2.n_iter <= 1
    assert np.allclose(r1.solution, r2.solution, atol=1e-9)
    # a nearby warm start needs fewer iterations than a cold one
    W0 = r1.solution + 1e-3 * np.random.default_rng(0).standard_normal(r1.solution.shape)
    r3 = solve_tasks(Xs, ys, B, 1.0, loss=loss, weights=a, ridge=0.01, W0=W0)
    assert r3.converged and r3.n_iter <= r1.n_iter


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_gradient_matches_finite_differences(loss):
    Xs, ys, B, a = make_instance(31, 4, 3, (5, 9), loss=loss)
    rng = np.random.default_rng(2)
    W = rng.standard_normal((3, 4))
    lam, ridge = 0.7, 0.2
    G = tasks_gradient(Xs, ys, W, B, lam, loss=loss, weights=a, ridge=ridge)
    h = 1e-6
    Gfd = np.zeros_like(W)
    for i in range(3):
        for t in range(4):
            E = np.zeros_like(W)
            E[i, t] = h
            fp = tasks_objective(Xs, ys, W + E, B, lam, loss=loss, weights=a, ridge=ridge)
            fm = tasks_objective(Xs, ys, W - E, B, lam, loss=loss, weights=a, ridge=ridge)
            Gfd[i, t] = (fp - fm) / (2 * h)
    assert np.allclose(G, Gfd, rtol=1e-6, atol=1e-7)
    # and the objective is the documented formula
    f = tasks_objective(Xs, ys, W, B, lam, loss=loss, weights=a, ridge=ridge)
    assert f == pytest.approx(numpy_objective(Xs, ys, W, B, lam, a, ridge, loss), rel=1e-13)


def test_weights_none_means_ones():
    Xs, ys, B, _ = make_instance(32, 5, 3, 8)
    r1 = solve_tasks(Xs, ys, B, 1.0)
    r2 = solve_tasks(Xs, ys, B, 1.0, weights=np.ones(5))
    assert np.array_equal(r1.solution, r2.solution)
    r3 = solve_tasks(Xs, ys, B, 1.0, weights=np.full(5, 3.0))
    assert not np.allclose(r1.solution, r3.solution)


def test_max_iter_zero_reports_start():
    Xs, ys, B, _ = make_instance(33, 3, 2, 6)
    res = solve_tasks(Xs, ys, B, 1.0, max_iter=0)
    assert res.n_iter == 0 and not res.converged
    assert np.array_equal(res.solution, np.zeros((2, 3)))


# ----------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------


def _good():
    Xs, ys, B, a = make_instance(40, 3, 2, 5)
    return Xs, ys, B, a


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda k: k.update(lam=0.0), "lam"),
        (lambda k: k.update(lam=-1.0), "lam"),
        (lambda k: k.update(ridge=-0.1), "ridge"),
        (lambda k: k.update(loss="hinge"), "loss"),
        (lambda k: k.update(weights=np.array([1.0, -1.0, 1.0])), "weights"),
        (lambda k: k.update(weights=np.ones(2)), "weights"),
        (lambda k: k["B"].__setitem__((0, 1), -0.5), "B"),
        (lambda k: k["B"].__setitem__((1, 1), 0.5), "B"),
        (lambda k: k["B"].__setitem__((0, 2), np.nan), "B"),
        (lambda k: k.update(B=np.zeros((2, 2))), "B"),
        (lambda k: k["Xs"].__setitem__(1, np.full((5, 2), np.inf)), "Xs"),
        (lambda k: k["Xs"].__setitem__(1, np.zeros((0, 2))), "Xs"),
        (lambda k: k["Xs"].__setitem__(1, np.zeros((5, 3))), "Xs"),
        (lambda k: k["ys"].__setitem__(0, np.zeros(4)), "ys"),
        (lambda k: k["ys"].__setitem__(0, np.array([np.nan] * 5)), "ys"),
        (lambda k: k.update(ys=k["ys"][:2]), "ys"),
        (lambda k: k.update(W0=np.zeros((3, 2))), "W0"),
        (lambda k: k.update(tol=0.0), "tol"),
        (lambda k: k.update(max_iter=-1), "max_iter"),
        (lambda k: k.update(loss="logistic"), "ys"),  # labels not in {-1, +1}
    ],
)
def test_validation_errors(mutate, match):
    Xs, ys, B, a = _good()
    kw = dict(Xs=list(Xs), ys=list(ys), B=B.copy(), lam=1.0)
    mutate(kw)
    with pytest.raises(ValueError, match=match):
        solve_tasks(**kw)


def test_validation_sparse_B_and_objective():
    Xs, ys, B, _ = _good()
    B2 = B.copy()
    B2[0, 0] = 1.0
    Bs = sp.csr_matrix(B2)
    with pytest.raises(ValueError, match="diagonal"):
        solve_tasks(Xs, ys, Bs, 1.0)
    with pytest.raises(ValueError, match="W"):
        tasks_objective(Xs, ys, np.zeros((2, 4)), B, 1.0)
    with pytest.raises(ValueError, match="Xs"):
        solve_tasks([], [], np.zeros((0, 0)), 1.0)


# --------------------------------------------------------------------------------------
# magnitudes (issue 11, item 2): the certificate and the answer do not depend on them
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1e-300, 1e-160, 1e-100, 1e-20, 1e20, 1e100, 1e150])
def test_squared_wstep_is_scale_free(scale):
    """Targets times ``scale``: the minimiser is ``scale`` times the unit one. With
    ``max(1, ||grad F(0)||)`` in the certificate, targets of 1e-100 were "solved" by
    ``W = 0`` with certificate 6e-100 and converged=True."""
    data = make_regression_tasks(n_tasks=6, n_features=4, n_samples=10, n_parents=1, random_state=0).train
    B = np.zeros((6, 6))
    B[0, 1] = 0.5
    unit = solve_tasks(data.Xs, data.ys, B, 1.0, weights=np.linspace(1.0, 2.0, 6), ridge=0.1)
    res = solve_tasks(data.Xs, [y * scale for y in data.ys], B, 1.0, weights=np.linspace(1.0, 2.0, 6), ridge=0.1)
    assert res.converged and res.certificate == pytest.approx(unit.certificate, abs=1e-13)
    np.testing.assert_allclose(res.solution / scale, unit.solution, rtol=1e-10, atol=1e-12)
    assert res.objective == pytest.approx(unit.objective * scale**2, rel=1e-10)


def test_squared_wstep_features_scale_free():
    data = make_regression_tasks(n_tasks=6, n_features=4, n_samples=10, n_parents=1, random_state=1).train
    B = np.zeros((6, 6))
    unit = solve_tasks(data.Xs, data.ys, B, 1.0)
    res = solve_tasks([X * 1e-100 for X in data.Xs], data.ys, B, 1e-200)
    assert res.converged
    np.testing.assert_allclose(res.solution * 1e-100, unit.solution, rtol=1e-10, atol=1e-12)


def test_squared_wstep_overflow_is_an_error():
    data = make_regression_tasks(n_tasks=6, n_features=4, n_samples=10, n_parents=1, random_state=0).train
    with pytest.raises(ValueError, match="W-step objective overflows float64"):
        solve_tasks(data.Xs, [y * 1e200 for y in data.ys], np.zeros((6, 6)), 1.0)


# --------------------------------------------------------------------------------------
# issue 17, item 2: one-hot + bias designs (exactly rank deficient with n_t >= d) and
# per-column badly scaled designs; uniqueness from the rank of the Hessian, not n_t >= d
# --------------------------------------------------------------------------------------
from tests.instances import colscaled_X, column_factors, distance_bound, is_pd, modulus  # noqa: E402


def family_instance(kind: str, seed: int, T: int, n: tuple[int, int], b_kind: str):
    """``onehot``: ``make_tabular_tasks`` with two 3-level groups, an integer and an
    indicator column and the bias (d = 9, rank <= 7 in every task); ``colscaled``: d = 6
    Gaussian columns with per-column factors 1e-3..1e3 shared by all tasks (units).
    ``b_kind``: ``sparse`` (random, I - B nonsingular) or ``cycle`` (I - B singular)."""
    rng = np.random.default_rng(seed)
    if kind == "onehot":
        from amtl_cvx import make_tabular_tasks

        data = make_tabular_tasks(T, group_sizes=(3, 3), n_integer=1, n_indicators=1, min_samples=n[0],
                                  max_samples=n[1], n_clusters=2, random_state=seed).train
        Xs, ys = [np.array(X) for X in data.Xs], [np.array(y) for y in data.ys]
    else:
        f, d = column_factors(rng, 6), 6
        Xs = [colscaled_X(rng, int(rng.integers(n[0], n[1] + 1)), d, f) for _ in range(T)]
        w0 = rng.standard_normal(d) / f  # every column matters in the targets
        ys = [X @ (w0 * (1 + 0.3 * rng.standard_normal(d))) + 0.1 * rng.standard_normal(X.shape[0]) for X in Xs]
    if b_kind == "cycle":
        B = np.roll(np.eye(T), 1, axis=1)
    else:
        B = rng.uniform(0.0, 0.6, size=(T, T)) * (rng.random((T, T)) < 0.3)
        np.fill_diagonal(B, 0.0)
    a = 1.0 + 2.0 * rng.random(T)
    return Xs, ys, B, a


def assert_wstep_solution_matches(res, W_ex, Xs, ys, B, lam, a, ridge) -> bool:
    """Unique minimiser (Hessian of full rank): ``||W - W_ex|| <= distance_bound``, and
    entrywise within 1e-6 when the Hessian is well conditioned. Returns uniqueness."""
    T, d = len(Xs), Xs[0].shape[1]
    H, rhs = dense_system(Xs, ys, B, lam, a, ridge)
    if not is_pd(H):
        return False  # many minimisers: the objectives are compared (assert_matches)
    m, L = modulus(H), float(np.linalg.eigvalsh(H)[-1])
    assert m > 0
    W = res.solution
    x, x_ref = W.T.ravel(), W_ex.T.ravel()  # task-major, as dense_system
    f = lambda V: numpy_objective(Xs, ys, V, B, lam, a, ridge, "squared")  # noqa: E731
    g = H @ x - rhs
    bound = distance_bound(x, f(W), f(W_ex), g, np.zeros(d * T, bool), m, L, f(np.zeros_like(W)))
    assert np.linalg.norm(x - x_ref) <= bound, (np.linalg.norm(x - x_ref), bound)
    if L / m <= 1e6:
        assert np.abs(W - W_ex).max() <= 1e-6 * max(1.0, np.abs(W_ex).max())
    return True


WFAMILY_CASES = [
    # kind, seed, T, n, b_kind, ridge, lam, unique
    ("onehot", 50, 6, (12, 25), "sparse", 0.0, 1.0, True),  # rank X_t < d, yet unique (I - B)
    ("onehot", 51, 6, (12, 25), "cycle", 0.0, 1.0, False),  # n_t >= d, yet not unique
    ("onehot", 52, 6, (12, 25), "cycle", 0.01, 1.0, True),  # ridge > 0
    ("onehot", 53, 8, (4, 9), "sparse", 0.0, 0.3, True),  # n_t < d, I - B nonsingular
    ("colscaled", 54, 6, (8, 15), "sparse", 0.0, 1.0, True),
    ("colscaled", 55, 5, (8, 15), "cycle", 0.0, 0.5, True),  # unique, condition number ~1e12
    ("colscaled", 56, 5, (2, 4), "cycle", 0.0, 1.0, True),  # n_t < d, stacked X of full rank
]


@pytest.mark.parametrize("kind,seed,T,n,b_kind,ridge,lam,unique", WFAMILY_CASES)
def test_onehot_and_column_scaled_families_match_clarabel(kind, seed, T, n, b_kind, ridge, lam, unique):
    Xs, ys, B, a = family_instance(kind, seed, T, n, b_kind)
    d = Xs[0].shape[1]
    if kind == "onehot":  # the family's point: exact collinearity whatever n_t is
        assert all(np.linalg.matrix_rank(X) < d for X in Xs)
    else:
        norms = np.linalg.norm(np.vstack(Xs), axis=0)
        assert norms.max() / norms.min() > 1e4
    res = solve_tasks(Xs, ys, B, lam, weights=a, ridge=ridge)
    # value: relative gap <= 1e-7 against Clarabel (the only check when not unique)
    assert_matches(res, Xs, ys, B, lam, a, ridge, "squared", "CLARABEL", CLARABEL, unique=False, w_tol=0)
    _, W_ex = referee(Xs, ys, B, lam, a, ridge, "squared", "CLARABEL", CLARABEL)
    assert assert_wstep_solution_matches(res, W_ex, Xs, ys, B, lam, a, ridge) == unique
