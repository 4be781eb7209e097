"""Custom statements (issue 18): a Variant's steps plugged into Algorithms 1 and 2."""

from __future__ import annotations

import importlib.util
import time
import warnings

import cvxpy as cp
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from amtl_cvx import (
    AMTLRegressor,
    TaskKFold,
    Variant,
    VariantError,
    amtl_objective,
    fit_alternating,
    fit_curriculum,
    load_release_mat,
    make_regression_tasks,
    stack_tasks,
)
from amtl_cvx.algorithms import ConvergenceWarning
from amtl_cvx.algorithms import NonMonotoneWarning
from tests.conftest import ROOT

SAME = lambda s: cp.Problem(cp.Minimize(s.objective))  # noqa: E731 - the built-in step, restated


def _example():
    spec = importlib.util.spec_from_file_location("variants_example", ROOT / "examples" / "variants.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def small():
    return make_regression_tasks(n_tasks=8, n_features=6, random_state=1).train


def _fit(data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit_alternating(data, **kw)


def _rel(a, b):
    n = min(len(a), len(b))
    return float(np.max(np.abs(np.asarray(a[:n]) / np.asarray(b[:n]) - 1.0)))


# ================================================================ identity: the hook is exact
@pytest.mark.parametrize("extrapolate", [False, True])
@pytest.mark.parametrize("step", ["transfer", "tasks", "both"])
def test_identity_variant_reproduces_the_builtin_alternation(small, step, extrapolate):
    """The built-in step restated through the hook gives the built-in history (1e-9)."""
    steps = {"transfer": SAME} if step == "transfer" else {"tasks": SAME} if step == "tasks" else \
        {"transfer": SAME, "tasks": SAME}
    kw = dict(lam=0.3, mu=0.5, ridge=0.01, max_iter=12, tol=1e-15, extrapolate=extrapolate)
    ref = _fit(small, method="alternating", transfer_ridge=0.0, **kw)  # the same path and problem
    fit = _fit(small, variant=Variant(**steps), **kw)
    assert len(fit.objective_history) == len(ref.objective_history) == 13
    assert _rel(fit.objective_history, ref.objective_history) <= 1e-9
    assert fit.objective == pytest.approx(
        amtl_objective(fit.W, fit.B, small, lam=0.3, mu=0.5, ridge=0.01), rel=1e-9)
    assert fit.method == "alternating" and np.isnan(fit.certificate) and fit.variant == "Variant"


def test_a_variant_that_drops_a_term_does_not_reproduce(small):
    """The identity test has power: dropping the price term changes the history."""
    kw = dict(lam=0.3, mu=0.5, ridge=0.01, max_iter=12, tol=1e-15)
    ref = _fit(small, method="alternating", transfer_ridge=0.0, **kw)
    lam = 0.3
    dropped = Variant(transfer=lambda s: cp.Problem(cp.Minimize(lam * cp.sum_squares(s.W - s.W @ s.B))),
                      objective=amtl_objective)
    with pytest.warns(NonMonotoneWarning, match="rose"):  # and its objective is not the one minimised
        fit = _fit(small, variant=dropped, **kw)
    assert _rel(fit.objective_history, ref.objective_history) > 1e-6


def test_identity_curriculum_variant_reproduces_the_builtin(small):
    ref = fit_curriculum(small, lam=0.3, mu=0.5, ridge=0.01)
    fit = fit_curriculum(small, lam=0.3, mu=0.5, ridge=0.01, variant=Variant(curriculum=SAME))
    np.testing.assert_array_equal(fit.order, ref.order)
    assert _rel(fit.objective_history, ref.objective_history) <= 1e-9
    assert fit.objective == pytest.approx(ref.objective, rel=1e-9)


def test_non_dpp_statement_is_named_and_accepted_with_dpp_false(small):
    """sqrt(price)^2 = price: DCP but not DPP. The error names the term; dpp=False solves it."""
    def rewritten(s):
        prices = cp.square(cp.sqrt(s.price))
        return cp.Problem(cp.Minimize(s.lam * cp.sum_squares(s.W - s.W @ s.B) + prices @ cp.sum(s.B, axis=1)))

    kw = dict(lam=0.3, mu=0.5, ridge=0.01, max_iter=6, tol=1e-15)
    with pytest.raises(VariantError, match=r"not DPP: its objective contains .*price"):
        _fit(small, variant=Variant(transfer=rewritten), **kw)
    ref = _fit(small, method="alternating", transfer_ridge=0.0, **kw)
    fit = _fit(small, variant=Variant(transfer=rewritten, dpp=False), **kw)
    assert _rel(fit.objective_history, ref.objective_history) <= 1e-9


# ================================================================ the variant's own objective
def test_column_sums_are_kept_through_extrapolation(small):
    """Extrapolated points must satisfy the variant's constraints (checked, not assumed)."""
    ex = _example()
    for extrapolate in (False, True):
        fit = _fit(small, lam=0.3, mu=0.5, ridge=0.01, max_iter=60, variant=ex.column_sums,
                   extrapolate=extrapolate)
        h = fit.objective_history
        assert np.all(np.diff(h) <= 1e-9 * np.abs(h[1:]))
        assert fit.B.sum(axis=0).max() <= 1 + 1e-7
        assert fit.variant == "column sums <= 1"


def test_group_and_huber_objectives_are_the_variants_own(small):
    """The history evaluated from the statements equals the variant's objective in numpy."""
    ex = _example()
    lam, mu, ridge, gamma, M = 0.3, 0.5, 0.01, 0.5, 0.7
    kw = dict(lam=lam, mu=mu, ridge=ridge, max_iter=40)
    group = _fit(small, variant=ex.GroupRows(gamma), **kw)
    base = amtl_objective(group.W, group.B, small, lam=lam, mu=mu, ridge=ridge)
    assert group.objective == pytest.approx(base + gamma * np.linalg.norm(group.B, axis=1).sum(), rel=1e-9)
    huber = ex.HuberLoss(M)
    fit = _fit(small, variant=huber, **kw)
    H = huber.task_loss_values(fit.W, small, "squared")
    R = fit.W - fit.W @ fit.B
    own = (1 + mu * fit.B.sum(axis=1)) @ H + lam * np.sum(R * R) + ridge * np.sum(fit.W**2)
    assert fit.objective == pytest.approx(own, rel=1e-9)
    for f in (group, fit):
        h = f.objective_history
        assert np.all(np.diff(h) <= 1e-9 * np.abs(h[1:])) and f.converged


def test_an_inconsistent_objective_warns(small):
    negated = Variant(transfer=SAME, objective=lambda *a, **k: -amtl_objective(*a, **k))
    with pytest.warns(NonMonotoneWarning, match="rose"):
        _fit(small, lam=0.3, mu=0.5, max_iter=5, variant=negated, extrapolate=False)


def test_release_variants_end_to_end(synthetic_path):
    """Each example variant runs on synthetic_dataset.mat in well under 60 s."""
    ex = _example()
    data = load_release_mat(synthetic_path).train
    for variant in (ex.column_sums, ex.GroupRows(1.0), ex.HuberLoss(5.0)):
        t0 = time.perf_counter()
        fit = _fit(data, lam=1.0, mu=0.1, variant=variant)
        assert time.perf_counter() - t0 < 60
        h = fit.objective_history
        assert fit.converged and np.all(np.diff(h) <= 1e-9 * np.abs(h[1:])) and h[-1] < h[0]


# ================================================================ bad input
@pytest.mark.parametrize("make, match", [
    (lambda s: s.objective, "must return a cvxpy.Problem, got"),
    (lambda s: cp.Problem(cp.Maximize(-s.objective)), "must minimise"),
    (lambda s: cp.Problem(cp.Minimize(s.objective + cp.sum(cp.Variable((9, 8), name="Bx")))),
     r"variable 'Bx' of shape \(9, 8\) is not the step's own.*step.B \(shape \(8, 8\)\)"),
    (lambda s: cp.Problem(cp.Minimize(s.objective), [s.B[:, :3] <= np.ones((8, 8))]), "building the statement failed"),
    (lambda s: cp.Problem(cp.Minimize(s.objective + cp.sum(cp.sqrt(s.B)))),
     r"must be convex, and its term 'Sum\(Power.*concave"),
    (lambda s: cp.Problem(cp.Minimize(s.objective), [cp.norm(s.B, "fro") >= 1]), r"not DCP: its constraint"),
])
def test_bad_statements_are_named(small, make, match):
    with pytest.raises(VariantError, match=match):
        _fit(small, lam=0.3, mu=0.5, max_iter=2, variant=Variant(transfer=make))


def test_bad_variant_arguments(small):
    with pytest.raises(ValueError, match="variant must be an amtl_cvx.Variant"):
        fit_alternating(small, variant=SAME)
    with pytest.raises(ValueError, match="method='lbfgs'"):
        fit_alternating(small, variant=Variant(transfer=SAME), method="lbfgs")
    with pytest.raises(VariantError, match="replaces none of its steps"):
        fit_alternating(small, variant=Variant(curriculum=SAME))
    with pytest.raises(VariantError, match="Algorithm 2 needs its curriculum step"):
        fit_curriculum(small, variant=Variant(transfer=SAME))
    with pytest.raises(VariantError, match="own task_losses but no tasks step"):
        fit_alternating(small, variant=Variant(transfer=SAME, task_losses=lambda W, d, l: np.ones(8)))
    with pytest.raises(VariantError, match="transfer must be a callable"):
        fit_alternating(small, variant=Variant(transfer="B >= 0"))


# ================================================================ estimators
def test_estimator_takes_a_variant_into_grid_search():
    ex = _example()
    ds = make_regression_tasks(n_tasks=5, n_features=4, n_samples=20, n_parents=1, random_state=3)
    X, y = stack_tasks(ds.train)
    model = AMTLRegressor(lam=0.3, mu=0.2, variant=ex.GroupRows(0.1))
    twin = clone(model)
    assert twin.variant is not model.variant and twin.variant.gamma == 0.1
    search = GridSearchCV(model, {"variant__gamma": [0.01, 10.0]}, cv=TaskKFold(3)).fit(X, y)
    assert search.best_params_["variant__gamma"] in (0.01, 10.0)
    sums = AMTLRegressor(lam=0.3, mu=0.5, variant=ex.column_sums).fit(X, y)
    assert sums.transfer_matrix_.sum(axis=0).max() <= 1 + 1e-7
    with pytest.raises(ValueError, match="variant must be an amtl_cvx.Variant"):
        AMTLRegressor(variant="column sums").fit(X, y)
    from amtl_cvx import save_model

    with pytest.raises(ValueError, match="variant: a model fitted with a Variant cannot be saved"):
        save_model(sums, ROOT / "never_written.npz")
    assert not (ROOT / "never_written.npz").exists()


def test_an_infeasible_extrapolated_point_is_worth_infinity(small):
    """The safeguard of the extrapolation: a point outside the variant's constraints is
    never accepted (it is worth +inf), a feasible one is worth the objective."""
    from amtl_cvx.algorithms import make_backend
    from amtl_cvx.algorithms.backends import VariantBackend
    from amtl_cvx.algorithms.variants import _VariantObjective

    ex = _example()
    T, c = small.n_tasks, np.ones(small.n_tasks)
    consts = dict(lam=0.3, mu=0.5, c=c, ridge=0.01)
    engine = VariantBackend(ex.column_sums, make_backend("fast", small, "squared"), small, "squared", **consts)
    F = _VariantObjective(ex.column_sums, engine, small, 0.3, 0.5, c, "squared", 0.01)
    W = engine.tasks(np.zeros((T, T)), 0.3, np.ones(T), 0.01)
    B = np.full((T, T), 0.5 / T)
    np.fill_diagonal(B, 0.0)
    value, _ = F(W, B, extrapolated=True)
    assert value == pytest.approx(amtl_objective(W, B, small, lam=0.3, mu=0.5, ridge=0.01), rel=1e-12)
    assert F(W, 4 * B, extrapolated=True)[0] == np.inf  # column sums 1.75 > 1
    assert np.isfinite(F(W, 4 * B)[0])  # a step's own answer is not re-checked
