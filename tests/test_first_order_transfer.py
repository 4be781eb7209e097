"""The first-order B-step solver (``solvers.first_order``), held to CVXPY + Clarabel
exactly like the active-set solver (``tests/test_solvers_transfer.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import solvers.bstep.coordinate_descent as cdm
import solvers.first_order as fo
from solvers.bstep.compact_certificate import _dense_violators, _Pricing, _sparse_violators
from solvers.first_order import (
    solve_transfer_first_order,
    transfer_duality_gap,
    transfer_kkt_residual_compact,
)
from solvers.result import SolverResult
from solvers.transfer import solve_transfer, transfer_kkt_residual, transfer_objective
from tests.test_ridge_transfer import clarabel_ridge, dense_kkt
from tests.test_ridge_transfer import instance as ridge_instance
from tests.test_solvers_transfer import (
    CERT_TOL,
    FAMILY_CASES,
    GAP_TOL,
    RANDOM_CASES,
    assert_bstep_columns_match,
    assert_exactly_feasible,
    clarabel_reference,
    clarabel_reference_equilibrated,
    direct_objective,
    family_instance,
    independent_kkt,
    planted,
)


@pytest.fixture(params=["fista", "cd"])
def inner(request, monkeypatch):
    """Both inner first-order methods of the working sets (FISTA is the default)."""
    monkeypatch.setattr(cdm, "_INNER", request.param)
    return request.param


def check(W, p, lam, reference=clarabel_reference, **kw) -> SolverResult:
    """Solve, check feasibility, certificate and objective, compare with the referee."""
    T = W.shape[1]
    res = solve_transfer_first_order(W, p, lam, sparse_output=False, **kw)
    B = res.solution
    assert isinstance(B, np.ndarray)
    assert_exactly_feasible(B, T)
    assert res.converged and res.certificate <= res.tol
    assert res.certificate == pytest.approx(transfer_kkt_residual(W, B, p, lam), abs=1e-12)
    assert independent_kkt(W, B, p, lam) <= CERT_TOL
    exact = direct_objective(W, B, p, lam)
    assert res.objective == pytest.approx(exact, rel=1e-10, abs=1e-10)
    _, ref = reference(W, p, lam)
    gap = (res.objective - ref) / max(1.0, abs(ref))
    assert -1e-6 <= gap <= GAP_TOL, gap
    # the reported duality gap: transfer_duality_gap's, small, and an upper bound on the
    # suboptimality (weak duality; the referee is accurate to about 1e-9 relative)
    _, rel_gap = transfer_duality_gap(W, B, p, lam, ridge=kw.get("ridge", 0.0))
    assert res.duality_gap == pytest.approx(rel_gap, rel=1e-6, abs=1e-12)
    assert res.duality_gap >= 0.0
    if kw.get("ridge", 0.0) > 0 or np.all(p > 0):  # a zero price makes the dual point 0 (documented)
        assert res.duality_gap <= GAP_TOL
    assert res.duality_gap * res.objective >= res.objective - ref - 1e-9 * max(1.0, abs(ref))
    return res


@pytest.mark.parametrize("seed,T,d,lam,pscale", RANDOM_CASES)
def test_random_instances_match_clarabel(seed, T, d, lam, pscale, inner):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((d, T))
    p = pscale * rng.uniform(0.5, 1.5, T)
    check(W, p, lam)


@pytest.mark.parametrize("seed,T", [(0, 30), (1, 60)])
def test_planted_graphs_match_clarabel(seed, T, inner):
    W, p = planted(T, 20, np.random.default_rng(seed))
    check(W, p, 1.0)


@pytest.mark.parametrize("kind,seed,d,T,lam,pscale,unique", FAMILY_CASES)
def test_onehot_and_column_scaled_families_match_clarabel(kind, seed, d, T, lam, pscale, unique, inner):
    W, p = family_instance(kind, seed, d, T, lam, pscale)
    reference = clarabel_reference if kind != "colscaled" else clarabel_reference_equilibrated
    res = check(W, p, lam, reference)
    B_ref, _ = reference(W, p, lam)
    assert_bstep_columns_match(W, p, lam, res.solution, B_ref)


def test_degenerate_duplicated_tasks_zero_column_rank_one_and_wide(inner):
    rng = np.random.default_rng(5)
    # duplicated tasks and a zero column
    W = rng.standard_normal((4, 12))
    W[:, 6:10] = W[:, :4]
    W[:, 11] = 0.0
    check(W, rng.uniform(0.0, 0.3, 12), 1.0)
    # rank-1 W, T >> d, zero prices
    W1 = np.outer(rng.standard_normal(3), rng.uniform(0.1, 2.0, 40))
    check(W1, np.zeros(40), 1.0)
    check(W1, 0.05 * np.ones(40), 2.0)
    # T >> d
    W2 = rng.standard_normal((3, 50))
    check(W2, np.zeros(50), 0.5)


@pytest.mark.parametrize("kind", ["random", "wide", "duplicates", "rank_one", "scaled", "no_price", "onehot"])
def test_transfer_ridge_matches_clarabel(kind, inner):
    W, p, lam, rho = ridge_instance(kind, 3)
    res = solve_transfer_first_order(W, p, lam, ridge=rho, sparse_output=False)
    B = res.solution
    assert_exactly_feasible(B, W.shape[1])
    assert res.converged and res.certificate <= CERT_TOL
    assert res.certificate == pytest.approx(transfer_kkt_residual(W, B, p, lam, ridge=rho), abs=1e-12)
    assert dense_kkt(W, B, p, lam, rho) <= CERT_TOL
    assert res.objective == pytest.approx(transfer_objective(W, B, p, lam, ridge=rho), rel=1e-10, abs=1e-10)
    B_ref, ref = clarabel_ridge(W, p, lam, rho)
    assert -1e-6 <= (res.objective - ref) / max(1.0, abs(ref)) <= GAP_TOL
    # strictly convex: the solution itself is unique and agrees with the active-set solver's
    exact = solve_transfer(W, p, lam, ridge=rho).solution
    np.testing.assert_allclose(B, exact, atol=1e-7 * max(1.0, np.abs(exact).max()))


def test_same_objective_as_active_set_on_a_larger_planted_instance():
    W, p = planted(150, 20, np.random.default_rng(3))
    a = solve_transfer(W, p, 1.0)
    b = solve_transfer_first_order(W, p, 1.0, sparse_output=False)
    assert b.converged
    assert abs(b.objective - a.objective) <= 1e-9 * max(1.0, a.objective)


def test_sparse_output_equals_dense_and_blocks_change_nothing():
    W, p = planted(40, 8, np.random.default_rng(7))
    dense = solve_transfer_first_order(W, p, 1.0, sparse_output=False)
    sparse = solve_transfer_first_order(W, p, 1.0, sparse_output=True)
    assert sp.issparse(sparse.solution) and sparse.solution.format == "csc"
    np.testing.assert_array_equal(sparse.solution.toarray(), dense.solution)
    assert sparse.objective == dense.objective and sparse.certificate == dense.certificate
    assert np.all(sparse.solution.data > 0)  # supports only
    blocked = solve_transfer_first_order(W, p, 1.0, sparse_output=False, block_size=7)
    assert blocked.converged
    assert blocked.objective == pytest.approx(dense.objective, rel=1e-12)
    # the blockwise certificate is transfer_kkt_residual's, for dense and sparse B
    assert transfer_kkt_residual_compact(W, sparse.solution, p, 1.0) == pytest.approx(
        transfer_kkt_residual(W, dense.solution, p, 1.0), abs=1e-15)
    Bbad = dense.solution.copy()
    Bbad[np.nonzero(Bbad)[0][0], np.nonzero(Bbad)[1][0]] *= 1.5
    # one support entry dropped: its worst entry is off the support, among a few
    # violators (the pricing pass's sparse path, _sparse_violators)
    Bdrop = dense.solution.copy()
    Bdrop[np.nonzero(Bdrop)[0][-1], np.nonzero(Bdrop)[1][-1]] = 0.0
    rng = np.random.default_rng(0)
    Brand = np.where(rng.uniform(size=(40, 40)) < 0.1, rng.uniform(size=(40, 40)), 0.0)
    np.fill_diagonal(Brand, 0.0)
    # non-optimal points whose worst entry is off the support (B = 0, a shrunk
    # solution) or anywhere (a random sparse B), with and without the ridge
    for B in (Bbad, Bdrop, np.zeros((40, 40)), 0.5 * dense.solution, Brand):
        for rho in (0.0, 0.7):
            ref = transfer_kkt_residual(W, B, p, 1.0, ridge=rho)
            assert ref > 1e-3
            assert transfer_kkt_residual_compact(W, sp.csc_matrix(B), p, 1.0, ridge=rho) == pytest.approx(
                ref, rel=1e-12)
    assert transfer_kkt_residual_compact(W, -Bbad, p, 1.0) == np.inf


@pytest.mark.parametrize("violators", [0.001, 0.02, 0.3])
def test_sparse_and_dense_pricing_agree(violators):
    """The pricing pass's two paths (all entries, or the violators alone) give the same
    certificate to the last bit and the same accepted candidates, for few and many
    violators and a zero price (ranked first)."""
    rng = np.random.default_rng(3)
    k, T, m = 30, 400, 12
    W = rng.standard_normal((5, T))
    p = rng.uniform(0.1, 1.0, T)
    p[7] = 0.0
    pr = _Pricing.of(W, p, 0.0)
    V = np.where(rng.uniform(size=(k, T)) < violators, rng.uniform(1e-9, 2.0, (k, T)), -rng.uniform(size=(k, T)))
    V[np.arange(k), np.arange(k) + 100] = 1e-4  # at least one violator per row
    V[1:6, 7] = 0.3  # a violator whose price is 0
    V[np.arange(k), np.arange(k)] = -np.inf  # own index
    V[0] = -1.0  # a row without a violator
    mt = rng.uniform(0.5, 50.0, k)  # large m_t: sigma capped at the scale
    thr = 1e-3
    off_d, cand_d, ok_d = _dense_violators(pr, V.copy(), mt, m, thr)
    off_s, cand_s, ok_s = _sparse_violators(pr, V.copy(), V > 0, mt, m, thr)
    np.testing.assert_array_equal(off_s, off_d)
    assert off_d[0] == 0.0 and np.all(off_d[1:] > 0)
    assert all(7 in cand_d[r][ok_d[r]] for r in range(1, 6))  # a zero price ranks first
    for r in range(k):
        assert set(cand_s[r][ok_s[r]]) == set(cand_d[r][ok_d[r]])
    # the candidates are the largest violations relative to the price
    score = np.where(V > 0, V * pr.inv_p, -np.inf)
    r = int(np.argmax((V > 0).sum(axis=1)))
    best = np.sort(score[r])[::-1][: ok_d[r].sum()]
    np.testing.assert_array_equal(np.sort(score[r, cand_d[r][ok_d[r]]])[::-1], best)


def test_auto_sparse_threshold(monkeypatch):
    W, p = planted(30, 6, np.random.default_rng(8))
    assert isinstance(solve_transfer_first_order(W, p, 1.0).solution, np.ndarray)
    monkeypatch.setattr(fo, "SPARSE_AUTO_T", 20)
    assert sp.issparse(solve_transfer_first_order(W, p, 1.0).solution)


def test_warm_start_dense_or_sparse_and_history():
    W, p = planted(60, 10, np.random.default_rng(9))
    cold = solve_transfer_first_order(W, p, 1.0, sparse_output=False, record_history=True)
    assert cold.history and cold.history[-1] == cold.certificate
    for B0 in (cold.solution, sp.csr_matrix(cold.solution)):
        warm = solve_transfer_first_order(W, p, 1.0, B0=B0, sparse_output=False)
        assert warm.converged and warm.n_iter == 0  # certified by the first pricing pass
        assert warm.objective == pytest.approx(cold.objective, rel=1e-12)
    # an arbitrary (even infeasible) warm start is only a starting support
    B0 = np.random.default_rng(0).standard_normal((60, 60))
    warm = solve_transfer_first_order(W, p, 1.0, B0=B0, sparse_output=False)
    assert warm.converged and warm.objective == pytest.approx(cold.objective, rel=1e-9)


def test_duality_gap_is_zero_at_the_solution_and_positive_elsewhere():
    rng = np.random.default_rng(11)
    W = rng.standard_normal((6, 25))
    p = rng.uniform(0.1, 1.0, 25)
    for rho in (0.0, 0.3):
        res = solve_transfer_first_order(W, p, 2.0, ridge=rho, sparse_output=False)
        gap, rel = transfer_duality_gap(W, res.solution, p, 2.0, ridge=rho)
        assert 0.0 <= rel <= 1e-9 and gap <= 1e-9 * res.objective
        assert res.duality_gap == pytest.approx(rel, rel=1e-6, abs=1e-15)
        # a feasible, non-optimal B has a gap bounded below by its suboptimality
        B = res.solution * 0.7
        gap2, _ = transfer_duality_gap(W, B, p, 2.0, ridge=rho)
        sub = transfer_objective(W, B, p, 2.0, ridge=rho) - res.objective
        assert gap2 >= sub * (1 - 1e-9) > 0
    assert transfer_duality_gap(W, -res.solution, p, 2.0)[0] == np.inf


def test_certificate_catches_a_planted_bug(monkeypatch):
    """If the support solve returned a wrong column, the certificate must show it."""
    W, p = planted(40, 8, np.random.default_rng(12))
    real = fo._solve_working_sets

    def wrong(*args, **kw):
        out, ep = real(*args, **kw)
        return out * 0.9, ep

    monkeypatch.setattr(fo, "_solve_working_sets", wrong)
    monkeypatch.setattr(fo, "_RESCUE_MAX_COLS", 0)
    res = solve_transfer_first_order(W, p, 1.0, sparse_output=False, max_iter=3)
    assert not res.converged
    assert res.certificate == pytest.approx(transfer_kkt_residual(W, res.solution, p, 1.0), abs=1e-12)


def test_magnitude_of_W_and_lam_changes_nothing():
    W, p = planted(30, 6, np.random.default_rng(13))
    base = solve_transfer_first_order(W, p, 1.0, sparse_output=False)
    for s, lam in ((1e-150, 1.0), (1e100, 1e-3)):
        r = solve_transfer_first_order(W * s, p * s * s * lam, lam, sparse_output=False)
        assert r.converged
        np.testing.assert_allclose(r.solution, base.solution, rtol=1e-8, atol=1e-12)


def test_trivial_sizes():
    assert solve_transfer_first_order(np.ones((3, 1)), np.zeros(1), 1.0).solution.shape == (1, 1)
    r = solve_transfer_first_order(np.zeros((3, 4)), np.ones(4), 1.0)
    assert r.converged and r.objective == 0.0 and not np.any(r.solution)


@pytest.mark.parametrize("kwargs,match", [
    (dict(W=np.ones(3)), "W must be a 2-D"),
    (dict(penalty=-np.ones(4)), "penalty must be nonnegative"),
    (dict(lam=0.0), "lam must be"),
    (dict(ridge=-1.0), "ridge must be"),
    (dict(tol=0.0), "tol must be"),
    (dict(max_iter=0), "max_iter must be"),
    (dict(sparse_output="yes"), "sparse_output must be"),
    (dict(block_size=0), "block_size must be"),
    (dict(B0=np.ones((3, 3))), "B0 must have shape"),
    (dict(B0=np.full((4, 4), np.nan)), "B0 must contain only finite"),
])
def test_validation_errors(kwargs, match):
    args = dict(W=np.ones((2, 4)), penalty=np.ones(4), lam=1.0)
    args.update(kwargs)
    W, p, lam = args.pop("W"), args.pop("penalty"), args.pop("lam")
    with pytest.raises(ValueError, match=match):
        solve_transfer_first_order(W, p, lam, **args)


def test_dask_local_cluster_gives_the_local_answer():
    distributed = pytest.importorskip("distributed")
    W, p = planted(60, 8, np.random.default_rng(14))
    local = solve_transfer_first_order(W, p, 1.0, sparse_output=True, block_size=15)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, host="127.0.0.1",
                                  protocol="tcp", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        workers = set(client.scheduler_info()["workers"])
        assert len(workers) == 2
        with distributed.get_task_stream(client=client) as stream:
            remote = solve_transfer_first_order(W, p, 1.0, sparse_output=True, block_size=15, client=client)
        ran_on = {task["worker"] for task in stream.data}
        assert ran_on and ran_on <= workers  # the blocks really ran on the workers
        auto = solve_transfer_first_order(W, p, 1.0, sparse_output=False, client=client)
    assert remote.converged and auto.converged
    assert (remote.solution != local.solution).nnz == 0
    assert remote.objective == local.objective and remote.certificate == local.certificate
    assert auto.objective == pytest.approx(local.objective, rel=1e-12)


def test_client_without_distributed_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "distributed" else real(name, *a))
    with pytest.raises(ImportError, match=r"amtl-cvx\[dask\]"):
        solve_transfer_first_order(np.ones((2, 3)), np.ones(3), 1.0, client=object())
