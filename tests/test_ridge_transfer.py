"""The B-step with a transfer ridge (``solve_transfer(..., ridge=rho)``), held to CVXPY."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from solvers.transfer import solve_transfer, transfer_kkt_residual, transfer_objective

CERT_TOL = 1e-9


def clarabel_ridge(W: np.ndarray, p: np.ndarray, lam: float, rho: float) -> tuple[np.ndarray, float]:
    """Exact ridge B-step by CVXPY + Clarabel, one column at a time, in the units lam = 1,
    max |W| = 1; every status must be optimal. Returns ``B`` and its objective (original
    units, evaluated at the returned, clipped ``B``)."""
    d, T = W.shape
    sigma = float(np.max(np.abs(W))) or 1.0
    kappa = lam * sigma**2
    V = W / sigma
    Bv = np.zeros((T, T))
    for t in range(T):
        others = np.delete(np.arange(T), t)
        b = cp.Variable(T - 1, nonneg=True)
        objective = (cp.sum_squares(V[:, t] - V[:, others] @ b) + (p[others] / kappa) @ b
                     + (rho / kappa) * cp.sum_squares(b))
        problem = cp.Problem(cp.Minimize(objective))
        problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
        assert problem.status == cp.OPTIMAL, problem.status
        Bv[others, t] = np.maximum(b.value, 0.0)
    return Bv, transfer_objective(W, Bv, p, lam, ridge=rho)


def dense_kkt(W: np.ndarray, B: np.ndarray, p: np.ndarray, lam: float, rho: float) -> float:
    """KKT residual with a dense Gram (test-only), relative to max |gradient at 0|."""
    G = W.T @ W
    g = 2.0 * lam * (G @ B - G) + p[:, None] + 2.0 * rho * B
    r = np.where(B > 0, np.abs(g), np.maximum(-g, 0.0))
    np.fill_diagonal(r, 0.0)
    g0 = np.abs(p[:, None] - 2.0 * lam * G)
    np.fill_diagonal(g0, 0.0)
    return float(r.max()) / max(float(g0.max()), 1e-300)


def instance(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Seeded instances, including the degenerate and badly scaled families."""
    rng = np.random.default_rng(seed)
    d, T = {"random": (6, 15), "wide": (3, 40), "tall": (12, 8), "duplicates": (4, 20),
            "rank_one": (5, 18), "scaled": (6, 25), "no_price": (4, 30), "onehot": (9, 30)}[kind]
    W = rng.standard_normal((d, T))
    p = rng.uniform(0.0, 1.0, T)
    if kind == "duplicates":
        W[:, 5:10] = W[:, :5]
    elif kind == "rank_one":
        W = np.outer(rng.standard_normal(d), rng.uniform(0.1, 2.0, T))
    elif kind == "scaled":  # column norms from 1e-3 to 1e3, rows from 1e-2 to 1e2
        W = W * np.logspace(-3, 3, T)[None, :] * np.logspace(-2, 2, d)[:, None]
    elif kind == "no_price":
        p = np.zeros(T)
    elif kind == "onehot":  # parameters of tasks with one-hot features and a bias (rank d - 2)
        W[-1] = W[:4].sum(axis=0)
        W[-2] = W[4:7].sum(axis=0)
    lam = float(10 ** rng.uniform(-1, 1))
    # the ridge relative to the Gram's average diagonal, from strong to weak
    rho = float(10 ** rng.uniform(-3, 0)) * lam * float(np.mean(np.sum(W * W, axis=0)))
    return W, p * lam * float(np.mean(np.sum(W * W, axis=0))), lam, rho


KINDS = ["random", "wide", "tall", "duplicates", "rank_one", "scaled", "no_price", "onehot"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_clarabel(kind, seed):
    W, p, lam, rho = instance(kind, seed)
    T = W.shape[1]
    res = solve_transfer(W, p, lam, ridge=rho)
    B = res.solution
    assert B.shape == (T, T) and B.min() >= 0.0 and np.all(np.diag(B) == 0.0)
    assert res.converged and res.certificate <= CERT_TOL
    assert res.certificate == pytest.approx(transfer_kkt_residual(W, B, p, lam, ridge=rho), abs=1e-15)
    assert dense_kkt(W, B, p, lam, rho) <= CERT_TOL
    assert res.objective == pytest.approx(transfer_objective(W, B, p, lam, ridge=rho), rel=1e-12)
    Bref, ref = clarabel_ridge(W, p, lam, rho)
    gap = (res.objective - ref) / max(1.0, abs(ref))
    assert -1e-7 <= gap <= 1e-9, gap
    # the minimiser is unique: by strong convexity (modulus 2 rho) the referee's point is
    # within sqrt((F(Bref) - F(B)) / rho) of B when B is the minimiser
    assert np.sum((B - Bref) ** 2) <= max(ref - res.objective, 0.0) / rho + 1e-20


@pytest.mark.parametrize("kind", KINDS)
def test_same_minimiser_as_the_augmented_ridge_free_problem(kind):
    """``lam ||w - W b||^2 + rho ||b||^2`` is the ridge-free B-step of ``[W; sqrt(rho/lam) I]``:
    an independent exact solver (the active set) gives the same B to rounding."""
    W, p, lam, rho = instance(kind, 3)
    T = W.shape[1]
    B = solve_transfer(W, p, lam, ridge=rho).solution
    Ba = solve_transfer(np.vstack([W, np.sqrt(rho / lam) * np.eye(T)]), p, lam, tol=1e-12).solution
    assert np.abs(B - Ba).max() <= 1e-8 * max(1.0, np.abs(Ba).max())


def test_warm_start_from_the_solution_takes_one_round_and_nearby_few():
    W, p, lam, rho = instance("random", 4)
    res = solve_transfer(W, p, lam, ridge=rho)
    again = solve_transfer(W, p, lam, ridge=rho, B0=res.solution)
    assert again.n_iter == 1
    assert np.array_equal(again.solution > 0, res.solution > 0)
    rng = np.random.default_rng(4)
    W2 = W + 1e-3 * rng.standard_normal(W.shape)
    warm = solve_transfer(W2, p, lam, ridge=rho, B0=res.solution)
    cold = solve_transfer(W2, p, lam, ridge=rho)
    assert warm.converged and warm.n_iter <= cold.n_iter
    assert np.abs(warm.solution - cold.solution).max() <= 1e-10 * max(1.0, np.abs(cold.solution).max())


def test_unfinished_columns_are_handed_over_and_certified():
    """One pivoting round leaves columns unfinished; the hand-over (NNLS on the augmented
    matrix) must still give the certified minimiser."""
    W, p, lam, rho = instance("scaled", 5)
    expected = solve_transfer(W, p, lam, ridge=rho).solution
    res = solve_transfer(W, p, lam, ridge=rho, max_iter=1)
    assert res.converged and res.certificate <= CERT_TOL
    assert np.abs(res.solution - expected).max() <= 1e-8 * max(1.0, np.abs(expected).max())


def test_certificate_sees_the_ridge_and_a_wrong_column():
    W, p, lam, rho = instance("random", 6)
    B = solve_transfer(W, p, lam, ridge=rho).solution
    assert transfer_kkt_residual(W, B, p, lam, ridge=rho) <= CERT_TOL
    # the ridge-free minimiser is not the ridge minimiser, and the certificate says so
    B0 = solve_transfer(W, p, lam).solution
    assert transfer_kkt_residual(W, B0, p, lam, ridge=rho) > 1e-3
    # nor is B with its last column zeroed
    Bz = B.copy()
    Bz[:, -1] = 0.0
    assert np.any(B[:, -1] > 0)
    assert transfer_kkt_residual(W, Bz, p, lam, ridge=rho) > 1e-3


def test_no_price_many_tasks_is_unique_where_the_ridge_free_step_is_not():
    """p = 0, T - 1 > d: without the ridge many B reach the minimum; with it, one does, and
    it does not depend on the start."""
    W, p, lam, rho = instance("no_price", 7)
    T = W.shape[1]
    cold = solve_transfer(W, p, lam, ridge=rho).solution
    rng = np.random.default_rng(7)
    start = rng.uniform(0.0, 1.0, (T, T)) * (rng.uniform(size=(T, T)) < 0.3)
    np.fill_diagonal(start, 0.0)
    warm = solve_transfer(W, p, lam, ridge=rho, B0=start).solution
    assert np.abs(cold - warm).max() <= 1e-10 * max(1.0, np.abs(cold).max())


@pytest.mark.parametrize("ridge", [-1.0, np.nan, np.inf, "1", True])
def test_bad_ridge_is_refused(ridge):
    W, p, lam, _ = instance("random", 0)
    with pytest.raises(ValueError, match="ridge"):
        solve_transfer(W, p, lam, ridge=ridge)
    with pytest.raises(ValueError, match="ridge"):
        transfer_kkt_residual(W, np.zeros((W.shape[1],) * 2), p, lam, ridge=ridge)


def test_magnitude_of_W_changes_nothing():
    W, p, lam, rho = instance("random", 8)
    B = solve_transfer(W, p, lam, ridge=rho).solution
    for s in (1e-150, 1e150):
        Bs = solve_transfer(W * s, p * s * s, lam, ridge=rho * s * s).solution
        assert np.abs(Bs - B).max() <= 1e-10 * max(1.0, np.abs(B).max())


@pytest.mark.parametrize("kind", ["random", "wide", "tall", "no_price", "onehot", "duplicates"])
def test_pivots_alone_certify_regular_instances(monkeypatch, kind):
    """The hand-over is a safety net: on these instances block principal pivoting (both its
    K x K and its Woodbury solves) must certify by itself."""
    import solvers.transfer as transfer

    def no_hand_over(*args, **kwargs):
        raise AssertionError("handed over")

    monkeypatch.setattr(transfer, "_nnls_rescue", no_hand_over)
    for seed in range(3):
        W, p, lam, rho = instance(kind, seed)
        res = solve_transfer(W, p, lam, ridge=rho)
        assert res.converged and res.certificate <= CERT_TOL


@pytest.mark.parametrize("d, T", [(5, 60), (40, 30)])  # passive sets larger than d (Woodbury), and not
@pytest.mark.parametrize("rho", [1e-2, 1e-10])
def test_passive_systems_are_solved_to_a_componentwise_backward_error_of_a_few_eps(d, T, rho):
    """The passive solves' residual is the KKT residual of the passive coordinates: at most
    2e-15 of ``|H_FF| |x| + |q|`` entry by entry, columns of W over three decades of scale
    (the Woodbury solve without its refinement step reaches 3.6e-15 there)."""
    from solvers.ridge_transfer import _passive_solve

    rng = np.random.default_rng(0)
    W = rng.standard_normal((d, T)) * np.logspace(0, -3, T)
    W /= np.abs(W).max()
    cols = np.arange(T)
    F = rng.random((T, T)) < 0.6
    F[cols, cols] = False
    Q = rng.standard_normal((T, T))
    X = _passive_solve(W, rho, Q, F, cols)
    H = 2.0 * W.T @ W + 2.0 * rho * np.eye(T)
    assert np.all(X[~F.T] == 0.0)
    for j in range(T):
        f = F[j]
        Hf, x, q = H[np.ix_(f, f)], X[f, j], Q[f, j]
        assert np.all(np.abs(Hf @ x - q) <= 2e-15 * (np.abs(Hf) @ np.abs(x) + np.abs(q)))
