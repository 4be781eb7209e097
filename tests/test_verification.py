"""Verification of one subproblem: fast solver vs every CVXPY solver, judged by numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from amtl_cvx import load_release_mat, make_classification_tasks, make_regression_tasks
from amtl_cvx.problems.exact import ExactSolveError
from amtl_cvx.problems.objective import task_losses
from amtl_cvx.tools.verification import (
    STEPS,
    VERIFY_COLUMNS,
    StepInstance,
    failed_checks,
    format_table,
    make_instance,
    run_verification,
    verify_instance,
)

GAP = 1e-7
# largest |x - x_fast| accepted from each exact solver on the small instances below (its
# accuracy at the tolerances of verify_instance; measured up to 4e-15 OSQP, 8e-7 CLARABEL,
# 9e-6 ECOS); a wrong fast solution is off by far more (see test_wrong_fast_solution_*)
X_TOL = {"cvxpy-OSQP": 1e-6, "cvxpy-CLARABEL": 1e-5, "cvxpy-ECOS": 1e-4}


def _dataset(loss: str, seed: int = 3):
    make = make_regression_tasks if loss == "squared" else make_classification_tasks
    return make(n_tasks=6, n_features=4, n_samples=15, random_state=seed)


@pytest.fixture(scope="module")
def rows_by_case():
    """Verification rows of every (loss, step) on small generated instances."""
    out = {}
    for loss, ridge in (("squared", 0.0), ("logistic", 0.01)):
        ds = _dataset(loss)
        for step in STEPS:
            inst = make_instance(ds, step, lam=0.5, mu=0.2, ridge=ridge)
            out[loss, step] = (inst, verify_instance(inst))
    return out


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("step", STEPS)
def test_backends_agree(rows_by_case, loss, step):
    inst, rows = rows_by_case[loss, step]
    assert [r["backend"] for r in rows] == ["fast", "cvxpy-OSQP", "cvxpy-CLARABEL", "cvxpy-ECOS"]
    for row in rows:
        assert tuple(row) == VERIFY_COLUMNS
        assert row["step"] == step and row["loss"] == loss
    fast = rows[0]
    assert fast["status"].startswith("converged")
    if step == "wstep":
        assert fast["feasibility"] == "n/a"
    else:
        assert fast["feasibility"] == "exact"
        assert fast["min_entry"] >= 0
    if step == "bstep":
        assert fast["max_abs_diag"] == 0.0
    osqp = rows[1]
    if loss == "logistic" and step != "bstep":
        assert osqp["status"] == "n/a" and math.isnan(osqp["objective"])
    succeeded = [r for r in rows if math.isfinite(r["objective"])]
    assert len(succeeded) >= 2  # the fast solver and at least one exact solver
    for row in succeeded:
        assert 0.0 <= row["rel_gap"] <= GAP, row
    assert min(r["rel_gap"] for r in succeeded) == 0.0
    for row in rows[1:]:
        if math.isfinite(row["objective"]):
            assert row["status"] == "optimal"
            assert row["time"] > 0
    # Each exact solution is close to the fast one (these minimisers are unique: the
    # W-steps have full-rank losses or a ridge, and the B-steps' solutions here agree
    # to 1e-15). The fast row's own distance is 0 by construction, so it proves nothing.
    exact = [r for r in rows[1:] if math.isfinite(r["objective"])]
    assert exact
    for row in exact:
        assert row["max_abs_diff"] <= X_TOL[row["backend"]], row


def test_table_formats(rows_by_case):
    rows = [r for _, rs in rows_by_case.values() for r in rs]
    text = format_table(rows)
    lines = text.splitlines()
    assert len(lines) == len(rows) + 2
    assert "rel gap" in lines[0] and "status" in lines[0]
    for name in ("fast", "cvxpy-OSQP", "cvxpy-CLARABEL", "cvxpy-ECOS", "curriculum", "n/a"):
        assert name in text
    assert "nan" not in text  # NaN shows as "-"
    with pytest.raises(ValueError, match="rows"):
        format_table(rows[0])


def _perturbed_transfer(monkeypatch, change):
    import solvers.transfer as fast_transfer

    real = fast_transfer.solve_transfer

    def fake(W, penalty, lam, **kwargs):
        res = real(W, penalty, lam, **kwargs)
        B = change(np.array(res.solution))
        return type(res)(B, res.objective, res.n_iter, res.converged, res.certificate, res.tol, res.history)

    monkeypatch.setattr(fast_transfer, "solve_transfer", fake)


def test_wrong_fast_solution_shows_a_gap(monkeypatch):
    """The check can fail: a perturbed fast B-step is caught by the numpy objective."""
    inst = make_instance(_dataset("squared"), "bstep", lam=0.5, mu=0.2)

    def perturb(B):
        B = B + 0.05
        np.fill_diagonal(B, 0.0)
        return B

    _perturbed_transfer(monkeypatch, perturb)
    rows = verify_instance(inst, solvers=["CLARABEL", "OSQP"])
    fast, exact = rows[0], rows[1:]
    assert fast["feasibility"] == "exact"  # still feasible, but not optimal
    assert fast["rel_gap"] > 1e-4
    for row in exact:
        assert row["rel_gap"] <= GAP
        assert row["max_abs_diff"] > 1e-3
    assert failed_checks(rows) == [f"bstep fast: relative gap {fast['rel_gap']:.1e} > 1e-07"]


def test_infeasible_fast_solution_is_flagged(monkeypatch):
    inst = make_instance(_dataset("squared"), "bstep", lam=0.5, mu=0.2)

    def break_constraints(B):
        B = B.copy()
        B[0, 1] = -1e-3
        B[2, 2] = 1e-3
        return B

    _perturbed_transfer(monkeypatch, break_constraints)
    fast = verify_instance(inst, solvers=["CLARABEL"])[0]
    assert fast["feasibility"] == "violated"
    assert fast["min_entry"] == pytest.approx(-1e-3)
    assert fast["max_abs_diag"] == pytest.approx(1e-3)
    assert "bstep fast: solution not exactly feasible" in failed_checks([fast])


def test_failed_backend_is_a_row(monkeypatch):
    from amtl_cvx.problems import TransferProblem

    inst = make_instance(_dataset("squared"), "bstep", lam=0.5, mu=0.2)

    def fail(self, solver=None, **options):
        if solver == "ECOS":
            raise ExactSolveError("ECOS returned status 'infeasible' (injected)")
        return original(self, solver, **options)

    original = TransferProblem.solve
    monkeypatch.setattr(TransferProblem, "solve", fail)
    rows = verify_instance(inst)
    ecos = rows[-1]
    assert ecos["backend"] == "cvxpy-ECOS"
    assert "injected" in ecos["status"]
    assert math.isnan(ecos["objective"]) and math.isnan(ecos["rel_gap"])
    assert all(r["rel_gap"] <= GAP for r in rows[:-1])
    assert "injected" in format_table(rows)
    failures = failed_checks(rows)
    assert failures == ["bstep cvxpy-ECOS: status ECOS returned status 'infeasible' (injected)"]
    assert failed_checks(rows[:-1]) == []


def test_instances_follow_the_recipe():
    ds = _dataset("squared")
    T = ds.train.n_tasks
    b = make_instance(ds, "bstep", lam=0.5, mu=0.2)
    assert isinstance(b, StepInstance)
    np.testing.assert_allclose(b.penalty, 0.2 * task_losses(b.W, ds.train))
    w = make_instance(ds, "wstep", lam=0.5, mu=0.2)
    assert np.all(w.B >= 0) and np.all(np.diag(w.B) == 0)
    np.testing.assert_allclose(w.weights, 1 + 0.2 * w.B.sum(axis=1))
    c = make_instance(ds, "curriculum", lam=0.5, mu=0.2)
    assert c.learned.sum() == T // 2 and not c.learned[c.task]
    losses = task_losses(c.W, ds.train)
    assert losses[c.learned].max() <= losses[c.task] <= losses[~c.learned].min()


def test_run_verification_and_release_data(synthetic_path):
    ds = load_release_mat(synthetic_path)
    lines = []
    rows = run_verification(ds, steps=["bstep"], lam=10.0, mu=0.1, solvers=["CLARABEL"], progress=lines.append)
    assert [r["backend"] for r in rows] == ["fast", "cvxpy-CLARABEL"]
    assert all(r["rel_gap"] <= GAP for r in rows)
    assert lines


def test_bad_arguments():
    ds = _dataset("squared")
    with pytest.raises(ValueError, match="step"):
        make_instance(ds, "xstep")
    with pytest.raises(ValueError, match="lam"):
        make_instance(ds, "bstep", lam=0.0)
    with pytest.raises(ValueError, match="dataset"):
        make_instance([1, 2], "bstep")
    with pytest.raises(ValueError, match="loss"):
        make_instance(ds, "bstep", loss="hinge")
    inst = make_instance(ds, "bstep")
    with pytest.raises(ValueError, match="solvers"):
        verify_instance(inst, solvers=["SCS"])
    with pytest.raises(ValueError, match="instance"):
        verify_instance("bstep")
    with pytest.raises(ValueError, match="steps"):
        run_verification(ds, steps=[])


def test_a_slightly_wrong_fast_solution_is_caught_by_its_distance(monkeypatch):
    """A fast B-step off by 3e-5 on its support has an objective gap far below GAP (it is
    quadratic in the error), so only the exact rows' distance to it shows the error."""
    inst = make_instance(_dataset("squared"), "bstep", lam=0.5, mu=0.2)

    def nudge(B):
        assert np.count_nonzero(B) > 0
        return np.where(B > 0, B + 3e-5, B)

    _perturbed_transfer(monkeypatch, nudge)
    rows = verify_instance(inst, solvers=["CLARABEL", "OSQP"])
    assert all(r["rel_gap"] <= GAP for r in rows)  # the objective alone does not see it
    assert failed_checks(rows) == []
    for row in rows[1:]:
        assert row["max_abs_diff"] == pytest.approx(3e-5, rel=1e-3)
        assert row["max_abs_diff"] > X_TOL[row["backend"]]


# --------------------------------------------------------------------------------------
# issue 13: the first-order solvers as rows next to the fast solver
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def first_order_rows():
    out = {}
    for loss, ridge in (("squared", 0.0), ("logistic", 0.01)):
        ds = _dataset(loss)
        for step in STEPS:
            inst = make_instance(ds, step, lam=0.5, mu=0.2, ridge=ridge)
            out[loss, step] = verify_instance(inst, solvers=["CLARABEL", "ECOS"], first_order=True)
    return out


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("step", STEPS)
def test_first_order_rows(first_order_rows, loss, step):
    rows = first_order_rows[loss, step]
    assert [r["backend"] for r in rows] == ["fast", "first-order", "cvxpy-CLARABEL", "cvxpy-ECOS"]
    fo = rows[1]
    assert tuple(fo) == VERIFY_COLUMNS and fo["step"] == step and fo["loss"] == loss
    assert fo["status"].startswith("converged") and fo["time"] > 0
    assert fo["feasibility"] == ("n/a" if step == "wstep" else "exact")
    assert 0.0 <= fo["rel_gap"] <= GAP
    assert fo["max_abs_diff"] <= 1e-6  # the minimisers are unique here (see test_backends_agree)
    assert failed_checks(rows) == []
    assert "first-order" in format_table(rows)


def test_first_order_rows_are_off_by_default(rows_by_case):
    assert all(r["backend"] != "first-order" for _, rows in rows_by_case.values() for r in rows)


def test_unconverged_first_order_row_fails_its_check(monkeypatch):
    import solvers.first_order_tasks as fo_tasks

    real = fo_tasks.solve_tasks_first_order

    def cut(*args, **kwargs):
        return real(*args, **{**kwargs, "max_iter": 1})

    monkeypatch.setattr(fo_tasks, "solve_tasks_first_order", cut)
    inst = make_instance(_dataset("squared"), "wstep", lam=0.5, mu=0.2)
    rows = verify_instance(inst, solvers=["CLARABEL"], first_order=True)
    assert rows[1]["status"].startswith("not converged")
    failures = failed_checks(rows)
    assert failures and all(f.startswith("wstep first-order: ") for f in failures)
    assert any("not converged" in f for f in failures) and any("relative gap" in f for f in failures)


def test_run_verification_with_first_order_on_release_data(synthetic_path):
    ds = load_release_mat(synthetic_path)
    rows = run_verification(ds, lam=10.0, mu=0.1, solvers=["CLARABEL"], first_order=True)
    assert [r["backend"] for r in rows] == ["fast", "first-order", "cvxpy-CLARABEL"] * 3
    assert failed_checks(rows) == [], failed_checks(rows)
