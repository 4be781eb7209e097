"""Proximal Newton for the norm baselines (:mod:`solvers.prox_newton`): the logistic
losses, and the second-order finishes (Newton on the row support for l2,1, on the
fixed-rank manifold for the trace norm) that also serve the squared loss.

The referee is CVXPY (an independent statement written here for l1, the package's
statements for l2,1 and trace) and the relative duality gap evaluated from the data
(:func:`solvers.baselines.relative_duality_gap`, independent of the solver's iterates).
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

import solvers.prox_newton as pn
import solvers.prox_newton_spectral as pn_spectral
import solvers.prox_newton_support as pn_support
from amtl_cvx import make_classification_tasks, make_tabular_tasks
from amtl_cvx.baselines.multitask import MULTITASK_BASELINES, fit_l21, l21_objective
from amtl_cvx.data import MultiTaskData, MultiTaskDataset
from amtl_cvx.estimators.metrics import task_errors
from amtl_cvx.problems.baselines import L21Problem, TraceNormProblem
from amtl_cvx.model_selection import select_baseline
from solvers.baselines import lambda_max, penalized_objective, relative_duality_gap, solve_penalized

F_RTOL = 1e-7


def _labels(rng, Xs, w_scale=1.0):
    d = Xs[0].shape[1]
    w = rng.standard_normal(d) * w_scale
    return [np.where(X @ (w + 0.3 * rng.standard_normal(d)) + 0.3 * rng.standard_normal(len(X)) > 0, 1.0, -1.0) for X in Xs]


def _pca_like(seed=0, T=5, d=12, n=60):
    """Feature scales decaying from 4 to 0.01 (principal components), nearly separable."""
    rng = np.random.default_rng(seed)
    scales = np.logspace(np.log10(4.0), -2, d)
    Xs = [rng.standard_normal((n + 7 * t, d)) * scales for t in range(T)]
    return MultiTaskData(Xs, _labels(rng, Xs, w_scale=3.0))


def _collinear(seed=0, T=4, d=6, n=20, spread=1e-3):
    """Two columns nearly collinear: the Gram matrices have condition numbers near
    ``1 / spread^2`` (1e6; at 1e-5, 1e10, Clarabel's answer on the exponential cones is
    only accurate to about 5e-7, status optimal_inaccurate below that)."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((d, d))
    base[:, 1] = base[:, 0] + spread * rng.standard_normal(d)
    Xs = [rng.standard_normal((n + 5 * t, d)) @ base for t in range(T)]
    return MultiTaskData(Xs, _labels(rng, Xs))


def _small(seed=0):
    return make_classification_tasks(n_tasks=6, n_features=4, n_samples=[10, 14, 9, 20, 12, 16], random_state=seed).train


INSTANCES = {"small": _small, "pca_like": _pca_like, "collinear": _collinear}


def _cvxpy_l1(data, lam, rho):
    d, T = data.n_features, data.n_tasks
    W = cp.Variable((d, T))
    losses = [cp.sum(cp.logistic(-cp.multiply(y, X @ W[:, t]))) / len(y) for t, (X, y) in enumerate(zip(data.Xs, data.ys))]
    prob = cp.Problem(cp.Minimize(cp.sum(losses) + lam * cp.sum(cp.abs(W)) + rho * cp.sum_squares(W)))
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9)
    assert prob.status == cp.OPTIMAL
    return W.value


def _referee(penalty, data, lam, rho):
    if penalty == "l21":
        return L21Problem(data, "logistic").set(lam, rho).solve().solution
    if penalty == "trace":
        return TraceNormProblem(data, "logistic").set(lam, rho).solve().solution
    return _cvxpy_l1(data, lam, rho)


@pytest.mark.parametrize("penalty", ["l21", "trace", "l1"])
@pytest.mark.parametrize("instance", list(INSTANCES))
@pytest.mark.parametrize("factor, rho", [(0.2, 0.0), (1e-3, 0.0), (1e-3, 0.05)])
def test_logistic_norms_equal_cvxpy(penalty, instance, factor, rho):
    data = INSTANCES[instance]()
    lam = factor * lambda_max(data.Xs, data.ys, penalty=penalty, loss="logistic")
    res = solve_penalized(data.Xs, data.ys, lam, penalty=penalty, rho=rho, loss="logistic", max_iter=100)
    assert res.converged and res.certificate <= 1e-9
    # the certificate recomputed from the data at the returned point
    gap = relative_duality_gap(data.Xs, data.ys, res.solution, lam, penalty=penalty, rho=rho, loss="logistic")
    assert gap <= 1e-9
    W_ref = _referee(penalty, data, lam, rho)
    F = penalized_objective(data.Xs, data.ys, res.solution, lam, penalty=penalty, rho=rho, loss="logistic")
    F_ref = penalized_objective(data.Xs, data.ys, W_ref, lam, penalty=penalty, rho=rho, loss="logistic")
    # the fast point is never worse than the referee's beyond the referee's own accuracy
    assert F <= F_ref * (1 + F_RTOL), (F, F_ref)
    assert F_ref - F <= F_RTOL * F  # and the referee agrees (1e-9 gap: F is within 1e-9 of the optimum)
    if rho > 0:  # strongly convex: unique minimiser
        assert np.linalg.norm(res.solution - W_ref) <= 1e-4 * max(np.linalg.norm(W_ref), 1e-12)


@pytest.mark.parametrize("penalty, iterations", [("l21", 30), ("trace", 30), ("l1", 30)])
def test_weakly_regularised_logistic_takes_few_newton_iterations(penalty, iterations):
    """At lam = 1e-4 lambda_max on PCA-scaled, nearly separable data (the regime where FISTA
    on F needed 20,000 passes over usps1.mat), a handful of outer iterations certify."""
    data = _pca_like(seed=3, T=6, d=20, n=120)
    lam = 1e-4 * lambda_max(data.Xs, data.ys, penalty=penalty, loss="logistic")
    res = solve_penalized(data.Xs, data.ys, lam, penalty=penalty, loss="logistic", max_iter=iterations, record_history=True)
    assert res.converged, res.history
    assert res.n_iter == len(res.history) <= iterations
    assert relative_duality_gap(data.Xs, data.ys, res.solution, lam, penalty=penalty, loss="logistic") <= 1e-9


def test_support_newton_finishes_what_fista_cannot():
    """l1 on nearly collinear columns: without the support Newton step the inner FISTA
    stalls and 20 outer iterations do not certify; with it they do."""
    data = _collinear(seed=1, spread=1e-5)
    lam = 1e-3 * lambda_max(data.Xs, data.ys, penalty="l1", loss="logistic")
    res = solve_penalized(data.Xs, data.ys, lam, penalty="l1", loss="logistic", max_iter=20)
    assert res.converged
    original = pn._support_newton
    try:
        pn._support_newton = lambda V, *args, **kwargs: V
        crippled = solve_penalized(data.Xs, data.ys, lam, penalty="l1", loss="logistic", max_iter=20)
    finally:
        pn._support_newton = original
    assert not crippled.converged and crippled.certificate > 1e3 * res.certificate


def test_support_newton_is_exact_on_a_given_support():
    """On a quadratic model with the right support, Newton's method reaches the model's
    optimality conditions to rounding (rows: ``G + H d + lam V_j / ||V_j|| = 0``)."""
    rng = np.random.default_rng(0)
    d, T, lam = 6, 3, 0.3
    A = rng.standard_normal((T, d, d))
    H = np.einsum("tij,tkj->tik", A, A) + 1e-6 * np.eye(d)
    W = np.zeros((d, T))
    G = rng.standard_normal((d, T))
    V = np.zeros((d, T))
    V[:3] = rng.standard_normal((3, T))  # a start on rows 0..2

    def model(V_):
        D = V_ - W
        return float(np.vdot(G, D) + 0.5 * np.vdot(D, np.einsum("tij,jt->it", H, D))) + lam * np.linalg.norm(V_, axis=1).sum()

    V = pn._support_newton(V, W, G, H, lam, 0.0, "rows", model)
    grad = G + np.einsum("tij,jt->it", H, V - W)
    rows = np.linalg.norm(V[:3], axis=1)
    assert np.all(rows > 0) and np.all(V[3:] == 0)
    stationarity = grad[:3] + lam * V[:3] / rows[:, None]
    assert np.abs(stationarity).max() <= 1e-9 * np.abs(G).max()


def test_warm_started_grid_equals_cold_grid():
    """select_baseline walks the norm baselines' lam grid from large to small with warm
    starts: the table and the choice are those of independent cold fits."""
    rng = np.random.default_rng(0)
    full = _pca_like(seed=5, T=4, d=8, n=80)
    split = [rng.permutation(len(y)) for y in full.ys]
    part = lambda idx: MultiTaskData([X[i] for X, i in zip(full.Xs, idx)], [y[i] for y, i in zip(full.ys, idx)])  # noqa: E731
    tr, va = part([s[: len(s) // 2] for s in split]), part([s[len(s) // 2:] for s in split])
    ds = MultiTaskDataset(tr, va, va, "logistic")
    calls = []
    original = MULTITASK_BASELINES["l21"].function

    def spy(*args, **kwargs):
        calls.append(kwargs.get("W0") is not None)
        return original(*args, **kwargs)

    object.__setattr__(MULTITASK_BASELINES["l21"], "function", spy)
    try:
        warm = select_baseline(ds, "l21")
    finally:
        object.__setattr__(MULTITASK_BASELINES["l21"], "function", original)
    assert calls.count(False) == 1 and len(calls) == len(warm.table)  # one path, one cold start
    for params, err in warm.table:
        W = fit_l21(tr, params["lam"], "logistic")
        assert err == pytest.approx(float(np.mean(task_errors(W, va, "logistic"))), abs=1e-12)
    assert l21_objective(warm.W, tr, lam=warm.params["lam"], loss="logistic") == pytest.approx(
        l21_objective(fit_l21(tr, warm.params["lam"], "logistic"), tr, lam=warm.params["lam"], loss="logistic"), rel=1e-9
    )


# ------------------------------------------------ the second-order finishes (squared loss too)
def _tabular(seed=0):
    """12 tasks shaped like real tabular data (one-hot groups collinear with the bias,
    integer features in the tens, rare indicators; several tasks with fewer rows than the
    28 features)."""
    return make_tabular_tasks(n_tasks=12, random_state=seed).train


def _chart_problem(seed, d=7, T=9, r=3, rho=0.3, lam=0.7, near=False):
    """A random model (per-task Hessians, gradient, centre) and a rank-r point; ``near``: the
    gradient chosen so that the point is close to stationary on its rank-r manifold (the
    Hessian in the chart is then positive definite)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((T, d, d))
    H = np.einsum("tij,tkj->tik", A, A)
    W = rng.standard_normal((d, T))
    V = rng.standard_normal((d, r)) @ rng.standard_normal((r, T))
    U, Up, S, Q = pn_spectral._spectral_chart(V)
    G = rng.standard_normal((d, T))
    if near:
        G = -(pn_support._hess_apply(H, V - W) + 2 * rho * V + lam * U @ Q.T) + 0.05 * rng.standard_normal((d, T))

    def model(V_):
        D = V_ - W
        return (float(np.vdot(G, D) + 0.5 * np.vdot(D, pn_support._hess_apply(H, D))) + rho * float(np.sum(V_ * V_))
                + lam * float(np.linalg.svd(V_, compute_uv=False).sum()))

    GW = G + pn_support._hess_apply(H, V - W) + 2 * rho * V + lam * U @ Q.T
    return H, W, G, V, U, Up, S, Q, GW, model, lam, rho


@pytest.mark.parametrize("seed, shape", [(0, (7, 9, 3)), (1, (6, 4, 2)), (2, (5, 8, 5))])
def test_spectral_chart_derivatives_match_finite_differences(seed, shape):
    """The trace-norm finish's gradient and Hessian in the chart ``(K, B) -> (U + U_perp K) B``
    (:func:`solvers.prox_newton_spectral._spectral_hessian_apply`) are those of the model, by central
    differences; the Hessian is symmetric."""
    d, T, r = shape
    H, W, G, V, U, Up, S, Q, GW, model, lam, rho = _chart_problem(seed, d, T, r)
    B = S[:, None] * Q.T
    m = d - r

    def chart(k, b):
        return model((U + Up @ k) @ (B + b))

    rng = np.random.default_rng(seed + 10)
    k, b = rng.standard_normal((m, r)), rng.standard_normal((r, T))
    h = 1e-5
    slope = (chart(h * k, h * b) - chart(-h * k, -h * b)) / (2 * h)
    assert slope == pytest.approx(np.vdot(Up.T @ GW @ B.T, k) + np.vdot(U.T @ GW, b), rel=1e-6)
    h = 1e-4
    curvature = (chart(h * k, h * b) - 2 * chart(0 * k, 0 * b) + chart(-h * k, -h * b)) / h**2
    Hk, Hb = pn_spectral._spectral_hessian_apply(V, GW, H, lam, rho, k, b)
    assert curvature == pytest.approx(np.vdot(k, Hk) + np.vdot(b, Hb), rel=1e-5)
    k2, b2 = rng.standard_normal((m, r)), rng.standard_normal((r, T))
    H2k, H2b = pn_spectral._spectral_hessian_apply(V, GW, H, lam, rho, k2, b2)
    assert np.vdot(k2, Hk) + np.vdot(b2, Hb) == pytest.approx(np.vdot(k, H2k) + np.vdot(b, H2b), rel=1e-12)


@pytest.mark.parametrize("seed, shape, rho", [(0, (7, 9, 3), 0.3), (1, (7, 9, 3), 0.0), (2, (6, 4, 2), 0.1), (3, (5, 8, 5), 0.0)])
def test_spectral_step_solves_the_chart_newton_system(seed, shape, rho):
    """The block solve of the trace-norm Newton step (Woodbury on the B-block, Schur
    complement on K) solves the system of the Hessian formula, assembled densely, to rounding."""
    d, T, r = shape
    H, W, G, V, U, Up, S, Q, GW, model, lam, rho = _chart_problem(seed, d, T, r, rho=rho, near=True)
    B = S[:, None] * Q.T
    m = d - r
    UpGW = Up.T @ GW
    gK, gB = UpGW @ B.T, U.T @ GW
    n = m * r + r * T
    cols = []
    for e in np.eye(n):
        hk, hb = pn_spectral._spectral_hessian_apply(V, GW, H, lam, rho, e[: m * r].reshape(m, r), e[m * r:].reshape(r, T))
        cols.append(np.concatenate([hk.ravel(), hb.ravel()]))
    dense = np.array(cols).T
    assert np.linalg.eigvalsh(0.5 * (dense + dense.T)).min() > 0  # near stationarity: positive definite
    xk, xb = pn_spectral._spectral_step(H, (U, Up, S, Q), B, UpGW, gK, gB, lam, rho)
    g = np.concatenate([gK.ravel(), gB.ravel()])
    assert np.abs(dense @ np.concatenate([xk.ravel(), xb.ravel()]) - g).max() <= 1e-10 * np.abs(g).max()


@pytest.mark.parametrize("penalty, finish", [("trace", "_spectral_newton"), ("l21", "_support_newton")])
def test_second_order_finishes_save_the_inner_iterations(penalty, finish, monkeypatch):
    """Squared loss on the tabular instance at lam = 1e-3 lambda_max: with the second-order
    finish (Newton on the rank manifold / on the row support) the fit certifies after a few
    hundred proximal-gradient iterations; without it (the finish replaced by the identity)
    the same certificate costs ten times as many."""
    data = _tabular(0)
    lam = 1e-3 * lambda_max(data.Xs, data.ys, penalty=penalty)
    counted = []
    original = pn._model_step

    def counting(*args, **kwargs):
        out = original(*args, **kwargs)
        counted[-1] += out[2]
        return out

    monkeypatch.setattr(pn, "_model_step", counting)
    runs = []
    for crippled in (False, True):
        if crippled:
            monkeypatch.setattr(pn, finish, lambda V, *args, **kwargs: V)
        counted.append(0)
        res = solve_penalized(data.Xs, data.ys, lam, penalty=penalty, max_iter=20)
        assert res.converged
        assert relative_duality_gap(data.Xs, data.ys, res.solution, lam, penalty=penalty) <= 1e-9
        runs.append(counted[-1])
    assert runs[1] >= 10 * runs[0], runs


def test_support_newton_rows_woodbury_equals_dense():
    """The l2,1 support Newton step solved by the Woodbury identity is the dense Newton
    step: one step from a point on the support lands where the dense system says."""
    rng = np.random.default_rng(4)
    d, T, lam, rho = 6, 5, 0.3, 0.05
    A = rng.standard_normal((T, d, 3))  # rank-deficient Hessians (3 < d)
    H = np.einsum("tij,tkj->tik", A, A)
    W, G = np.zeros((d, T)), rng.standard_normal((d, T))
    V = np.zeros((d, T))
    V[[0, 2, 3]] = rng.standard_normal((3, T))
    rows = [0, 2, 3]

    def model(V_):
        D = V_ - W
        return (float(np.vdot(G, D) + 0.5 * np.vdot(D, pn_support._hess_apply(H, D))) + rho * float(np.sum(V_ * V_))
                + lam * np.linalg.norm(V_, axis=1).sum())

    # the dense Newton step on the support (unknowns task-major: row j of task t)
    norms = np.linalg.norm(V[rows], axis=1)
    grad = (G + pn_support._hess_apply(H, V - W) + 2 * rho * V)[rows] + lam * V[rows] / norms[:, None]
    n = len(rows) * T
    K = np.zeros((n, n))
    for t in range(T):
        K[t * 3:(t + 1) * 3, t * 3:(t + 1) * 3] = H[t][np.ix_(rows, rows)] + 2 * rho * np.eye(3)
    for i, j in enumerate(rows):
        u = V[j] / norms[i]
        idx = np.arange(T) * 3 + i
        K[np.ix_(idx, idx)] += lam / norms[i] * (np.eye(T) - np.outer(u, u))
    step = np.linalg.solve(K, grad.T.ravel()).reshape(T, 3).T
    V1 = pn._support_newton(V, W, G, H, lam, rho, "rows", model, max_iter=1)
    full = V.copy()
    full[rows] -= step
    if model(full) <= model(V) - 1e-4 * float(np.vdot(grad, step)):  # the full step was taken
        np.testing.assert_allclose(V1, full, rtol=1e-9, atol=1e-12)
    else:
        direction = (V - V1)[rows]
        np.testing.assert_allclose(direction / np.abs(direction).max(), step / np.abs(step).max(), atol=1e-9)
