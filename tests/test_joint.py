"""The whole-problem KKT certificate and the L-BFGS fit, held to the CVXPY statements.

A fit that claims a stationary point of F(W, B) must have a B that is the exact B-step
for its W and a W that is the exact W-step for its B: both are checked by CVXPY.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import solvers.joint as joint_mod
from amtl_cvx import fit_alternating, make_regression_tasks
from amtl_cvx.algorithms import ConvergenceWarning
from amtl_cvx.data import make_tabular_tasks
from amtl_cvx.problems.objective import loss_weights, task_losses
from amtl_cvx.problems import TasksProblem, TransferProblem
from solvers.joint import amtl_kkt_residual


@pytest.fixture(scope="module")
def planted():
    return make_regression_tasks(n_tasks=10, n_features=4, n_samples=(8, 30, 12, 5, 40, 9, 20, 6, 15, 30),
                                 random_state=3).train


def _cert(data, W, B, lam, mu, ridge=0.0, loss="squared", c=None):
    return amtl_kkt_residual(data.Xs, data.ys, W, B, lam, mu=mu, loss=loss, ridge=ridge, c=c)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_lbfgs_fit_is_a_stationary_point_checked_by_cvxpy(planted, loss):
    data = planted
    if loss == "logistic":
        data = make_regression_tasks(n_tasks=8, n_features=3, n_samples=25, random_state=4).train
        from amtl_cvx.data import MultiTaskData

        data = MultiTaskData(data.Xs, [np.where(y > 0, 1.0, -1.0) for y in data.ys])
    lam, mu, ridge = 0.7, 0.3, 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        fit = fit_alternating(data, lam=lam, mu=mu, ridge=ridge, loss=loss, tol=1e-7, transfer_ridge=0.0)
    assert fit.method == "lbfgs" and fit.converged and fit.certificate <= 1e-7
    # B is the exact B-step of W ...
    p = mu * fit.c * task_losses(fit.W, data, loss)
    bstep = TransferProblem(data.n_features, data.n_tasks).set(fit.W, p, lam).solve("CLARABEL")
    assert np.abs(fit.B - bstep.solution).max() <= 1e-5 * max(1.0, np.abs(bstep.solution).max())
    # ... and W the exact W-step of B
    wstep = TasksProblem(data, loss).set(fit.B, lam, loss_weights(fit.B, fit.c, mu), ridge).solve("CLARABEL")
    R = fit.W - fit.W @ fit.B
    w_obj = float(loss_weights(fit.B, fit.c, mu) @ task_losses(fit.W, data, loss) + lam * np.sum(R * R)
                  + ridge * np.sum(fit.W * fit.W))
    assert fit.objective == pytest.approx(w_obj, rel=1e-12)
    assert (w_obj - wstep.objective) / max(1.0, abs(wstep.objective)) <= 1e-7


def test_certificate_sees_a_non_optimal_column_and_is_scale_free(planted):
    fit = fit_alternating(planted, lam=1.0, mu=0.2, ridge=0.0, transfer_ridge=0.0)
    assert fit.converged
    cert = _cert(planted, fit.W, fit.B, 1.0, 0.2)
    assert cert == pytest.approx(fit.certificate, rel=1e-9, abs=1e-15)
    # the last column of B zeroed (true B-step column is nonzero): the certificate sees it
    j = int(np.flatnonzero(fit.B.sum(axis=0) > 0)[-1])
    B_bad = fit.B.copy()
    B_bad[:, j] = 0.0
    assert _cert(planted, fit.W, B_bad, 1.0, 0.2) > 1e-3
    # a perturbed W: the W-block sees it
    assert _cert(planted, fit.W * 1.01, fit.B, 1.0, 0.2) > 1e-3
    # scale: y -> 1000 y, W -> 1000 W: every term of F and its gradients scales alike
    from amtl_cvx.data import MultiTaskData

    big = MultiTaskData(planted.Xs, [1000.0 * y for y in planted.ys])
    assert _cert(big, 1000.0 * fit.W, fit.B, 1.0, 0.2) == pytest.approx(cert, rel=1e-6, abs=1e-12)


def test_regression_200_tasks_reaches_the_target_objective():
    # issue 10: 50 alternations stop 3% above 89.4788343 (what 792 alternations reach)
    data = make_regression_tasks(n_tasks=200, n_features=20, random_state=0).train
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        fit = fit_alternating(data, lam=1.0, mu=0.1, ridge=0.0, transfer_ridge=0.0)
    assert fit.converged and fit.certificate <= 1e-6
    assert fit.objective <= 89.4788343 * (1 + 1e-6)


def test_alternation_at_max_iter_warns_and_reports_its_certificate(planted):
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        fit = fit_alternating(planted, lam=1.0, mu=0.2, method="alternating", max_iter=3)
    assert not fit.converged and fit.n_iter == 3 and fit.certificate > 1e-6


def test_tabular_fit_with_ridge_converges_without_warnings():
    data = make_tabular_tasks(40, random_state=2).train
    assert (data.n_samples < data.n_features).any()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        fit = fit_alternating(data, lam=1.0, mu=0.1, ridge=0.1)
    assert fit.converged
    assert np.all(np.diff(fit.objective_history) <= 1e-12 * np.abs(fit.objective_history[:-1]))


def test_blas_threads_are_capped_inside_the_solvers(planted, monkeypatch):
    seen = []
    original = joint_mod.solve_transfer

    def spy(*args, **kwargs):
        seen.extend(blas_threads())
        return original(*args, **kwargs)

    def blas_threads():
        return [m["num_threads"] for m in threadpool_info() if m["user_api"] == "blas"]

    monkeypatch.setattr(joint_mod, "solve_transfer", spy)
    before = blas_threads()
    for _ in range(2):  # the thread pools are found once (a cached controller) and capped each time
        fit_alternating(planted, lam=1.0, mu=0.2)
        assert seen and set(seen) == {1}
        assert blas_threads() == before  # restored after the fit
        seen.clear()
    with pytest.raises(ValueError, match="blas_threads"):
        fit_alternating(planted, blas_threads=0)


def test_method_validation(planted):
    with pytest.raises(ValueError, match="method"):
        fit_alternating(planted, method="newton")
    with pytest.raises(ValueError, match="backend='fast'"):
        fit_alternating(planted, method="lbfgs", backend="cvxpy")


# ------------------------------------------------------------------ Newton finish
def _G_and_grad(data, W, lam, mu, rho=0.0):
    """``G(W) = min_B F(W, B)`` and its gradient (Danskin), with a tight B-step."""
    from solvers.transfer import solve_transfer

    Lf = joint_mod._Losses(list(data.Xs), list(data.ys), "squared")
    L, gL = Lf(W)
    B = solve_transfer(W, mu * L, lam, tol=1e-13, ridge=rho).solution
    a = 1.0 + mu * B.sum(axis=1)
    R = W - W @ B
    return gL * a + 2.0 * lam * (R - R @ B.T), B, Lf


@pytest.mark.parametrize("rho", [0.0, 0.5])
def test_reduced_hessian_matches_finite_differences(rho):
    """The Hessian of G on a fixed support of B (Schur complement of the B block) is the
    derivative of Danskin's gradient, checked where the support does not change; with and
    without the transfer ridge ``rho``."""
    data = make_regression_tasks(n_tasks=12, n_features=8, n_samples=30, random_state=3).train
    lam, mu = 1.0, 0.3
    W = fit_alternating(data, lam=lam, mu=mu).W
    g, B, Lf = _G_and_grad(data, W, lam, mu, rho)
    H = joint_mod._reduced_hessian(Lf, W, B, lam, mu, np.ones(12), 0.0, rho)
    assert H is not None and np.allclose(H, H.T, atol=1e-10 * np.abs(H).max())
    v = np.random.default_rng(0).standard_normal(W.shape)
    eps = 1e-6
    gp, Bp, _ = _G_and_grad(data, W + eps * v, lam, mu, rho)
    gm, Bm, _ = _G_and_grad(data, W - eps * v, lam, mu, rho)
    assert np.array_equal(Bp > 0, B > 0) and np.array_equal(Bm > 0, B > 0)
    fd = ((gp - gm) / (2 * eps)).T.ravel()
    hv = H @ v.T.ravel()
    assert np.linalg.norm(hv - fd) <= 1e-6 * np.linalg.norm(fd)


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_newton_finish_reaches_the_same_point_in_fewer_iterations(seed, monkeypatch):
    data = make_regression_tasks(n_tasks=30, n_features=15, random_state=seed).train
    with_newton = fit_alternating(data, lam=1.0, mu=0.1)
    monkeypatch.setattr(joint_mod, "_NEWTON_MAX_DT", 0)
    without = fit_alternating(data, lam=1.0, mu=0.1)
    assert with_newton.converged and without.converged
    assert with_newton.objective == pytest.approx(without.objective, rel=1e-9)
    assert with_newton.objective <= without.objective * (1 + 1e-12)
    assert with_newton.n_iter < without.n_iter
    np.testing.assert_allclose(with_newton.W, without.W, atol=1e-4 * np.abs(without.W).max())
    assert np.all(np.diff(with_newton.objective_history) <= 0.0)


# ------------------------------------------------------------------ transfer ridge
def _single_task(data, lam, ridge):
    """Algorithm 1's start: the W-step at B = 0."""
    from amtl_cvx.algorithms import make_backend

    T = data.n_tasks
    return make_backend("fast", data, "squared").tasks(np.zeros((T, T)), lam, np.ones(T), ridge, None)


def test_transfer_ridge_fit_is_a_stationary_point_checked_by_cvxpy(planted):
    """``solve_amtl(..., transfer_ridge=rho)``: B is the exact ridge B-step of W (CVXPY, one
    column at a time), W the exact W-step of B (the ridge on B does not enter it), and the
    certificate is the one of the ridge problem (the ridge-free certificate is not small)."""
    from solvers.joint import solve_amtl
    from tests.test_ridge_transfer import clarabel_ridge

    data = planted
    lam, mu, ridge, rho = 0.7, 0.3, 0.01, 0.05
    W0 = _single_task(data, lam, ridge)
    res = solve_amtl(data.Xs, data.ys, lam, mu=mu, ridge=ridge, W0=W0, tol=1e-8, transfer_ridge=rho)
    W, B = res.solution
    assert res.converged and res.certificate <= 1e-8
    assert np.all(np.diff(res.history) <= 0.0)
    p = mu * task_losses(W, data, "squared")
    Bref, ref = clarabel_ridge(W, p, lam, rho)
    from solvers.transfer import transfer_objective

    mine = transfer_objective(W, B, p, lam, ridge=rho)
    assert mine <= ref + 1e-9 * max(1.0, abs(ref))
    assert np.sum((B - Bref) ** 2) <= max(ref - mine, 0.0) / rho + 1e-20
    c = np.ones(data.n_tasks)
    wstep = TasksProblem(data, "squared").set(B, lam, loss_weights(B, c, mu), ridge).solve("CLARABEL")
    R = W - W @ B
    w_obj = float(loss_weights(B, c, mu) @ task_losses(W, data, "squared") + lam * np.sum(R * R)
                  + ridge * np.sum(W * W))
    assert (w_obj - wstep.objective) / max(1.0, abs(wstep.objective)) <= 1e-8
    assert res.objective == pytest.approx(w_obj + rho * np.sum(B * B), rel=1e-12)
    cert = amtl_kkt_residual(data.Xs, data.ys, W, B, lam, mu=mu, ridge=ridge, transfer_ridge=rho)
    assert cert == pytest.approx(res.certificate, rel=1e-9, abs=1e-15)
    assert _cert(data, W, B, lam, mu, ridge) > 1e-4  # the ridge-free problem is not solved


def test_transfer_ridge_makes_the_tabular_zero_price_fit_converge():
    """mu = 0 on rank-deficient tabular tasks (T - 1 > d, p = 0: every ridge-free B-step
    has many minimisers): with the ridge on B the fit reaches its certificate, and its B is
    the (unique) ridge B-step of its W."""
    from solvers.joint import solve_amtl

    data = make_tabular_tasks(n_tasks=40, random_state=2).train
    lam = 0.3
    W0 = _single_task(data, lam, 0.1 * lam)
    rho = 0.1 * lam * float(np.mean(np.sum(W0 * W0, axis=0)))
    res = solve_amtl(data.Xs, data.ys, lam, mu=0.0, ridge=0.1 * lam, W0=W0, transfer_ridge=rho, max_iter=1000)
    assert res.converged and res.certificate <= 1e-6
    W, B = res.solution
    from solvers.transfer import solve_transfer

    again = solve_transfer(W, np.zeros(data.n_tasks), lam, ridge=rho, B0=np.ones_like(B), tol=1e-12)
    assert np.abs(again.solution - B).max() <= 1e-8 * max(1.0, np.abs(B).max())


@pytest.mark.parametrize("transfer_ridge", [0.0, 0.05])
def test_inexact_bsteps_end_at_the_exact_bstep_and_a_certified_point(transfer_ridge, monkeypatch):
    """With inexact B-steps (the default) the returned B is the exact B-step of the
    returned W, the objective and certificate are that pair's, the history is
    non-increasing, and the point is certified as with exact B-steps throughout.
    The inexact steps are made visibly inexact here (the exact B-step shrunk by a factor
    1 - 1e3 rel: feasible, suboptimal by about what the threshold allows)."""
    from solvers.transfer import solve_transfer

    def shrunk(W, p, lam, B0, rel, rho):
        return (1.0 - 1e3 * rel) * solve_transfer(W, p, lam, B0=B0, ridge=rho).solution

    monkeypatch.setattr(joint_mod, "_solve_transfer_inexact", shrunk)

    data = make_regression_tasks(n_tasks=40, n_features=6, random_state=5).train
    lam, mu = 1.0, 0.2
    W0 = np.column_stack([np.linalg.solve(X.T @ X / len(y) + 2 * lam * np.eye(X.shape[1]), X.T @ y / len(y))
                          for X, y in zip(data.Xs, data.ys)])
    runs = {}
    for inexact in (True, False):
        runs[inexact] = joint_mod.solve_amtl(data.Xs, data.ys, lam, mu=mu, W0=W0, transfer_ridge=transfer_ridge,
                                             tol=1e-4, inexact_bsteps=inexact)
    res = runs[True]
    W, B = res.solution
    assert res.converged and res.certificate <= 1e-4
    p = mu * task_losses(W, data, "squared")
    exact = solve_transfer(W, p, lam, ridge=transfer_ridge, tol=1e-9).solution
    assert np.abs(B - exact).max() <= 1e-9 * max(1.0, np.abs(exact).max())
    R = W - W @ B
    F = float((1 + mu * B.sum(axis=1)) @ task_losses(W, data, "squared") + lam * np.sum(R * R)
              + transfer_ridge * np.sum(B * B))
    assert res.objective == pytest.approx(F, rel=1e-12) and res.history[-1] == res.objective
    assert res.certificate == pytest.approx(_cert_rho(data, W, B, lam, mu, transfer_ridge), rel=1e-9)
    h = np.asarray(res.history)
    assert np.all(np.diff(h) <= 1e-12 * np.abs(h[:-1]))
    assert runs[False].converged  # (F is biconvex: the two runs may stop at different stationary points)


def _cert_rho(data, W, B, lam, mu, rho):
    return amtl_kkt_residual(data.Xs, data.ys, W, B, lam, mu=mu, transfer_ridge=rho)


@pytest.mark.parametrize("transfer_ridge", [0.0, 0.05])
def test_inexact_bstep_is_feasible_and_violates_kkt_by_about_its_threshold(transfer_ridge):
    from solvers.transfer import _solve_transfer_inexact, solve_transfer, transfer_kkt_residual

    rng = np.random.default_rng(1)
    W = rng.standard_normal((6, 50))
    p = rng.random(50)
    exact = solve_transfer(W, p, 1.0, ridge=transfer_ridge)
    certs = {}
    for rel in (1e-3, 1e-8):
        B = _solve_transfer_inexact(W, p, 1.0, None, rel, transfer_ridge)
        assert B is not None and np.all(B >= 0) and np.all(np.diag(B) == 0)
        certs[rel] = cert = transfer_kkt_residual(W, B, p, 1.0, ridge=transfer_ridge)
        assert cert <= 10 * rel  # entry-relative: up to 4x the threshold (relative to the largest scale)
        obj = float(np.sum((W - W @ B) ** 2) + p @ B.sum(axis=1) + transfer_ridge * np.sum(B * B))
        assert exact.objective <= obj * (1 + 1e-12)
    assert certs[1e-3] > 1e-4  # the pivots did stop early (measured 2.1e-3 and 2.8e-3)
    # for one task the caller solves exactly
    assert _solve_transfer_inexact(W[:, :1], p[:1], 1.0, None, 1e-6, transfer_ridge) is None
