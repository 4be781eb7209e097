"""Tests of the fast B-step solver against CVXPY + Clarabel at tight tolerances."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solvers.result import SolverResult
from solvers.transfer import solve_transfer, transfer_kkt_residual, transfer_objective

GAP_TOL = 1e-7  # (fast - exact) / max(1, |exact|)
CERT_TOL = 1e-9


# --------------------------------------------------------------------------------------
# referee and independent checks
# --------------------------------------------------------------------------------------
def clarabel_reference(W: np.ndarray, p: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
    """Exact B-step by CVXPY + Clarabel, posed in scaled units; status must be optimal."""
    d, T = W.shape
    sigma = float(np.max(np.abs(W))) or 1.0
    kappa = lam * sigma**2
    V = W / sigma
    B = cp.Variable((T, T), nonneg=True)
    objective = cp.sum_squares(V - V @ B) + (p / kappa) @ cp.sum(B, axis=1)
    problem = cp.Problem(cp.Minimize(objective), [cp.diag(B) == 0])
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert problem.status == cp.OPTIMAL, problem.status
    Bv = np.maximum(B.value, 0.0)
    np.fill_diagonal(Bv, 0.0)
    return Bv, float(problem.value) * kappa


def clarabel_reference_equilibrated(W: np.ndarray, p: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
    """Exact B-step by CVXPY + Clarabel, column by column in column-equilibrated units.

    With per-column magnitudes spanning 1e-3..1e3, one global scale (``clarabel_reference``)
    leaves the small columns at 1e-6 of the large ones and Clarabel's answer is off by
    up to 50% of the objective. Here column t is posed in ``v = w / ||w||`` and
    ``c_s = b_s ||w_s|| / ||w_t||``: ``||v_t - V c||^2 + sum_s p_s / (lam ||w_s|| ||w_t||) c_s``."""
    d, T = W.shape
    norms = np.linalg.norm(W, axis=0)
    assert np.all(norms > 0)
    V = W / norms
    Bv = np.zeros((T, T))
    for t in range(T):
        others = np.delete(np.arange(T), t)
        c = cp.Variable(T - 1, nonneg=True)
        price = p[others] / (lam * norms[others] * norms[t])
        problem = cp.Problem(cp.Minimize(cp.sum_squares(V[:, t] - V[:, others] @ c) + price @ c))
        problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
        assert problem.status == cp.OPTIMAL, problem.status
        Bv[others, t] = np.maximum(c.value, 0.0) * norms[t] / norms[others]
    return Bv, direct_objective(W, Bv, p, lam)


def direct_objective(W: np.ndarray, B: np.ndarray, p: np.ndarray, lam: float) -> float:
    total = 0.0
    for t in range(W.shape[1]):
        r = W[:, t] - W @ B[:, t]
        total += lam * float(r @ r) + float(p @ B[:, t])
    return total


def independent_kkt(W: np.ndarray, B: np.ndarray, p: np.ndarray, lam: float) -> float:
    """KKT residual with a dense G (test-only), relative to max |gradient at 0|."""
    G = W.T @ W
    g = 2.0 * lam * (G @ B - G) + p[:, None]
    r = np.where(B > 0, np.abs(g), np.maximum(-g, 0.0))
    np.fill_diagonal(r, 0.0)
    g0 = np.abs(p[:, None] - 2.0 * lam * G)
    np.fill_diagonal(g0, 0.0)
    return float(r.max()) / max(float(g0.max()), 1e-300)


def independent_entry_kkt(W: np.ndarray, B: np.ndarray, p: np.ndarray, lam: float) -> float:
    """KKT residual entry by entry (test-only, dense): each entry's residual relative to
    the size of the terms of its gradient, ``p_s + 2 lam |w_s|'(|w_t| + |W| B[:, t])``
    (absolute values entrywise), a bound independent of the package's formula."""
    G = W.T @ W
    g = 2.0 * lam * (G @ B - G) + p[:, None]
    r = np.where(B > 0, np.abs(g), np.maximum(-g, 0.0))
    np.fill_diagonal(r, 0.0)
    A = np.abs(W)
    size = p[:, None] + 2.0 * lam * (A.T @ (A + A @ B))
    return float(np.max(np.where(r > 0, r / np.where(size > 0, size, 1.0), 0.0)))


def planted(T: int, d: int, rng: np.random.Generator, mu: float = 0.1):
    """20% source tasks; the rest nonnegative sparse combinations of 2-3 sources + noise."""
    n_src = max(1, int(0.2 * T))
    W = np.zeros((d, T))
    W[:, :n_src] = rng.standard_normal((d, n_src))
    noise = np.zeros(T)
    for t in range(n_src, T):
        src = rng.choice(n_src, size=min(int(rng.integers(2, 4)), n_src), replace=False)
        W[:, t] = W[:, src] @ rng.uniform(0.3, 1.0, size=src.size)
        noise[t] = 0.1 * rng.uniform()
        W[:, t] += noise[t] * rng.standard_normal(d)
    perm = rng.permutation(T)
    return W[:, perm], mu * (1.0 + noise[perm])


def assert_exactly_feasible(B: np.ndarray, T: int) -> None:
    assert B.shape == (T, T)
    assert np.all(np.isfinite(B))
    assert B.min() >= 0.0  # no negative entries at all
    assert np.all(np.diag(B) == 0.0)


def check_against_reference(W: np.ndarray, p: np.ndarray, lam: float, reference=None) -> SolverResult:
    T = W.shape[1]
    res = solve_transfer(W, p, lam)
    B = res.solution
    assert_exactly_feasible(B, T)
    assert res.converged
    assert res.certificate <= res.tol
    assert res.certificate == pytest.approx(transfer_kkt_residual(W, B, p, lam), abs=1e-12)
    assert independent_kkt(W, B, p, lam) <= CERT_TOL
    exact_obj = direct_objective(W, B, p, lam)
    assert res.objective == pytest.approx(exact_obj, rel=1e-10, abs=1e-10)
    assert transfer_objective(W, B, p, lam) == pytest.approx(exact_obj, rel=1e-10, abs=1e-10)
    _, ref_obj = (reference or clarabel_reference)(W, p, lam)
    gap = (res.objective - ref_obj) / max(1.0, abs(ref_obj))
    assert gap <= GAP_TOL, gap
    # and the referee is not much better: the fast value may only be slightly better
    assert gap >= -1e-6, gap
    return res


# --------------------------------------------------------------------------------------
# agreement with the referee
# --------------------------------------------------------------------------------------
RANDOM_CASES = [
    # (seed, T, d, lam, penalty scale)
    (0, 2, 3, 1.0, 0.1),
    (1, 5, 1, 1.0, 0.1),
    (2, 8, 4, 0.1, 1.0),
    (3, 12, 30, 1.0, 0.5),
    (4, 20, 6, 10.0, 0.01),
    (5, 25, 40, 0.5, 0.2),
    (6, 30, 10, 1.0, 0.0),
    (7, 40, 15, 2.0, 0.3),
    (8, 60, 8, 1.0, 0.1),
]


@pytest.mark.parametrize("seed,T,d,lam,pscale", RANDOM_CASES)
def test_random_instances_match_clarabel(seed, T, d, lam, pscale):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((d, T)) * rng.uniform(0.5, 2.0, size=T)
    p = pscale * rng.uniform(0.0, 1.0, size=T)
    check_against_reference(W, p, lam)


@pytest.mark.parametrize("seed,T,d", [(10, 10, 5), (11, 30, 20), (12, 45, 12), (13, 60, 20)])
def test_planted_graphs_match_clarabel(seed, T, d):
    rng = np.random.default_rng(seed)
    W, p = planted(T, d, rng)
    res = check_against_reference(W, p, 1.0)
    assert np.count_nonzero(res.solution) > 0


@pytest.mark.parametrize("seed,T,d", [(20, 4, 6), (21, 10, 14), (22, 15, 30)])
def test_unique_minimiser_solutions_agree(seed, T, d):
    # d >= T and W of full column rank: G is positive definite, the minimiser unique
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((d, T))
    W[:, 1:] += 0.8 * W[:, :1]  # correlated tasks, so that B is not trivially 0
    assert np.linalg.matrix_rank(W) == T
    p = 0.05 * rng.uniform(size=T)
    res = check_against_reference(W, p, 1.0)
    B_ref, _ = clarabel_reference(W, p, 1.0)
    assert np.count_nonzero(res.solution) > 0
    np.testing.assert_allclose(res.solution, B_ref, atol=1e-6 * max(1.0, np.abs(B_ref).max()))


# --------------------------------------------------------------------------------------
# degenerate cases
# --------------------------------------------------------------------------------------
def test_zero_column():
    rng = np.random.default_rng(30)
    W = rng.standard_normal((5, 9))
    W[:, 4] = 0.0
    p = rng.uniform(0, 0.3, size=9)
    res = check_against_reference(W, p, 1.0)
    # a zero task is useless as a source when it costs something
    assert np.all(res.solution[4, :][p[4] > 0] == 0.0)


@pytest.mark.parametrize("pscale", [0.0, 0.1])
def test_duplicate_tasks(pscale):
    # identical columns make G singular on any support containing both copies
    rng = np.random.default_rng(31)
    base = rng.standard_normal((4, 6))
    W = np.concatenate([base, base, 2.0 * base[:, :2]], axis=1)
    p = pscale * np.ones(W.shape[1])
    res = check_against_reference(W, p, 1.0)
    if pscale == 0.0:
        # every task is reproduced exactly by its copy
        assert res.objective == pytest.approx(0.0, abs=1e-10)


def test_zero_penalty_more_tasks_than_features():
    rng = np.random.default_rng(32)
    W = rng.standard_normal((3, 12))
    check_against_reference(W, np.zeros(12), 0.7)


def test_large_penalty_gives_exact_zero():
    rng = np.random.default_rng(33)
    W = rng.standard_normal((6, 15))
    p = np.full(15, 1e6)
    res = solve_transfer(W, p, 1.0)
    assert np.all(res.solution == 0.0)
    assert res.converged
    assert res.objective == pytest.approx(float(np.sum(W * W)), rel=1e-14)


def test_penalty_threshold_for_zero_solution():
    # B = 0 is optimal iff p_s >= 2 lam G[s, t] for all s != t; just above vs just below
    rng = np.random.default_rng(34)
    W = rng.standard_normal((4, 7))
    G = W.T @ W
    np.fill_diagonal(G, -np.inf)
    lam = 1.5
    p_zero = 2 * lam * G.max(axis=1) * 1.001 + 1e-9
    p_zero = np.maximum(p_zero, 0.0)
    assert np.all(solve_transfer(W, p_zero, lam).solution == 0.0)
    s = int(np.argmax(G.max(axis=1)))
    p_nz = p_zero.copy()
    p_nz[s] = 2 * lam * G[s].max() * 0.9
    assert np.count_nonzero(solve_transfer(W, p_nz, lam).solution[s]) > 0


def test_single_task():
    W = np.array([[1.0], [2.0]])
    res = solve_transfer(W, np.array([0.3]), 2.0)
    assert res.solution.shape == (1, 1)
    assert res.solution[0, 0] == 0.0
    assert res.objective == pytest.approx(2.0 * 5.0)
    assert res.converged


def test_two_tasks():
    W = np.array([[1.0, 2.0], [0.0, 1.0]])
    p = np.array([0.1, 0.2])
    res = check_against_reference(W, p, 1.0)
    # closed form for column 1: b = max(0, (G01 - p0 / (2 lam)) / G00)
    assert res.solution[0, 1] == pytest.approx((2.0 - 0.05) / 1.0, rel=1e-12)
    assert res.solution[1, 0] == pytest.approx((2.0 - 0.1) / 5.0, rel=1e-12)


def test_one_feature():
    rng = np.random.default_rng(35)
    W = rng.standard_normal((1, 14))
    check_against_reference(W, rng.uniform(0, 0.1, size=14), 1.0)


def test_all_zero_W():
    res = solve_transfer(np.zeros((3, 5)), np.ones(5), 1.0)
    assert np.all(res.solution == 0.0)
    assert res.objective == 0.0
    assert res.converged


def test_badly_scaled_W():
    rng = np.random.default_rng(36)
    W = 1e3 * rng.standard_normal((5, 10))
    check_against_reference(W, rng.uniform(0, 100.0, size=10), 0.1)
    W = 1e-3 * rng.standard_normal((5, 10))
    check_against_reference(W, rng.uniform(0, 1e-7, size=10), 3.0)


# --------------------------------------------------------------------------------------
# property-based: honest certificate and local optimality (no referee)
# --------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    T=st.integers(1, 25),
    d=st.integers(1, 12),
    lam=st.floats(0.05, 20.0),
    pscale=st.sampled_from([0.0, 0.01, 0.3, 5.0]),
    dup=st.booleans(),
)
def test_property_kkt_and_no_feasible_descent(seed, T, d, lam, pscale, dup):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((d, T))
    if dup and T >= 2:
        W[:, -1] = W[:, 0]
    p = pscale * rng.uniform(size=T)
    res = solve_transfer(W, p, lam)
    B = res.solution
    assert_exactly_feasible(B, T)
    assert res.converged
    assert independent_kkt(W, B, p, lam) <= CERT_TOL
    f = direct_objective(W, B, p, lam)
    assert res.objective == pytest.approx(f, rel=1e-10, abs=1e-12)
    # no feasible perturbation improves the objective (beyond rounding)
    for _ in range(5):
        D = rng.standard_normal((T, T)) * rng.uniform(1e-4, 1e-1)
        Bp = np.maximum(B + D, 0.0)
        np.fill_diagonal(Bp, 0.0)
        assert direct_objective(W, Bp, p, lam) >= f - 1e-9 * max(1.0, abs(f))


# --------------------------------------------------------------------------------------
# warm start, history, certificate function
# --------------------------------------------------------------------------------------
def test_warm_start_from_solution_is_immediate():
    rng = np.random.default_rng(40)
    W, p = planted(40, 10, rng)
    cold = solve_transfer(W, p, 1.0)
    assert cold.n_iter >= 2
    warm = solve_transfer(W, p, 1.0, B0=cold.solution)
    assert warm.converged
    assert warm.n_iter == 1
    np.testing.assert_allclose(warm.solution, cold.solution, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_entries_per_pivot_match_one(monkeypatch, seed):
    """Letting a second coordinate enter per pivot changes the path, not the optimum."""
    from solvers.bstep import full_pricing

    rng = np.random.default_rng(60 + seed)
    W, p = planted(80, 12, rng)
    W[:, 5] = W[:, 3]  # a duplicated task: dependent violators and swaps
    two = solve_transfer(W, p, 0.7)
    monkeypatch.setattr(full_pricing, "_PIVOT_ADDS", 1)
    one = solve_transfer(W, p, 0.7)
    assert one.converged and two.converged
    assert two.n_iter < one.n_iter
    assert two.objective == pytest.approx(one.objective, rel=1e-12)
    assert independent_kkt(W, two.solution, p, 0.7) <= CERT_TOL
    assert_exactly_feasible(two.solution, 80)


def test_warm_start_from_a_nearby_support():
    """A warm start one support change away (as between alternations) is not accepted
    as it is: the solve on its supports is checked and the pivots finish the job."""
    rng = np.random.default_rng(43)
    W, p = planted(40, 10, rng)
    cold = solve_transfer(W, p, 1.0)
    for change in ("drop", "add"):
        B0 = cold.solution.copy()
        t = int(np.argmax((B0 > 0).sum(axis=0)))
        if change == "drop":
            B0[np.flatnonzero(B0[:, t])[0], t] = 0.0
        else:
            B0[int(np.flatnonzero((B0[:, t] == 0) & (np.arange(40) != t))[0]), t] = 0.5
        warm = solve_transfer(W, p, 1.0, B0=B0)
        assert warm.converged
        assert warm.n_iter > 1
        assert warm.objective == pytest.approx(cold.objective, rel=1e-12)
        np.testing.assert_allclose(warm.solution, cold.solution, rtol=1e-8, atol=1e-12)


def test_warm_start_from_arbitrary_point():
    rng = np.random.default_rng(41)
    W, p = planted(30, 8, rng)
    cold = solve_transfer(W, p, 1.0)
    B0 = rng.uniform(-1, 1, size=(30, 30))  # negative entries and diagonal are ignored
    warm = solve_transfer(W, p, 1.0, B0=B0)
    assert warm.converged
    assert warm.objective == pytest.approx(cold.objective, rel=1e-10)


def test_history_is_recorded_and_ends_at_certificate():
    rng = np.random.default_rng(42)
    W, p = planted(30, 8, rng)
    res = solve_transfer(W, p, 1.0, record_history=True)
    assert len(res.history) == res.n_iter
    assert res.history[-1] == res.certificate
    assert solve_transfer(W, p, 1.0).history == ()


def test_kkt_residual_detects_non_optimal_and_infeasible():
    rng = np.random.default_rng(43)
    W, p = planted(20, 6, rng)
    res = solve_transfer(W, p, 1.0)
    B = res.solution
    assert transfer_kkt_residual(W, B, p, 1.0) <= 1e-12
    assert transfer_kkt_residual(W, np.zeros_like(B), p, 1.0) > 1e-2
    Bp = B.copy()
    s, t = np.argwhere(B > 0)[0]
    Bp[s, t] *= 1.01
    assert transfer_kkt_residual(W, Bp, p, 1.0) > 1e-6
    Bn = B.copy()
    Bn[0, 1] = -1e-17
    assert transfer_kkt_residual(W, Bn, p, 1.0) == np.inf
    Bd = B.copy()
    Bd[2, 2] = 1e-3
    assert transfer_kkt_residual(W, Bd, p, 1.0) == np.inf


def test_loose_tolerance_and_result_type():
    rng = np.random.default_rng(44)
    W, p = planted(25, 6, rng)
    res = solve_transfer(W, p, 1.0, tol=1e-4)
    assert isinstance(res, SolverResult)
    assert res.tol == 1e-4
    assert res.converged == (res.certificate <= 1e-4)
    assert res.converged


def test_max_iter_one_reports_honestly():
    rng = np.random.default_rng(45)
    W, p = planted(60, 20, rng)
    res = solve_transfer(W, p, 1.0, max_iter=1)
    assert res.n_iter == 1
    assert res.converged == (res.certificate <= res.tol)
    assert res.certificate == pytest.approx(transfer_kkt_residual(W, res.solution, p, 1.0))
    assert_exactly_feasible(res.solution, 60)


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------
def _ok():
    return np.ones((2, 3)), np.zeros(3), 1.0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(W=np.array([[np.nan, 1.0, 1.0], [1.0, 1.0, 1.0]])), "W"),
        (dict(W=np.array([[np.inf, 1.0, 1.0], [1.0, 1.0, 1.0]])), "W"),
        (dict(W=np.ones(3)), "W"),
        (dict(penalty=np.zeros(4)), "penalty"),
        (dict(penalty=np.zeros((3, 1))), "penalty"),
        (dict(penalty=np.array([0.0, -1e-3, 0.0])), "penalty"),
        (dict(penalty=np.array([0.0, np.nan, 0.0])), "penalty"),
        (dict(lam=0.0), "lam"),
        (dict(lam=-1.0), "lam"),
        (dict(lam=np.inf), "lam"),
        (dict(B0=np.zeros((2, 2))), "B0"),
        (dict(B0=np.full((3, 3), np.nan)), "B0"),
        (dict(tol=0.0), "tol"),
        (dict(max_iter=0), "max_iter"),
    ],
)
def test_validation_errors(kwargs, match):
    W, p, lam = _ok()
    args = dict(W=W, penalty=p, lam=lam)
    extra = {k: v for k, v in kwargs.items() if k not in args}
    args.update({k: v for k, v in kwargs.items() if k in args})
    with pytest.raises(ValueError, match=match):
        solve_transfer(args["W"], args["penalty"], args["lam"], **extra)


def test_helper_validation():
    W, p, lam = _ok()
    with pytest.raises(ValueError, match="B"):
        transfer_objective(W, np.zeros((2, 2)), p, lam)
    with pytest.raises(ValueError, match="B"):
        transfer_kkt_residual(W, np.zeros((3, 4)), p, lam)
    with pytest.raises(ValueError, match="lam"):
        transfer_objective(W, np.zeros((3, 3)), p, 0.0)


# --------------------------------------------------------------------------------------
# the sequential semi-definite fallback (rarely reached through solve_transfer)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(8))
def test_semidefinite_fallback_solves_restricted_problem(seed):
    from solvers.bstep.semidefinite import _nnqp_psd

    rng = np.random.default_rng(100 + seed)
    d, K = int(rng.integers(1, 5)), int(rng.integers(2, 12))
    A = rng.standard_normal((d, K))
    if seed % 2:
        A[:, -1] = A[:, 0]  # duplicate column: G singular on supports containing both
    w = rng.standard_normal(d)
    q = rng.uniform(0, 0.5, size=K) * (seed % 3 != 0)
    G, c = A.T @ A, A.T @ w - q
    x0 = np.maximum(rng.standard_normal(K), 0.0)
    x = _nnqp_psd(G, c, x0, 1e-13)
    assert x.min() >= 0.0
    g = G @ x - c
    scale = max(float(np.abs(c).max()), float(np.abs(G).max()), 1.0)
    assert np.all(np.where(x > 0, np.abs(g), np.maximum(-g, 0.0)) <= 1e-9 * scale)
    # same optimal value as the CVXPY referee
    b = cp.Variable(K, nonneg=True)
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(A @ b) - c @ b))
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert prob.status == cp.OPTIMAL
    val = 0.5 * x @ G @ x - c @ x
    assert val <= prob.value + 1e-7 * max(1.0, abs(prob.value))


def test_degenerate_columns_are_rescued_and_certified():
    """A W from a fit at mu = 0 on one-hot data (rank 27 of 28, B entries in the
    hundreds): the batched pivots cycle on a few columns, which used to end in the
    working-set method's iteration cap (converged=False after 2.5 s). With p = 0 every
    column is a plain NNLS problem, so SciPy's NNLS gives the reference objective."""
    from pathlib import Path

    from scipy.optimize import nnls

    data = np.load(Path(__file__).parent / "data" / "degenerate_bstep.npz")
    W, lam = data["W"], float(data["lam"])
    T = W.shape[1]
    res = solve_transfer(W, np.zeros(T), lam, tol=1e-9)
    assert res.converged and res.certificate <= 1e-9
    assert res.certificate == pytest.approx(transfer_kkt_residual(W, res.solution, np.zeros(T), lam))
    assert_exactly_feasible(res.solution, T)
    ref = lam * sum(nnls(np.delete(W, t, axis=1), W[:, t], maxiter=50 * T)[1] ** 2 for t in range(T))
    assert res.objective <= ref * (1 + 1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_nnls_rescue_carries_the_linear_term(seed):
    """The rescue's extra row must reproduce ``p'b`` exactly: on planted instances with
    p > 0 its columns match Clarabel's optimum (a dropped or mis-scaled row gives the
    p = 0 solution, with a larger support and a larger objective)."""
    from solvers.bstep.certificate import _dense
    from solvers.bstep.polish import _nnls_rescue

    rng = np.random.default_rng(seed)
    W, p = planted(30, 8, rng, mu=0.5)
    idx, x = _nnls_rescue(W, p, 1.0, np.arange(30))
    B = _dense(idx, x, 30)
    assert_exactly_feasible(B, 30)
    _, exact = clarabel_reference(W, p, 1.0)
    fast = transfer_objective(W, B, p, 1.0)
    assert (fast - exact) / max(1.0, abs(exact)) <= GAP_TOL
    assert transfer_kkt_residual(W, B, p, 1.0) <= CERT_TOL


def test_warm_start_from_a_nearby_solution():
    rng = np.random.default_rng(46)
    W, p = planted(40, 10, rng)
    cold = solve_transfer(W, p, 1.0)
    W2 = W + 1e-4 * rng.standard_normal(W.shape)  # a nearby W: same supports
    warm = solve_transfer(W2, p, 1.0, B0=cold.solution)
    ref = solve_transfer(W2, p, 1.0)
    assert warm.converged
    assert warm.certificate == pytest.approx(transfer_kkt_residual(W2, warm.solution, p, 1.0))
    np.testing.assert_allclose(warm.solution, ref.solution, atol=1e-10)
    assert_exactly_feasible(warm.solution, 40)


@pytest.mark.parametrize("change", ["extra", "missing"])
def test_warm_start_on_a_wrong_support_is_not_trusted(change):
    """One coordinate too many (its restricted solution goes negative) or one too few
    (only the pricing pass sees it): the supports of B0 must not be returned as they
    are."""
    rng = np.random.default_rng(47)
    W, p = planted(40, 10, rng)
    cold = solve_transfer(W, p, 1.0)
    B0 = cold.solution.copy()
    sizes = (B0 > 0).sum(axis=0)
    if change == "extra":  # the most strongly inactive coordinate of a small column
        t = int(np.argmin(np.where(sizes > 0, sizes, 99)))
        g = p - 2.0 * W.T @ (W[:, t] - W @ B0[:, t])
        g[t] = -np.inf
        B0[int(np.argmax(g)), t] = 0.5
    else:  # the smallest entry of the largest column
        t = int(np.argmax(sizes))
        rows = np.flatnonzero(B0[:, t] > 0)
        B0[rows[np.argmin(B0[rows, t])], t] = 0.0
    warm = solve_transfer(W, p, 1.0, B0=B0)
    assert warm.converged
    assert warm.certificate == pytest.approx(transfer_kkt_residual(W, warm.solution, p, 1.0))
    assert_exactly_feasible(warm.solution, 40)
    np.testing.assert_allclose(warm.solution, cold.solution, atol=1e-9)


@pytest.mark.parametrize("scale", [1e-170, 1e-155, 1e-100, 1e100, 1e150])
def test_magnitude_of_W_changes_nothing(scale):
    """W of magnitude 1e-155 used to give inf in B, 1e-170 B = 0 with converged=True."""
    rng = np.random.default_rng(48)
    W, _ = planted(10, 15, rng)  # d > T: independent columns, a unique minimiser
    p = np.zeros(10)
    ref = solve_transfer(W, p, 1.0)
    assert np.count_nonzero(ref.solution) > 10
    res = solve_transfer(scale * W, p, 1.0)
    assert res.converged and np.all(np.isfinite(res.solution))
    np.testing.assert_allclose(res.solution, ref.solution, rtol=1e-9, atol=1e-12)
    assert res.objective == pytest.approx(ref.objective * scale**2, rel=1e-9, abs=1e-300)


def test_huge_lam_scales_the_prices_and_overflow_is_an_error():
    rng = np.random.default_rng(49)
    W, p = planted(20, 6, rng)
    ref = solve_transfer(W, p, 1.0)
    res = solve_transfer(W, 1e300 * p, 1e300)
    np.testing.assert_allclose(res.solution, ref.solution, rtol=1e-9, atol=1e-12)
    assert res.objective == pytest.approx(1e300 * ref.objective, rel=1e-9)
    assert ref.objective > 2.0  # so that 1e308 * objective overflows
    with pytest.raises(ValueError, match="overflows float64"):
        solve_transfer(W, p, 1e308)
    with pytest.raises(ValueError, match="overflows float64"):
        solve_transfer(1e154 * W, np.zeros(20), 1.0)


# --------------------------------------------------------------------------------------
# column norms spread over many orders of magnitude (issue 11, item 1)
# --------------------------------------------------------------------------------------
SPREAD_W = np.array([[1e6, 1e6, 0.0, 0.0], [0.0, 0.0, 1.0, 1e-6]])


def test_small_column_is_solved_not_hidden_by_large_ones():
    """Optimum 0: w_3 = 1e6 w_4 and w_4 = 1e-6 w_3. Certified relative to the largest
    column only, B[:, 2] = 0 (objective 1) passed with certificate 1e-18."""
    res = solve_transfer(SPREAD_W, np.zeros(4), 1.0)
    assert res.converged
    assert res.objective <= 1e-12
    assert res.solution[3, 2] == pytest.approx(1e6, rel=1e-12)
    assert res.solution[2, 3] == pytest.approx(1e-6, rel=1e-12)


def test_certificate_measures_each_entry_against_its_own_size():
    B = solve_transfer(SPREAD_W, np.zeros(4), 1.0).solution
    assert transfer_kkt_residual(SPREAD_W, B, np.zeros(4), 1.0) == 0.0
    wrong = B.copy()
    wrong[:, 2] = 0.0  # objective 1 instead of 0
    assert transfer_kkt_residual(SPREAD_W, wrong, np.zeros(4), 1.0) > 0.5
    # and a uniform rescaling of W changes nothing
    assert transfer_kkt_residual(1e-100 * SPREAD_W, wrong, np.zeros(4), 1.0) > 0.5
    # the columns are independent problems: certified one by one
    assert transfer_kkt_residual(SPREAD_W, wrong, np.zeros(4), 1.0, columns=[0, 1, 3]) == 0.0
    assert transfer_kkt_residual(SPREAD_W, wrong, np.zeros(4), 1.0, columns=[2]) > 0.5
    with pytest.raises(ValueError, match="columns"):
        transfer_kkt_residual(SPREAD_W, wrong, np.zeros(4), 1.0, columns=[4])


def _spread_instance(seed: int, spread: float):
    rng = np.random.default_rng(seed)
    d, T = int(rng.integers(2, 8)), int(rng.integers(3, 12))
    W = rng.standard_normal((d, T)) * np.exp(rng.uniform(0.0, np.log(spread), T))
    if seed % 3 == 0:  # a rank-deficient pair: one column a multiple of another
        W[:, 1] = W[:, 0] * rng.uniform(0.1, 10.0)
    p = rng.uniform(0.0, 1.0, T) * (seed % 2) * float(np.mean(W**2))
    return W, p


@pytest.mark.parametrize("spread", [10.0, 1e3, 1e6, 1e9, 1e12])
def test_column_norm_spreads_are_certified(spread):
    for seed in range(100):
        W, p = _spread_instance(seed, spread)
        res = solve_transfer(W, p, 1.0)
        assert_exactly_feasible(res.solution, W.shape[1])
        assert res.converged, (seed, res.certificate)
        assert transfer_kkt_residual(W, res.solution, p, 1.0) <= res.tol
        assert independent_entry_kkt(W, res.solution, p, 1.0) <= 1e-9, seed


# --------------------------------------------------------------------------------------
# the certificate on non-optimal B, column by column (issue 17, item 1)
# --------------------------------------------------------------------------------------
def formula_certificate(W, B, p, lam, rho=0.0):
    """The certificate of ``transfer_kkt_residual``'s docstring, dense (test-only):
    per column t, ``max_s r[s, t] / min(sigma[s, t], scale)``."""
    G = W.T @ W
    g = 2.0 * lam * (G @ B - G) + p[:, None] + 2.0 * rho * B
    r = np.where(B > 0, np.abs(g), np.maximum(-g, 0.0))
    np.fill_diagonal(r, 0.0)
    n = np.linalg.norm(W, axis=0)
    sigma = p[:, None] + 2.0 * lam * np.outer(n, n + B.T @ n) + 2.0 * rho * B
    scale = 2.0 * lam * float(np.max(n**2)) + float(np.max(p))
    scale = scale if scale > 0 else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.where(r > 0, r / np.minimum(sigma, scale), 0.0)
    return e.max(axis=0)  # one value per column


def _non_optimal_Bs(W, p, lam, rng):
    """Feasible, non-optimal transfer matrices: random sparse, and the optimum with
    one column changed (zeroed, scaled, or given an extra edge)."""
    T = W.shape[1]
    B_opt = solve_transfer(W, p, lam).solution
    R = rng.uniform(0.0, 1.0, (T, T)) * (rng.random((T, T)) < 0.4)
    np.fill_diagonal(R, 0.0)
    out = [R]
    for t in range(T):
        Z = B_opt.copy()
        Z[:, t] = 0.0
        S = B_opt.copy()
        S[:, t] *= 1.5
        E = B_opt.copy()
        E[(t + 1) % T, t] += 0.3
        out += [Z, S, E]
    return B_opt, out


@pytest.mark.parametrize("seed,T,d,lam,pscale,rho", [(0, 7, 4, 1.0, 0.1, 0.0), (1, 12, 6, 0.5, 0.3, 0.0),
                                                      (2, 9, 12, 2.0, 0.0, 0.0), (3, 8, 5, 1.0, 0.2, 0.05)])
def test_certificate_matches_its_formula_column_by_column(seed, T, d, lam, pscale, rho):
    rng = np.random.default_rng(seed)
    W, p = planted(T, d, rng, mu=pscale)
    Bs = [np.zeros((T, T))]
    if rho == 0.0:
        Bs += _non_optimal_Bs(W, p, lam, rng)[1]
    else:
        R = rng.uniform(0.0, 1.0, (T, T)) * (rng.random((T, T)) < 0.5)
        np.fill_diagonal(R, 0.0)
        Bs.append(R)
    for B in Bs:
        per_col = formula_certificate(W, B, p, lam, rho)
        whole = transfer_kkt_residual(W, B, p, lam, ridge=rho)
        assert whole == pytest.approx(per_col.max(), rel=1e-9, abs=1e-15)
        for t in range(T):
            got = transfer_kkt_residual(W, B, p, lam, columns=[t], ridge=rho)
            assert got == pytest.approx(per_col[t], rel=1e-9, abs=1e-15), t
        # any subset: the max over its columns
        sub = rng.permutation(T)[: T // 2]
        assert transfer_kkt_residual(W, B, p, lam, columns=sub, ridge=rho) == pytest.approx(
            per_col[sub].max(), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("block_entries", [None, 1, 2 * 10, 3 * 10])
def test_a_wrong_column_is_caught_wherever_it_is(monkeypatch, block_entries):
    """Zero each column of the optimal B in turn (the last one included, and the last
    of every block when the columns are certified in blocks): the certificate of the
    whole B must see it, and the other columns alone must still certify."""
    from solvers.bstep import checks

    if block_entries is not None:  # T = 10 rows: blocks of 1, 2 and 3 columns
        monkeypatch.setattr(checks, "_BLOCK_ENTRIES", block_entries)
    rng = np.random.default_rng(46)
    W, p = planted(10, 4, rng, mu=0.05)
    T = W.shape[1]
    B = solve_transfer(W, p, 1.0).solution
    assert transfer_kkt_residual(W, B, p, 1.0) <= 1e-12
    assert np.all(B.sum(axis=0) > 0)  # every column receives: zeroing it is wrong
    for t in range(T):
        wrong = B.copy()
        wrong[:, t] = 0.0
        expected = formula_certificate(W, wrong, p, 1.0)[t]
        assert expected > 1e-2, t
        assert transfer_kkt_residual(W, wrong, p, 1.0) == pytest.approx(expected, rel=1e-9), t
        others = [k for k in range(T) if k != t]
        assert transfer_kkt_residual(W, wrong, p, 1.0, columns=others) <= 1e-12, t
        # the certificate is what solve_transfer stops on: a warm start at the wrong B moves
        res = solve_transfer(W, p, 1.0, B0=wrong)
        assert res.certificate <= res.tol
        assert np.abs(res.solution[:, t]).max() > 0, t


def test_the_planted_spread_instance_with_its_last_column_zeroed():
    """The issue's example: the optimum of SPREAD_W with its last column zeroed has a true
    residual of order 1, and the certificate must say so."""
    B = solve_transfer(SPREAD_W, np.zeros(4), 1.0).solution
    wrong = B.copy()
    wrong[:, -1] = 0.0
    assert transfer_objective(SPREAD_W, wrong, np.zeros(4), 1.0) > 1e-13  # not optimal
    expected = formula_certificate(SPREAD_W, wrong, np.zeros(4), 1.0)
    assert expected[-1] > 0.5 and np.all(expected[:-1] == 0.0)
    assert transfer_kkt_residual(SPREAD_W, wrong, np.zeros(4), 1.0) == pytest.approx(expected[-1], rel=1e-9)


# --------------------------------------------------------------------------------------
# issue 17, item 2: one-hot (exactly dependent) and per-column badly scaled W; solutions
# compared column by column wherever the column's minimiser is unique
# --------------------------------------------------------------------------------------
from tests.instances import colscaled_W, distance_bound, is_pd, modulus, onehot_W  # noqa: E402

FAMILY_CASES = [
    # (kind, seed, d, T, lam, pscale, unique columns expected)
    ("onehot", 70, 9, 6, 1.0, 0.05, "all"),  # rank(W) = 6: every W_{-t} independent
    ("onehot", 71, 9, 10, 1.0, 0.05, "none"),  # rank(W) = 8 < T - 1 = 9: none unique
    ("onehot", 72, 7, 8, 0.5, 0.0, "none"),  # d >= T - 1, yet rank(W) = 6 < T - 1 = 7
    ("onehot_dup", 78, 9, 7, 1.0, 0.05, 2),  # column 1 = column 0: only t in {0, 1} unique
    ("colscaled", 73, 8, 6, 1.0, 0.05, "all"),
    ("colscaled", 74, 12, 10, 3.0, 0.01, "all"),
    ("colscaled", 75, 4, 9, 1.0, 0.05, "none"),  # T - 1 > d
]


def family_instance(kind, seed, d, T, lam, pscale):
    rng = np.random.default_rng(seed)
    W = colscaled_W(rng, d, T) if kind == "colscaled" else onehot_W(rng, d, T)
    if kind == "onehot_dup":
        W[:, 1] = W[:, 0]
    # each source's price relative to its own squared norm (a global price would make
    # the small columns' entries all zero or all free)
    p = pscale * lam * np.sum(W * W, axis=0) * rng.uniform(0.5, 1.5, size=T)
    return W, p


def bstep_column_unique(W: np.ndarray, t: int) -> bool:
    """Column t's minimiser is unique iff the columns that can enter are independent."""
    others = np.delete(np.arange(W.shape[1]), t)
    return int(np.linalg.matrix_rank(W[:, others])) == others.size


def assert_bstep_columns_match(W, p, lam, B, B_ref) -> int:
    """Per unique column: ``||b - b_ref|| <= distance_bound`` (strong convexity, modulus
    ``2 lam sigma_min(W_{-t})^2``), and entrywise to 1e-6 when the column is well
    conditioned. Non-unique columns: only the objective is compared (by the caller).
    Returns the number of unique columns."""
    T = W.shape[1]
    n_unique = 0
    for t in range(T):
        if not bstep_column_unique(W, t):
            continue  # many minimisers: objectives only (check_against_reference)
        n_unique += 1
        others = np.delete(np.arange(T), t)
        Wo, w = W[:, others], W[:, t]
        H = 2.0 * lam * Wo.T @ Wo
        m, L = modulus(H), float(np.linalg.eigvalsh(H)[-1])
        assert m > 0 and is_pd(H)
        b, b_ref = B[others, t], B_ref[others, t]

        def F(x):
            r = w - Wo @ x
            return lam * float(r @ r) + float(p[others] @ x)

        g = H @ b - 2.0 * lam * Wo.T @ w + p[others]
        bound = distance_bound(b, F(b), F(b_ref), g, np.ones(T - 1, bool), m, L, lam * float(w @ w))
        assert np.linalg.norm(b - b_ref) <= bound, (t, np.linalg.norm(b - b_ref), bound)
        if L / m <= 1e6:  # well conditioned: the referee itself is accurate to ~1e-8
            np.testing.assert_allclose(b, b_ref, atol=1e-6 * max(1.0, np.abs(b_ref).max()))
    return n_unique


@pytest.mark.parametrize("kind,seed,d,T,lam,pscale,unique", FAMILY_CASES)
def test_onehot_and_column_scaled_families_match_clarabel(kind, seed, d, T, lam, pscale, unique):
    W, p = family_instance(kind, seed, d, T, lam, pscale)
    if kind == "colscaled":  # column norms really span 1e-3..1e3
        norms = np.linalg.norm(W, axis=0)
        assert norms.min() == pytest.approx(1e-3) and norms.max() == pytest.approx(1e3)
    # a global scale is enough for one-hot W; per-column scales need an equilibrated referee
    reference = clarabel_reference if kind != "colscaled" else clarabel_reference_equilibrated
    res = check_against_reference(W, p, lam, reference)  # objective gap <= 1e-7, KKT <= 1e-9
    assert np.count_nonzero(res.solution) > 0
    B_ref, _ = reference(W, p, lam)
    n_unique = assert_bstep_columns_match(W, p, lam, res.solution, B_ref)
    assert n_unique == {"all": T, "none": 0}.get(unique, unique)


@pytest.mark.parametrize("kind,seed,d,T", [("onehot", 76, 9, 12), ("colscaled", 77, 5, 12)])
def test_families_with_transfer_ridge_match_exactly(kind, seed, d, T):
    """With a transfer ridge every column is strictly convex (modulus 2 rho), unique even
    where W_{-t} is dependent: the solution, not only the value, must match the referee."""
    from tests.test_ridge_transfer import clarabel_ridge

    W, p = family_instance(kind, seed, d, T, 1.0, 0.05)
    assert not any(bstep_column_unique(W, t) for t in range(T))  # ridge-free: not unique
    rho = 1e-2 * float(np.mean(np.sum(W * W, axis=0)))
    res = solve_transfer(W, p, 1.0, ridge=rho)
    assert res.converged and res.certificate <= CERT_TOL
    B, (B_ref, ref) = res.solution, clarabel_ridge(W, p, 1.0, rho)
    assert -1e-7 <= (res.objective - ref) / max(1.0, abs(ref)) <= 1e-9
    for t in range(T):
        others = np.delete(np.arange(T), t)
        Wo, w = W[:, others], W[:, t]
        H = 2.0 * Wo.T @ Wo + 2.0 * rho * np.eye(T - 1)
        m, L = modulus(H), float(np.linalg.eigvalsh(H)[-1])
        assert m >= 2.0 * rho * (1 - 1e-12)

        def F(x):
            r = w - Wo @ x
            return float(r @ r) + float(p[others] @ x) + rho * float(x @ x)

        b, b_ref = B[others, t], B_ref[others, t]
        g = H @ b - 2.0 * Wo.T @ w + p[others]
        bound = distance_bound(b, F(b), F(b_ref), g, np.ones(T - 1, bool), m, L, float(w @ w))
        assert np.linalg.norm(b - b_ref) <= bound, (t, np.linalg.norm(b - b_ref), bound)
