"""Multi-task baselines: CVXPY statements, fast solvers and numpy objectives agree.

Every comparison is between two independent routes: the exact CVXPY statement
(:mod:`amtl_cvx.problems.baselines`), the fast solver (:mod:`solvers.baselines`) and the
numpy objective (:mod:`amtl_cvx.baselines.multitask`, built on
:func:`amtl_cvx.problems.objective.task_losses`).
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from amtl_cvx import make_classification_tasks, make_regression_tasks, make_tabular_tasks
from amtl_cvx.algorithms import ConvergenceWarning
from amtl_cvx.algorithms.single_task import fit_single_task
from amtl_cvx.baselines.multitask import (
    MULTITASK_BASELINES,
    GOMTLRegressor,
    L21Classifier,
    MeanRegularizedRegressor,
    PooledRegressor,
    TraceNormRegressor,
    fit_gomtl,
    fit_l21,
    fit_mean_regularized,
    fit_pooled,
    fit_trace_norm,
    gomtl_initial_basis,
    gomtl_objective,
    l21_objective,
    mean_regularized_objective,
    pooled_objective,
    trace_norm_objective,
)
from amtl_cvx.data import MultiTaskData
from amtl_cvx.estimators import stack_tasks
from amtl_cvx.problems.baselines import (
    GOMTLBasisProblem,
    GOMTLCodesProblem,
    L21Problem,
    MeanRegularizedProblem,
    PooledProblem,
    TraceNormProblem,
)
from solvers import baselines as fast_baselines
from solvers.baselines import gomtl_basis, gomtl_rows
from solvers.baselines import lambda_max, relative_duality_gap, solve_gomtl_basis, solve_gomtl_codes, solve_penalized

W_RTOL = 1e-6  # unique minimisers: ||W_a - W_b|| / ||W_b||
F_RTOL = 1e-7  # objective values, relative


# ------------------------------------------------------------------ instances
def _random(seed=0):
    return make_regression_tasks(n_tasks=6, n_features=5, n_samples=[12, 30, 9, 20, 15, 40], random_state=seed).train


def _badly_scaled(seed=1):
    """Features spanning 1e-3..1e3, targets ~1e4."""
    rng = np.random.default_rng(seed)
    d, ns = 6, [8, 25, 12, 40, 10]
    scales = np.logspace(-3, 3, d)
    rng.shuffle(scales)
    w = rng.standard_normal(d) / scales
    Xs = [rng.standard_normal((n, d)) * scales for n in ns]
    ys = [1e4 * (X @ (w * (1 + 0.2 * rng.standard_normal(d))) + 0.1 * rng.standard_normal(len(X))) for X in Xs]
    return MultiTaskData(Xs, ys)


def _rank_deficient(seed=2):
    """Every task has fewer rows than features."""
    return make_regression_tasks(n_tasks=6, n_features=8, n_samples=[3, 5, 7, 4, 6, 2], random_state=seed).train


INSTANCES = {"random": _random, "badly_scaled": _badly_scaled, "rank_deficient": _rank_deficient}


def _logistic(seed=0):
    return make_classification_tasks(n_tasks=6, n_features=4, n_samples=[10, 14, 9, 20, 12, 16], random_state=seed).train


def _rel(A, B):
    return np.linalg.norm(A - B) / np.linalg.norm(B)


# ------------------------------------------------- statements = numpy objectives
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_statements_evaluate_the_numpy_objectives(loss):
    """objective_at (CVXPY, scaled and unscaled) equals the numpy objective at random points."""
    rng = np.random.default_rng(3)
    data = _badly_scaled() if loss == "squared" else _logistic()
    d, T, k = data.n_features, data.n_tasks, 3
    W = rng.standard_normal((d, T))
    lam, rho, mu = 0.7, 0.2, 0.3
    w = W[:, 0]
    p = PooledProblem(data, loss).set(lam)
    assert p.objective_at(w) == pytest.approx(pooled_objective(w, data, lam=lam, loss=loss), rel=1e-12)
    p = MeanRegularizedProblem(data, loss).set(lam, rho)
    assert p.objective_at(W) == pytest.approx(mean_regularized_objective(W, data, lam=lam, rho=rho, loss=loss), rel=1e-12)
    p = L21Problem(data, loss).set(lam, rho)
    assert p.objective_at(W) == pytest.approx(l21_objective(W, data, lam=lam, rho=rho, loss=loss), rel=1e-12)
    p = TraceNormProblem(data, loss).set(lam, rho)
    assert p.objective_at(W) == pytest.approx(trace_norm_objective(W, data, lam=lam, rho=rho, loss=loss), rel=1e-12)
    L, S = rng.standard_normal((d, k)), rng.standard_normal((k, T))
    F = gomtl_objective(L, S, data, mu=mu, lam=lam, loss=loss)
    codes = GOMTLCodesProblem(data, k, loss).set(L, mu)
    assert codes.objective_at(S) + lam * np.sum(L * L) == pytest.approx(F, rel=1e-12)
    basis = GOMTLBasisProblem(data, k, loss).set(S, lam)
    assert basis.objective_at(L) + mu * np.sum(np.abs(S)) == pytest.approx(F, rel=1e-12)
    for problem in (codes, basis):
        assert problem.problem.is_dcp(dpp=True)


# ----------------------------------------------- closed forms against CVXPY
@pytest.mark.parametrize("instance", sorted(INSTANCES))
def test_pooled_closed_form_equals_cvxpy(instance):
    data = INSTANCES[instance]()
    for lam in (1e-3, 0.5):
        W = fit_pooled(data, lam)
        assert np.all(W == W[:, :1])
        res = PooledProblem(data).set(lam).solve()
        assert _rel(res.solution, W) <= W_RTOL, (lam, res.stats.solver)
        F_fast = pooled_objective(W, data, lam=lam)
        F_exact = pooled_objective(res.solution, data, lam=lam)
        assert F_fast <= F_exact * (1 + 1e-12)
        assert F_exact - F_fast <= F_RTOL * F_fast
        assert res.objective == pytest.approx(F_exact, rel=1e-9)


@pytest.mark.parametrize("instance", sorted(INSTANCES))
def test_mean_regularized_closed_form_equals_cvxpy(instance):
    data = INSTANCES[instance]()
    problem = MeanRegularizedProblem(data)
    for lam, rho in ((1.0, 1e-3), (0.01, 0.3)):
        W = fit_mean_regularized(data, lam, rho)
        res = problem.set(lam, rho).solve()  # DPP: one statement, new parameter values
        assert _rel(res.solution, W) <= W_RTOL, (lam, rho, res.stats.solver)
        F_fast = mean_regularized_objective(W, data, lam=lam, rho=rho)
        F_exact = mean_regularized_objective(res.solution, data, lam=lam, rho=rho)
        assert F_fast <= F_exact * (1 + 1e-12)
        assert F_exact - F_fast <= F_RTOL * F_fast
        assert res.objective == pytest.approx(F_exact, rel=1e-9)


def test_mean_regularized_limits():
    """lam = 0: single-task ridge with rho; lam -> inf: pooled with lam_pooled = T rho."""
    data = _rank_deficient()
    T, rho = data.n_tasks, 0.05
    np.testing.assert_allclose(fit_mean_regularized(data, 0.0, rho), fit_single_task(data, rho), rtol=1e-10, atol=0)
    pooled = fit_pooled(data, T * rho)
    errors = [_rel(fit_mean_regularized(data, lam, rho), pooled) for lam in (1e4, 1e6)]
    assert errors[1] <= 1e-5
    assert errors[0] / errors[1] == pytest.approx(100.0, rel=0.05)  # the gap closes like 1 / lam
    assert _rel(fit_mean_regularized(data, 1e6, rho), fit_pooled(data, rho)) > 1e-2  # not the plain rho
    cls = _logistic()
    np.testing.assert_allclose(
        fit_mean_regularized(cls, 0.0, rho, "logistic"), fit_single_task(cls, rho, "logistic"), rtol=1e-8, atol=1e-10
    )
    assert _rel(fit_mean_regularized(cls, 1e7, rho, "logistic"), fit_pooled(cls, cls.n_tasks * rho, "logistic")) < 1e-5


# ------------------------------------------------------ norms: FISTA vs CVXPY
@pytest.mark.parametrize("penalty", ["l21", "trace"])
@pytest.mark.parametrize("instance, factor, rho", [("random", 0.2, 0.0), ("rank_deficient", 0.05, 0.0), ("random", 0.02, 0.1)])
def test_norm_fast_equals_cvxpy(penalty, instance, factor, rho):
    data = INSTANCES[instance]()
    fit, objective, Problem = (
        (fit_l21, l21_objective, L21Problem) if penalty == "l21" else (fit_trace_norm, trace_norm_objective, TraceNormProblem)
    )
    lam = factor * lambda_max(data.Xs, data.ys, penalty=penalty)
    W = fit(data, lam, rho=rho)
    res = Problem(data).set(lam, rho).solve()
    F_fast = objective(W, data, lam=lam, rho=rho)
    F_exact = objective(res.solution, data, lam=lam, rho=rho)  # independent numpy evaluation
    assert res.objective == pytest.approx(F_exact, rel=1e-8)
    assert abs(F_fast - F_exact) <= F_RTOL * F_exact, (F_fast, F_exact)
    if rho > 0:  # strongly convex: the minimiser is unique
        assert _rel(W, res.solution) <= 1e-4


def _tabular(seed=0):
    """12 tasks shaped like real tabular data: one-hot groups collinear with the bias, integer
    features in the tens, rare indicators, 17 to 150 rows for 28 features (rank-deficient
    tasks). The squared-loss norms are solved by proximal Newton with second-order finishes."""
    return make_tabular_tasks(n_tasks=12, random_state=seed).train


@pytest.mark.parametrize("penalty", ["l21", "trace"])
@pytest.mark.parametrize("seed, factor, rho", [(0, 0.05, 0.0), (0, 1e-3, 0.0), (1, 1e-3, 0.0), (1, 1e-3, 0.05)])
def test_squared_norms_on_tabular_equal_cvxpy(penalty, seed, factor, rho):
    """Badly scaled, collinear, rank-deficient tasks: the fast squared-loss fit is certified
    (relative duality gap recomputed from the data), its objective is the CVXPY optimum's,
    and with rho > 0 (unique minimiser) so is its solution."""
    data = _tabular(seed)
    fit, objective, Problem = (
        (fit_l21, l21_objective, L21Problem) if penalty == "l21" else (fit_trace_norm, trace_norm_objective, TraceNormProblem)
    )
    lam = factor * lambda_max(data.Xs, data.ys, penalty=penalty)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        W = fit(data, lam, rho=rho)
    assert relative_duality_gap(data.Xs, data.ys, W, lam, penalty=penalty, rho=rho) <= 1e-9
    res = Problem(data).set(lam, rho).solve()
    F_fast = objective(W, data, lam=lam, rho=rho)
    F_exact = objective(res.solution, data, lam=lam, rho=rho)
    assert F_fast <= F_exact * (1 + F_RTOL), (F_fast, F_exact)
    assert F_exact - F_fast <= F_RTOL * F_fast
    if rho > 0:
        assert _rel(W, res.solution) <= 1e-4


@pytest.mark.parametrize("penalty", ["l21", "trace"])
def test_squared_norm_path_on_tabular_is_certified(penalty):
    """The default grid's warm-started path (13 values of lam, lambda_max down to 1e-4 of it)
    on the tabular instance: every point certified from the data in a few proximal Newton
    iterations, the last one equal (objective) to its cold fit."""
    data = _tabular(1)
    grid = MULTITASK_BASELINES["l21" if penalty == "l21" else "trace_norm"].param_grid(data)["lam"]
    W = None
    for lam in sorted(grid, reverse=True):
        res = solve_penalized(data.Xs, data.ys, lam, penalty=penalty, W0=W, max_iter=10)
        assert res.converged, lam
        W = res.solution
        assert relative_duality_gap(data.Xs, data.ys, W, lam, penalty=penalty) <= 1e-9
    cold = solve_penalized(data.Xs, data.ys, lam, penalty=penalty)
    assert abs(res.objective - cold.objective) <= 2e-9 * cold.objective


def test_fast_certificate_is_scale_free():
    """Targets x 1e4 with lam x 1e4: the same iterations, the solution x 1e4."""
    data = _rank_deficient()
    for penalty in ("l21", "trace"):
        lam = 0.1 * lambda_max(data.Xs, data.ys, penalty=penalty)
        a = solve_penalized(data.Xs, data.ys, lam, penalty=penalty)
        b = solve_penalized(data.Xs, [1e4 * y for y in data.ys], 1e4 * lam, penalty=penalty)
        assert a.converged and b.converged and a.n_iter == b.n_iter
        np.testing.assert_allclose(b.solution, 1e4 * a.solution, rtol=1e-8, atol=1e-8 * np.abs(b.solution).max())


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_norms_vanish_exactly_from_lambda_max(loss):
    """W = 0 iff lam >= the largest row norm (l2,1) / spectral norm (trace) of the gradient at 0."""
    data = _random() if loss == "squared" else _logistic()
    # gradient of sum_t L_t at W = 0, written out: -X_t'y_t/n_t (squared), -X_t'y_t/(2 n_t) (logistic)
    G = np.column_stack([-X.T @ y / len(y) for X, y in zip(data.Xs, data.ys)])
    G = G if loss == "squared" else G / 2
    thresholds = {"l21": np.linalg.norm(G, axis=1).max(), "trace": np.linalg.norm(G, 2)}
    for penalty, fit in (("l21", fit_l21), ("trace", fit_trace_norm)):
        lam0 = thresholds[penalty]
        assert lambda_max(data.Xs, data.ys, penalty=penalty, loss=loss) == pytest.approx(lam0, rel=1e-12)
        assert np.all(fit(data, lam0 * (1 + 1e-9), loss) == 0.0)
        assert np.all(fit(data, lam0 * 1.5, loss, rho=0.3) == 0.0)
        W = fit(data, lam0 * 0.98, loss)
        assert np.abs(W).max() > 0
    res = L21Problem(data, loss).set(thresholds["l21"] * 1.01).solve()
    assert np.abs(res.solution).max() < 1e-6 * max(1.0, np.abs(fit_l21(data, thresholds["l21"] * 0.5, loss)).max())


# ------------------------------------------------------------------ logistic
def test_logistic_fast_equals_cvxpy():
    data = _logistic()
    loss = "logistic"
    W = fit_pooled(data, 0.01, loss)
    res = PooledProblem(data, loss).set(0.01).solve()
    assert _rel(res.solution, W) <= 1e-5  # ECOS / Clarabel's point on exponential cones: ~1e-6
    assert abs(pooled_objective(res.solution, data, lam=0.01, loss=loss) - pooled_objective(W, data, lam=0.01, loss=loss)) \
        <= F_RTOL * pooled_objective(W, data, lam=0.01, loss=loss)
    W = fit_mean_regularized(data, 0.1, 0.01, loss)
    res = MeanRegularizedProblem(data, loss).set(0.1, 0.01).solve()
    assert _rel(res.solution, W) <= 1e-5
    F = mean_regularized_objective(W, data, lam=0.1, rho=0.01, loss=loss)
    assert abs(mean_regularized_objective(res.solution, data, lam=0.1, rho=0.01, loss=loss) - F) <= F_RTOL * F
    for penalty, fit, objective, Problem in (
        ("l21", fit_l21, l21_objective, L21Problem), ("trace", fit_trace_norm, trace_norm_objective, TraceNormProblem)
    ):
        lam = 0.2 * lambda_max(data.Xs, data.ys, penalty=penalty, loss=loss)
        W = fit(data, lam, loss)
        res = Problem(data, loss).set(lam).solve()
        F, F_exact = objective(W, data, lam=lam, loss=loss), objective(res.solution, data, lam=lam, loss=loss)
        assert abs(F - F_exact) <= F_RTOL * F_exact, penalty


# -------------------------------------------------------------------- GO-MTL
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_gomtl_steps_are_optimal(loss):
    """Each fast S-step / L-step reaches the CVXPY optimum of its convex problem."""
    data = _rank_deficient() if loss == "squared" else _logistic()
    k, mu, lam = 3, 0.02, 0.1
    L = gomtl_initial_basis(data, k, loss)
    U = np.linalg.svd(fit_single_task(data, 1e-2, loss))[0][:, :k]  # top-k left singular vectors
    np.testing.assert_allclose(L @ L.T, U @ U.T, atol=1e-10)
    np.testing.assert_allclose(L.T @ L, np.eye(k), atol=1e-12)
    codes, basis = GOMTLCodesProblem(data, k, loss), GOMTLBasisProblem(data, k, loss)
    for _ in range(2):
        fast_S = solve_gomtl_codes(data.Xs, data.ys, L, mu, loss=loss)
        exact_S = codes.set(L, mu).solve()
        F_fast, F_exact = codes.objective_at(fast_S.solution), codes.objective_at(exact_S.solution)
        assert fast_S.converged and abs(F_fast - F_exact) <= F_RTOL * F_exact
        assert F_exact == pytest.approx(exact_S.objective, rel=1e-8)
        S = fast_S.solution
        fast_L = solve_gomtl_basis(data.Xs, data.ys, S, lam, loss=loss)
        exact_L = basis.set(S, lam).solve()
        assert fast_L.converged and _rel(exact_L.solution, fast_L.solution) <= 1e-5  # strongly convex in L
        F_fast, F_exact = basis.objective_at(fast_L.solution), basis.objective_at(exact_L.solution)
        assert abs(F_fast - F_exact) <= F_RTOL * F_exact
        L = fast_L.solution


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_gomtl_history_non_increasing(loss):
    data = _random() if loss == "squared" else _logistic()
    fit = fit_gomtl(data, 2, 0.05, 0.1, loss, max_iter=300)
    assert fit.converged
    h = fit.objective_history
    assert len(h) == fit.n_iter + 1 and np.all(np.diff(h) <= 0) and h[-1] < h[0]
    np.testing.assert_allclose(fit.W, fit.L @ fit.S)
    assert fit.objective == gomtl_objective(fit.L, fit.S, data, mu=0.05, lam=0.1, loss=loss)


def test_gomtl_cvxpy_backend_follows_the_fast_one():
    data = _rank_deficient()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = fit_gomtl(data, 2, 0.05, 0.1, max_iter=4)
        b = fit_gomtl(data, 2, 0.05, 0.1, backend="cvxpy", max_iter=4)
    assert np.all(np.diff(b.objective_history) <= 0)
    np.testing.assert_allclose(a.objective_history, b.objective_history, rtol=1e-7)


def _ill_conditioned_codes(loss, seed=0):
    """An S-step on which FISTA stalls: ``L`` has a nearly collinear pair of columns (angle
    ~1e-3) and columns of scales 1e-3 and 1e2, so every Gram ``(X_t L)'(X_t L)`` has a
    condition number near 1e10 (its active columns up to ~4e9)."""
    rng = np.random.default_rng(seed)
    d, ns = 6, [15, 25, 10, 40]
    v, u, a = rng.standard_normal((3, d))
    L = np.column_stack([v, v + 1e-3 * u, 1e-3 * a, 1e2 * rng.standard_normal(d)])
    Xs = [rng.standard_normal((n, d)) for n in ns]
    ys = [X @ ((1 + 0.3 * t) * v + u + (t % 2) * a) + 0.01 * rng.standard_normal(n) for t, (X, n) in enumerate(zip(Xs, ns))]
    if loss == "logistic":
        ys = [np.where(y > np.median(y), 1.0, -1.0) for y in ys]
    return Xs, ys, L


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_gomtl_codes_certified_on_ill_conditioned_instance(loss):
    """The S-step reaches its certificate (the largest per-task relative duality gap) where
    FISTA, whose step is set by the largest curvature, does not; checked from the data."""
    Xs, ys, L = _ill_conditioned_codes(loss)
    Ms = [X @ L for X in Xs]
    assert min(np.linalg.cond(M.T @ M) for M in Ms) > 1e9
    mu = 3e-5 * lambda_max(Ms, ys, penalty="l1", loss=loss)
    if loss == "squared":  # FISTA (the logistic loss is solved by proximal Newton, tests/test_prox_newton.py)
        assert solve_penalized(Ms, ys, mu, penalty="l1", loss=loss, max_iter=2000).certificate > 1e-2
    res = solve_gomtl_codes(Xs, ys, L, mu, loss=loss)
    S = res.solution
    assert res.converged and res.certificate <= 1e-10
    assert max(np.linalg.cond(M[:, S[:, t] != 0].T @ M[:, S[:, t] != 0]) for t, M in enumerate(Ms)) > 1e8
    # the certificate is the l1 solver's relative duality gap (independent code), task by task
    # (the two evaluations round differently: they agree to ~1e-12 at this conditioning)
    gaps = [relative_duality_gap([M], [y], S[:, [t]], mu, penalty="l1", loss=loss) for t, (M, y) in enumerate(zip(Ms, ys))]
    assert max(gaps) <= 1e-10 and abs(res.certificate - max(gaps)) <= 1e-11
    # ... also away from the optimum (max_iter=0 returns the start)
    S0 = np.ones_like(S)
    start = solve_gomtl_codes(Xs, ys, L, mu, loss=loss, S0=S0, max_iter=0)
    assert np.all(start.solution == S0) and not start.converged
    gaps0 = [relative_duality_gap([M], [y], S0[:, [t]], mu, penalty="l1", loss=loss) for t, (M, y) in enumerate(zip(Ms, ys))]
    assert start.certificate == pytest.approx(max(gaps0), rel=1e-9)
    if loss == "squared":  # optimality conditions from the data: |M_t' r_t / n_t| <= mu, = mu sign(s) on the support
        for t, (M, y) in enumerate(zip(Ms, ys)):
            corr = M.T @ (y - M @ S[:, t]) / len(y)
            on = S[:, t] != 0
            np.testing.assert_allclose(corr[on], mu * np.sign(S[on, t]), rtol=1e-9)
            assert np.all(np.abs(corr[~on]) < mu)
        # the same at every scale: targets and mu x 1e4 give S x 1e4, certified alike
        big = solve_gomtl_codes(Xs, [1e4 * y for y in ys], L, 1e4 * mu)
        assert big.converged
        np.testing.assert_allclose(big.solution, 1e4 * S, rtol=1e-8, atol=1e-8 * np.abs(1e4 * S).max())
    # ... and L x 1e3 with mu x 1e3 gives S / 1e3 (the same problem in s / 1e3)
    small = solve_gomtl_codes(Xs, ys, 1e3 * L, 1e3 * mu, loss=loss)
    assert small.converged
    np.testing.assert_allclose(1e3 * small.solution, S, rtol=1e-8, atol=1e-8 * np.abs(S).max())


def test_gomtl_warns_at_max_iter():
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        fit = fit_gomtl(_random(), 2, 0.05, 0.1, max_iter=1)
    assert not fit.converged and fit.n_iter == 1


def _gomtl_logistic(seed=0):
    return make_classification_tasks(n_tasks=6, n_features=10, n_samples=60, random_state=seed).train


@pytest.mark.parametrize("seed", [0, 3, 5])
def test_gomtl_codes_certified_from_a_far_warm_start(seed):
    """Logistic S-step at 2 L (or 5 L) warm-started from the codes at L, as after a step that
    rescales the basis: the first proximal Newton step is far and raises the objective while
    its certified gap falls a little. Such a point must not be accepted (it was, the task
    then stalled with a gap near 0.3); the step certifies every task and matches the cold
    start."""
    data = _gomtl_logistic(seed)
    steps = fast_baselines.GOMTLSteps(data.Xs, data.ys, "logistic")
    for k, mu, c in [(2, 0.03, 2.0), (3, 0.03, 2.0), (3, 0.1, 5.0)]:
        L = gomtl_initial_basis(data, k, "logistic")
        S0 = steps.codes(L, mu).solution
        warm, cold = steps.codes(c * L, mu, S0=S0), steps.codes(c * L, mu)
        assert warm.converged and warm.certificate <= 1e-10 and cold.converged
        assert abs(warm.objective - cold.objective) <= 1e-9 * cold.objective
        Ms = [X @ (c * L) for X in data.Xs]
        gaps = [relative_duality_gap([M], [y], warm.solution[:, [t]], mu, penalty="l1", loss="logistic")
                for t, (M, y) in enumerate(zip(Ms, data.ys))]
        assert max(gaps) <= 1e-10


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_gomtl_steps_padded_and_segmented_rows_agree(loss, monkeypatch):
    """Tasks of unequal sizes are padded with zero-weight rows into one (T, n, d) array
    (batched products); without padding the per-task sums are segment reductions. Both give
    the same steps, each certified."""
    data = _random() if loss == "squared" else _logistic()
    k, mu, lam = 2, 0.02, 0.1
    L = gomtl_initial_basis(data, k, loss)
    padded = fast_baselines.GOMTLSteps(data.Xs, data.ys, loss)
    monkeypatch.setattr(gomtl_rows, "_PAD_MAX", 0.0)
    segmented = fast_baselines.GOMTLSteps(data.Xs, data.ys, loss)
    assert padded._X3 is not None and segmented._X3 is None
    for steps in (padded, segmented):
        assert steps.objective(L, np.ones((k, data.n_tasks)), mu, lam) == pytest.approx(
            gomtl_objective(L, np.ones((k, data.n_tasks)), data, mu=mu, lam=lam, loss=loss), rel=1e-12)
    S_p, S_s = padded.codes(L, mu), segmented.codes(L, mu)
    assert S_p.converged and S_s.converged
    np.testing.assert_allclose(S_p.solution, S_s.solution, rtol=1e-8, atol=1e-10)
    L_p, L_s = padded.basis(S_p.solution, lam, L0=L), segmented.basis(S_p.solution, lam, L0=L)
    assert L_p.converged and L_s.converged
    np.testing.assert_allclose(L_p.solution, L_s.solution, rtol=1e-8, atol=1e-10)
    assert L_p.objective == pytest.approx(L_s.objective, rel=1e-12)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_gomtl_codes_from_a_warm_start_padded_and_segmented(loss, monkeypatch):
    """From a warm start far from the codes, the S-step re-evaluates only the tasks it
    has not certified; padded and segmented layouts give the same certified codes (the
    padded squared-loss path once indexed those tasks twice: an IndexError on
    synthetic_inbalance_1.mat)."""
    data = _rank_deficient() if loss == "squared" else _logistic()
    k = 5 if loss == "squared" else 3
    L = gomtl_initial_basis(data, k, loss)
    mu = 1e-3 * lambda_max([X @ L for X in data.Xs], data.ys, penalty="l1", loss=loss)
    S0 = 100.0 * np.random.default_rng(2).standard_normal((k, data.n_tasks))
    padded = fast_baselines.GOMTLSteps(data.Xs, data.ys, loss)
    monkeypatch.setattr(gomtl_rows, "_PAD_MAX", 0.0)
    segmented = fast_baselines.GOMTLSteps(data.Xs, data.ys, loss)
    assert padded._X3 is not None and segmented._X3 is None
    S_p, S_s = padded.codes(L, mu, S0=S0), segmented.codes(L, mu, S0=S0)
    assert S_p.converged and S_s.converged
    np.testing.assert_allclose(S_p.solution, S_s.solution, rtol=1e-8, atol=1e-10)


def test_gomtl_compressed_rows_agree(monkeypatch):
    """Squared-loss steps on tasks with more than d + 1 rows run on their QR-compressed rows
    (``[R_t; 0]``, targets ``[Q_t'y_t; ||y_perp||]``): the objective, the certified codes and
    the basis equal those computed on the raw rows."""
    data = make_regression_tasks(n_tasks=6, n_features=6, n_samples=[40, 9, 60, 25, 7, 30], random_state=3).train
    k, mu, lam = 3, 0.02, 0.1
    L = gomtl_initial_basis(data, k)
    compressed = fast_baselines.GOMTLSteps(data.Xs, data.ys)
    monkeypatch.setattr(gomtl_rows, "_compress_rows", lambda Xl, yl: (Xl, yl))
    raw = fast_baselines.GOMTLSteps(data.Xs, data.ys)
    assert compressed._X.shape[0] < raw._X.shape[0]
    S = np.abs(np.random.default_rng(0).standard_normal((k, data.n_tasks)))
    assert compressed.objective(L, S, mu, lam) == pytest.approx(raw.objective(L, S, mu, lam), rel=1e-12)
    assert compressed.objective(L, S, mu, lam) == pytest.approx(gomtl_objective(L, S, data, mu=mu, lam=lam), rel=1e-12)
    S_c, S_r = compressed.codes(L, mu), raw.codes(L, mu)
    assert S_c.converged and S_r.converged
    np.testing.assert_allclose(S_c.solution, S_r.solution, rtol=1e-8, atol=1e-10)
    L_c, L_r = compressed.basis(S_c.solution, lam, L0=L), raw.basis(S_c.solution, lam, L0=L)
    assert L_c.converged and L_r.converged
    np.testing.assert_allclose(L_c.solution, L_r.solution, rtol=1e-8, atol=1e-10)


def test_pcg_bounds_hold_for_any_iterate():
    """``_pcg`` returns ``lb <= g'H^{-1}g <= ub`` whatever the number of iterations, the
    preconditioner or the start (the L-step's certificate is built on them)."""
    rng = np.random.default_rng(0)
    n, lam2 = 30, 1e-3
    A = rng.standard_normal((60, n)) * np.logspace(-2, 1, n)
    H = A.T @ A + lam2 * np.eye(n)
    g = rng.standard_normal(n)
    exact = g @ np.linalg.solve(H, g)
    for budget in (1, 2, 5, 40):
        for psolve in (lambda r: r, lambda r: r / np.diag(H)):
            for x0 in (None, rng.standard_normal(n)):
                p, lb, ub, status = gomtl_basis._pcg(lambda v: H @ v, g, psolve, lam2, target=None,
                                                        rtol=1e-12, budget=budget, x0=x0)
                assert lb <= exact * (1 + 1e-12) and exact <= ub * (1 + 1e-12)
    p, lb, ub, status = gomtl_basis._pcg(lambda v: H @ v, g, lambda r: np.linalg.solve(H, r), lam2,
                                            target=None, rtol=1e-12, budget=5)
    assert status == "solved" and ub - lb <= 1e-8 * exact


def test_gomtl_logistic_basis_certificate_bounds_the_exact_decrement():
    """The logistic L-step's certificate (conjugate gradients with a kept preconditioner)
    is at least the exact relative Newton decrement (dense Hessian, from the data); the
    second and third calls reuse the first call's preconditioner with other codes."""
    data = _gomtl_logistic(1)
    k, lam, mu = 3, 1e-3, 0.03
    steps = fast_baselines.GOMTLSteps(data.Xs, data.ys, "logistic")
    L = gomtl_initial_basis(data, k, "logistic")
    d = data.n_features

    def grad_hess(L_, S_):
        g, H = 2 * lam * L_.ravel(order="F"), 2 * lam * np.eye(d * k)
        for t, (X, y) in enumerate(zip(data.Xs, data.ys)):
            m = y * (X @ L_ @ S_[:, t])
            p = 1 / (1 + np.exp(m))
            g += np.kron(S_[:, t], X.T @ (-y * p) / len(y))
            H += np.kron(np.outer(S_[:, t], S_[:, t]), (X.T * (p * (1 - p))) @ X / len(y))
        return g, H

    S = None
    for _ in range(3):
        S = steps.codes(L, mu, S0=S).solution
        res = steps.basis(S, lam, L0=L)
        g, H = grad_hess(res.solution, S)
        g0, H0 = grad_hess(np.zeros_like(L), S)
        exact = np.sqrt(g @ np.linalg.solve(H, g) / (g0 @ np.linalg.solve(H0, g0)))
        assert res.converged and exact <= res.certificate * (1 + 1e-6) + 1e-15
        fresh = solve_gomtl_basis(data.Xs, data.ys, S, lam, loss="logistic", L0=L)
        np.testing.assert_allclose(res.solution, fresh.solution, rtol=1e-7, atol=1e-9)
        L = res.solution


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_gomtl_acceleration_fewer_alternations_same_rule(loss):
    """The extrapolation and the balancing of the columns reach the stopping rule in far
    fewer alternations than plain alternation, no higher; the history is non-increasing,
    and from the returned point one more plain alternation (exact S-step, exact L-step)
    lowers the objective by at most tol relative (the plain rule holds there)."""
    data = (make_classification_tasks if loss == "logistic" else make_regression_tasks)(
        n_tasks=6, n_features=10, n_samples=60, random_state=0).train
    k, mu, lam, tol = 3, 0.01, 1e-3, 1e-6
    fast = fit_gomtl(data, k, mu, lam, loss, max_iter=2000)
    plain = fit_gomtl(data, k, mu, lam, loss, max_iter=2000, accelerate=False)
    assert fast.converged and plain.converged
    assert fast.n_iter <= plain.n_iter / 5 and fast.objective <= plain.objective
    assert np.all(np.diff(fast.objective_history) <= 0)
    assert fast.objective == gomtl_objective(fast.L, fast.S, data, mu=mu, lam=lam, loss=loss)
    steps = fast_baselines.GOMTLSteps(data.Xs, data.ys, loss)
    S = steps.codes(fast.L, mu, S0=fast.S).solution
    L = steps.basis(S, lam, L0=fast.L).solution
    assert fast.objective - gomtl_objective(L, S, data, mu=mu, lam=lam, loss=loss) <= tol * fast.objective


def test_gomtl_balance_is_the_best_rescaling():
    """``gomtl_balance`` keeps ``W = L S`` and lowers ``mu ||S||_1 + lam ||L||_F^2`` by the
    returned amount to its minimum over the rescalings ``(L diag(c), diag(c)^{-1} S)``."""
    rng = np.random.default_rng(0)
    L, S = rng.standard_normal((5, 3)) * [1.0, 10.0, 0.1], rng.standard_normal((3, 4))
    S[2] = 0.0  # an unused latent task: left as it is
    mu, lam = 0.3, 0.02

    def penalty(L_, S_):
        return mu * np.abs(S_).sum() + lam * np.sum(L_ * L_)

    Lb, Sb, drop = fast_baselines.gomtl_balance(L, S, mu, lam)
    np.testing.assert_allclose(Lb @ Sb, L @ S, rtol=1e-14, atol=1e-14)
    np.testing.assert_array_equal(Lb[:, 2], L[:, 2])
    assert drop > 0 and penalty(L, S) - penalty(Lb, Sb) == pytest.approx(drop, rel=1e-12)
    for i in range(2):  # no rescaling of one column does better
        for c in (0.9, 1.1):
            scale = np.ones(3)
            scale[i] = c
            assert penalty(Lb * scale, Sb / scale[:, None]) > penalty(Lb, Sb)
    assert fast_baselines.gomtl_balance(Lb, Sb, mu, lam)[2] <= 1e-14


def test_gomtl_initial_basis_is_kept_per_data():
    """The single-task ridge behind the initial basis is computed once per data set (a digest
    of its bytes): the same data give the same basis, other targets another one."""
    data = _logistic()
    first = gomtl_initial_basis(data, 2, "logistic")
    np.testing.assert_array_equal(gomtl_initial_basis(data, 2, "logistic"), first)
    np.testing.assert_array_equal(gomtl_initial_basis(data, 3, "logistic")[:, :2], first)
    flipped = MultiTaskData(data.Xs, [np.where(np.arange(len(y)) % 3 == 0, -y, y) for y in data.ys])  # other targets
    U = np.linalg.svd(fit_single_task(flipped, 1e-2, "logistic"))[0][:, :2]
    L = gomtl_initial_basis(flipped, 2, "logistic")
    np.testing.assert_allclose(L @ L.T, U @ U.T, atol=1e-10)
    assert not np.allclose(L @ L.T, first @ first.T)
    U = np.linalg.svd(fit_single_task(data, 0.1, "logistic"))[0][:, :2]
    L = gomtl_initial_basis(data, 2, "logistic", init_ridge=0.1)  # init_ridge is part of the key
    np.testing.assert_allclose(L @ L.T, U @ U.T, atol=1e-10)


# ------------------------------------------------------- registry, estimators
def test_registry_fits_and_grids():
    data = _random()
    for name, baseline in MULTITASK_BASELINES.items():
        grid = baseline.param_grid(data)
        assert set(grid) == set(baseline.params), name
        params = {key: values[len(values) // 2] for key, values in grid.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            W = baseline.fit(data, **params)
        assert W.shape == (data.n_features, data.n_tasks), name
        if name != "gomtl":
            assert np.isfinite(baseline.objective(W, data, **params))
    grid = MULTITASK_BASELINES["l21"].param_grid(data)
    assert max(grid["lam"]) == pytest.approx(lambda_max(data.Xs, data.ys, penalty="l21"))
    assert max(MULTITASK_BASELINES["gomtl"].param_grid(data)["n_latent"]) <= data.n_features
    with pytest.raises(ValueError, match="pass data"):
        MULTITASK_BASELINES["trace_norm"].param_grid()


def test_estimators_fit_the_functions():
    data = _random()
    X, y = stack_tasks(data)
    cases = [
        (PooledRegressor(lam=0.1, fit_intercept=False), fit_pooled(data, 0.1)),
        (MeanRegularizedRegressor(lam=1.0, rho=0.1, fit_intercept=False), fit_mean_regularized(data, 1.0, 0.1)),
        (TraceNormRegressor(lam=0.05, fit_intercept=False), fit_trace_norm(data, 0.05)),
    ]
    for est, W in cases:
        est.fit(X, y)
        np.testing.assert_allclose(est.coef_, W.T, rtol=1e-10, atol=1e-12)
        assert np.all(est.transfer_matrix_ == 0)
    m = GOMTLRegressor(n_latent=2, mu=0.05, lam=0.1, max_iter=300).fit(X, y)
    assert m.basis_.shape == (data.n_features + 1, 2) and np.all(np.diff(m.objective_history_) <= 0)
    cls = _logistic()
    Xc, yc = stack_tasks(cls)
    clf = L21Classifier(lam=0.01).fit(Xc, yc)
    assert clf.score(Xc, yc) > 0.6


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda d: fit_pooled(d, 0.0), "lam"),
        (lambda d: fit_pooled(d, -1.0), "lam"),
        (lambda d: fit_mean_regularized(d, -1.0, 0.1), "lam"),
        (lambda d: fit_mean_regularized(d, 1.0, 0.0), "rho"),
        (lambda d: fit_l21(d, float("nan")), "lam"),
        (lambda d: fit_l21(d, 0.1, rho=-0.1), "rho"),
        (lambda d: fit_trace_norm(d, 0.0), "lam"),
        (lambda d: fit_gomtl(d, 0, 0.1, 0.1), "n_latent"),
        (lambda d: fit_gomtl(d, 2, 0.0, 0.1), "mu"),
        (lambda d: fit_gomtl(d, 2, 0.1, -0.1), "lam"),
        (lambda d: fit_gomtl(d, 2, 0.1, 0.1, max_iter=0), "max_iter"),
        (lambda d: fit_pooled(d, 0.1, backend="exact"), "backend"),
        (lambda d: fit_pooled(d, 0.1, solver="OSQP"), "solver"),
        (lambda d: PooledRegressor(lam=0.0).fit(*stack_tasks(d)), "lam"),
    ],
)
def test_bad_hyperparameters_are_named(call, name):
    with pytest.raises(ValueError, match=name):
        call(_random())


def test_baselines_import_no_cvxpy():
    code = ("import sys, amtl_cvx.baselines; from amtl_cvx.baselines import fit_pooled, MULTITASK_BASELINES;"
            "import solvers.baselines; sys.exit(1 if 'cvxpy' in sys.modules else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
