"""Algorithms 1 and 2 end to end: monotonicity, acyclicity, recovery, and the release data."""

from __future__ import annotations

import numpy as np
import pytest

from amtl_cvx import (
    amtl_objective,
    fit_alternating,
    fit_curriculum,
    load_release_mat,
    make_classification_tasks,
    make_regression_tasks,
    make_tabular_tasks,
)
from amtl_cvx.algorithms.single_task import fit_single_task
from amtl_cvx.estimators.metrics import task_errors, task_rmse
from amtl_cvx.model_selection import select_amtl, select_single_task

BACKENDS = ["fast", "cvxpy"]


def _is_acyclic(B: np.ndarray) -> bool:
    """Kahn's algorithm on the graph with an edge s -> t wherever B[s, t] > 0."""
    A = B > 0
    indeg = A.sum(axis=0)
    ready = list(np.flatnonzero(indeg == 0))
    seen = 0
    while ready:
        s = ready.pop()
        seen += 1
        for t in np.flatnonzero(A[s]):
            indeg[t] -= 1
            if indeg[t] == 0:
                ready.append(t)
    return seen == B.shape[0]


@pytest.fixture(scope="module")
def planted():
    return make_regression_tasks(n_tasks=12, n_features=20, random_state=0)


@pytest.mark.parametrize("extrapolate", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_alternating_history_is_non_increasing(backend, loss, extrapolate):
    make = make_regression_tasks if loss == "squared" else make_classification_tasks
    ds = make(n_tasks=8, n_features=6, random_state=1)
    lam, mu = (0.3, 0.5) if loss == "squared" else (0.03, 0.1)
    fit = fit_alternating(ds.train, lam=lam, mu=mu, loss=loss, ridge=0.01, max_iter=15,
                          backend=backend, extrapolate=extrapolate)
    h = fit.objective_history
    assert len(h) == fit.n_iter + 1 >= 3
    # Each step minimises F exactly over its block: any increase beyond the solvers'
    # accuracy (1e-9 relative) is a bug.
    assert np.all(np.diff(h) <= 1e-9 * np.abs(h[1:])), np.diff(h)
    assert h[-1] < h[0]
    assert fit.objective == pytest.approx(
        amtl_objective(fit.W, fit.B, ds.train, lam=lam, mu=mu, loss=loss, ridge=0.01,
                       transfer_ridge=fit.transfer_ridge), rel=1e-12
    )
    assert fit.transfer_ridge > 0  # the default transfer ridge, through both backends
    assert np.all(fit.B >= 0) and np.all(np.diag(fit.B) == 0)


def test_extrapolation_converges_faster_and_lower(synthetic_path):
    data = load_release_mat(synthetic_path).train
    plain = fit_alternating(data, lam=10.0, mu=0.1, max_iter=2000, extrapolate=False, method="alternating")
    fast = fit_alternating(data, lam=10.0, mu=0.1, max_iter=2000, extrapolate=True, method="alternating")
    assert plain.converged and fast.converged
    assert fast.n_iter < 0.5 * plain.n_iter, (fast.n_iter, plain.n_iter)
    assert fast.objective <= plain.objective


def test_alternating_starts_from_single_task(planted):
    fit = fit_alternating(planted.train, lam=0.5, mu=0.2, max_iter=1, backend="cvxpy")
    W0 = fit_single_task(planted.train, 0.5 + 0.05)  # penalty lam + ridge, ridge = 0.1 lam by default
    F0 = amtl_objective(W0, np.zeros((12, 12)), planted.train, lam=0.5, mu=0.2, ridge=0.05)
    assert fit.objective_history[0] == pytest.approx(F0, rel=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("selection", ["greedy", "static"])
def test_curriculum_graph_is_acyclic(planted, backend, selection):
    fit = fit_curriculum(planted.train, lam=0.1, mu=1.0, selection=selection, backend=backend)
    B, order = fit.B, fit.order
    assert sorted(order) == list(range(12))
    assert B.sum() > 1.0  # transfer did happen: acyclicity is not vacuous
    assert _is_acyclic(B)
    # Strictly upper triangular in the learned order: task order[k] receives only from order[:k].
    P = B[np.ix_(order, order)]
    assert np.all(np.tril(P) == 0)
    assert fit.objective_history[-1] == pytest.approx(fit.objective, rel=1e-9)
    assert np.all(np.diff(fit.objective_history) > 0)


def test_greedy_curriculum_learns_lowest_loss_first(planted):
    fit = fit_curriculum(planted.train, lam=0.1, mu=1.0, backend="cvxpy")
    sources = np.flatnonzero(planted.B_true.sum(axis=1) > 0)
    # The low-noise sources come first: their losses are far below the derived tasks'.
    assert set(fit.order[: len(sources)]) == set(sources)


@pytest.mark.parametrize("backend", BACKENDS)
def test_planted_graph_direction_and_accuracy(planted, backend):
    fit = fit_alternating(planted.train, lam=0.1, mu=1.0, backend=backend)
    B, Bt = fit.B, planted.B_true
    forward, reverse = B[Bt > 0].sum(), B.T[Bt > 0].sum()
    assert forward > 4 * reverse, (forward, reverse)
    source = Bt.sum(axis=1) > 0
    assert B[source][:, ~source].sum() > 3 * B[~source][:, source].sum()
    stl = select_single_task(planted)  # single-task lam chosen on validation
    e_stl = task_rmse(stl.W, planted.test).mean()
    e_amtl = task_rmse(fit.W, planted.test).mean()
    assert e_amtl < 0.9 * e_stl, (e_amtl, e_stl)


def test_release_synthetic_amtl_beats_ridge(synthetic_path):
    ds = load_release_mat(synthetic_path)
    lams = (0.1, 1.0, 10.0, 100.0)
    stl = select_single_task(ds, lams)
    amtl = select_amtl(ds, lams, (0.0, 0.1, 1.0), backend="cvxpy", max_iter=20)
    e_stl = task_errors(stl.W, ds.test, "squared").mean()
    e_amtl = task_errors(amtl.W, ds.test, "squared").mean()
    # Numbers reported in docs/results.md.
    assert e_amtl < 0.9 * e_stl, (e_amtl, e_stl, stl.params, amtl.params)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lam": -1.0}, "lam"),
        ({"lam": 0.0}, "lam"),
        ({"mu": -0.1}, "mu"),
        ({"ridge": -1.0}, "ridge"),
        ({"ridge": "Auto"}, "ridge must be a nonnegative number or 'auto'"),
        ({"sigma": -1.0}, "sigma"),
        ({"mu": float("nan")}, "mu"),
        ({"lam": 1e308}, "lam must be at most 1e"),
        ({"ridge": 1e301}, "ridge must be at most 1e"),
        ({"loss": "hinge"}, "loss"),
        ({"backend": "gpu"}, "backend"),
        ({"max_iter": 0}, "max_iter"),
        ({"W_init": np.ones((3, 3))}, "W_init"),
    ],
)
def test_bad_hyperparameters(planted, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_alternating(planted.train, **kwargs)


def test_bad_curriculum_arguments(planted):
    with pytest.raises(ValueError, match="selection"):
        fit_curriculum(planted.train, selection="random")
    with pytest.raises(ValueError, match="mu"):
        fit_curriculum(planted.train, mu=-1.0)
    with pytest.raises(ValueError, match="data must be a MultiTaskData"):
        fit_curriculum(np.ones((3, 3)))


def test_grid_walks_a_warm_started_path(planted, monkeypatch):
    """Each grid point starts from the previous one along mu, the first mu of a lam from
    the first point of the previous lam; warm_start=False starts every point cold."""
    import amtl_cvx.model_selection.validation_split as selection

    calls = []

    def recording(data, **kwargs):
        fit = fit_alternating(data, **kwargs)
        calls.append((kwargs, fit))
        return fit

    monkeypatch.setattr(selection, "fit_alternating", recording)
    lams, mus = (0.3, 1.0), (0.0, 0.5, 1.0)
    select_amtl(planted, lams, mus, max_iter=5)
    assert "W_init" not in calls[0][0]
    expected = {1: 0, 2: 1, 3: 0, 4: 3, 5: 4}  # grid point -> the point it starts from
    for k, src in expected.items():
        assert calls[k][0]["W_init"] is calls[src][1].W
        assert calls[k][0]["B_init"] is calls[src][1].B
    calls.clear()
    select_amtl(planted, lams, mus, warm_start=False, max_iter=5)
    assert all("W_init" not in kw for kw, _ in calls)
    with pytest.raises(ValueError, match="warm_start"):
        select_amtl(planted, lams, mus, warm_start=1)


def test_default_ridge_is_a_tenth_of_lam(planted):
    """ridge='auto' (the default) is 0.1 * lam in the fit, its objective and its record."""
    from amtl_cvx.algorithms.hyperparameters import AUTO_RIDGE_RATIO

    assert AUTO_RIDGE_RATIO == 0.1
    for fitter in (fit_alternating, fit_curriculum):
        fit = fitter(planted.train, lam=0.3, mu=0.1)
        assert fit.ridge == pytest.approx(0.03)
        explicit = fitter(planted.train, lam=0.3, mu=0.1, ridge=0.03)
        np.testing.assert_allclose(fit.W, explicit.W, rtol=0, atol=1e-12 * np.abs(fit.W).max())
        assert fit.objective == pytest.approx(
            amtl_objective(fit.W, fit.B, planted.train, lam=0.3, mu=0.1, ridge=0.03,
                           transfer_ridge=fit.transfer_ridge), rel=1e-12)
        assert fitter(planted.train, lam=0.3, mu=0.1, ridge=0).ridge == 0.0


@pytest.fixture(scope="module")
def imbalanced():
    from tests.conftest import release_file

    return load_release_mat(release_file("synthetic_inbalance_1.mat"))


@pytest.mark.parametrize("lam, mu", [(1.0, 0.0), (10.0, 0.1)])
def test_imbalanced_blow_up_regression(imbalanced, lam, mu):
    """On synthetic_inbalance_1.mat the paper's objective (ridge = 0) blew up silently:
    the 5-row tasks fit their rows exactly, send for free, I - B becomes singular and
    test RMSE doubled (126 and 125 here; the single-task RMSE is about 53). With
    ridge = 0 it must now say so; with the default ridge it must not blow up, and must
    not depend on the BLAS thread count."""
    from amtl_cvx.algorithms import ConvergenceWarning
    from amtl_cvx.algorithms import SingularTransferWarning
    from amtl_cvx.algorithms.result import WEAK_COUPLING

    ds = imbalanced
    e_stl = min(task_errors(fit_single_task(ds.train, v), ds.test, "squared").mean() for v in (1.0, 10.0))
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paper = fit_alternating(ds.train, lam=lam, mu=mu, ridge=0.0, transfer_ridge=0.0)
    said = {w.category: str(w.message) for w in caught}
    assert "use ridge='auto'" in said[SingularTransferWarning] and ConvergenceWarning in said
    assert paper.coupling <= WEAK_COUPLING
    assert task_errors(paper.W, ds.test, "squared").mean() > 2 * e_stl  # the blow-up, reported
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all: converged, I - B well conditioned
        one, two = (fit_alternating(ds.train, lam=lam, mu=mu, blas_threads=k) for k in (1, 2))
    assert one.converged and one.coupling > 0.05 and np.count_nonzero(one.B) > 0
    assert task_errors(one.W, ds.test, "squared").mean() < 1.1 * e_stl
    np.testing.assert_allclose(two.W, one.W, rtol=0, atol=1e-9 * np.abs(one.W).max())


def test_imbalanced_grid_has_no_blow_up_with_the_defaults(imbalanced):
    """The issue's target on the command line's default grid: no (lam, mu) point of
    alternating AMTL has test RMSE above twice the best point's. At ridge = 0 it fails
    (fitted from the single-task start, the worst point was 125.6 against 52.6);
    docs/objective.md has the 80-point grids of all three files."""
    import warnings

    from amtl_cvx.tools.cli.grid import _GRIDS

    lams, mus = _GRIDS["fit"]
    errors = []
    for lam in lams:
        start = {}  # the command line's path: along mu, each point from the previous one
        for mu in mus:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a few small-lam points end at max_iter, and say so
                fit = fit_alternating(imbalanced.train, lam=lam, mu=mu, **start)
            start = dict(W_init=fit.W, B_init=fit.B)
            errors.append(task_errors(fit.W, imbalanced.test, "squared").mean())
    assert max(errors) < 2 * min(errors), errors


# ------------------------------------------------------------------ the transfer ridge
def test_default_transfer_ridge_is_a_tenth_of_the_gram_diagonal(planted):
    """transfer_ridge='auto' is 0.1 lam mean_t ||w_t||^2 over the single-task models, in the
    fit, its objective and its record; a number is used as given; the curriculum has none."""
    from amtl_cvx.algorithms import make_backend
    from amtl_cvx.algorithms.hyperparameters import AUTO_TRANSFER_RIDGE_RATIO, resolve_transfer_ridge

    data, lam = planted.train, 0.3
    T = data.n_tasks
    W_st = make_backend("fast", data, "squared").tasks(np.zeros((T, T)), lam, np.ones(T), 0.1 * lam, None)
    expected = AUTO_TRANSFER_RIDGE_RATIO * lam * float(np.mean(np.sum(W_st**2, axis=0)))
    assert AUTO_TRANSFER_RIDGE_RATIO == 0.1
    assert resolve_transfer_ridge("auto", lam, W_st) == pytest.approx(expected, rel=1e-12)
    fit = fit_alternating(data, lam=lam, mu=0.1)
    assert fit.transfer_ridge == pytest.approx(expected, rel=1e-12)
    explicit = fit_alternating(data, lam=lam, mu=0.1, transfer_ridge=expected)
    np.testing.assert_allclose(fit.B, explicit.B, rtol=0, atol=1e-10 * max(1.0, np.abs(fit.B).max()))
    assert fit.objective == pytest.approx(amtl_objective(
        fit.W, fit.B, data, lam=lam, mu=0.1, ridge=0.1 * lam, transfer_ridge=expected), rel=1e-12)
    # a warm start does not change what "auto" means
    warm = fit_alternating(data, lam=lam, mu=0.1, W_init=fit.W * 1.5)
    assert warm.transfer_ridge == pytest.approx(expected, rel=1e-12)
    paper = fit_alternating(data, lam=lam, mu=0.1, transfer_ridge=0)
    assert paper.transfer_ridge == 0.0 and paper.objective < fit.objective
    assert fit_curriculum(data, lam=lam, mu=0.1).transfer_ridge == 0.0


def test_transfer_ridge_exact_backend_agrees_with_the_fast_one(planted):
    """The CVXPY backend states the ridge B-step (as the ridge-free statement of [W; sqrt(rho/lam) I])
    and reaches the fast fit's objective."""
    data = planted.train
    kw = dict(lam=0.5, mu=0.2, transfer_ridge=0.3, tol=1e-8)
    fast = fit_alternating(data, **kw)
    exact = fit_alternating(data, backend="cvxpy", max_iter=300, **kw)
    assert fast.converged and fast.transfer_ridge == exact.transfer_ridge == 0.3
    assert abs(exact.objective - fast.objective) <= 1e-6 * abs(fast.objective)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "none", True, 1e301])
def test_bad_transfer_ridge_is_refused(planted, bad):
    with pytest.raises(ValueError, match="transfer_ridge"):
        fit_alternating(planted.train, transfer_ridge=bad)


def test_variant_has_no_transfer_ridge(planted):
    import cvxpy as cp

    from amtl_cvx import Variant

    same = Variant(transfer=lambda s: cp.Problem(cp.Minimize(s.objective)))
    fit = fit_alternating(planted.train, lam=0.3, variant=same, max_iter=3)
    assert fit.transfer_ridge == 0.0
    with pytest.raises(ValueError, match="transfer_ridge"):
        fit_alternating(planted.train, lam=0.3, variant=same, transfer_ridge=0.1)


def test_tabular_fit_converges_with_the_transfer_ridge_and_crawls_without():
    """The real-data-like generator at lam = 0.1, mu = 0.1 (ridge auto): tasks with fewer
    rows than features fit their rows, send for almost nothing, and without a ridge on B the
    weights they send grow while F creeps down; with the default transfer ridge the fit
    reaches its certificate with B bounded."""
    import warnings

    from amtl_cvx.algorithms import ConvergenceWarning

    data = make_tabular_tasks(random_state=0).train
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_alternating(data, lam=0.1, mu=0.1)
    assert fit.converged and fit.B.max() < 5.0
    with pytest.warns(ConvergenceWarning):
        paper_b = fit_alternating(data, lam=0.1, mu=0.1, transfer_ridge=0.0, max_iter=300)
    assert not paper_b.converged and paper_b.B.max() > 3 * fit.B.max()


# --------------------------------------------------------------------------------------
# the curriculum with imbalance weights (issue 17, item 1): s != 1 and sigma != 0
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def imbalanced_generated():
    return make_regression_tasks(n_tasks=7, n_features=5, n_samples=[8, 60, 12, 40, 9, 25, 80],
                                 random_state=4)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("selection", ["greedy", "static"])
def test_curriculum_steps_are_priced_with_the_imbalance_weights(imbalanced_generated, loss, selection):
    """Replay the learned order: each task's (w_t, b_t) must satisfy the KKT conditions of
    its step with the edge prices q_s = mu c_s L_s(w_s), c_s = s / n_s**sigma (checked
    with the gradient of the step, independently of the loop that built q)."""
    from solvers.curriculum import curriculum_gradient

    data = imbalanced_generated.train
    if loss == "logistic":
        data = make_classification_tasks(n_tasks=7, n_features=5, n_samples=[8, 60, 12, 40, 9, 25, 80],
                                         random_state=4).train
    lam, mu, s, sigma = 0.2, 0.8, 3.0, 0.7
    fit = fit_curriculum(data, lam=lam, mu=mu, loss=loss, s=s, sigma=sigma, selection=selection)
    c = s / data.n_samples.astype(float) ** sigma
    np.testing.assert_allclose(fit.c, c, rtol=1e-14)
    assert np.ptp(c) > 0.5  # the weights really differ between tasks
    assert fit.B.sum() > 0.1  # transfer happened: the prices matter
    L = np.array([
        np.mean((y - X @ fit.W[:, t]) ** 2) / 2 if loss == "squared"
        else np.mean(np.logaddexp(0.0, -y * (X @ fit.W[:, t])))
        for t, (X, y) in enumerate(zip(data.Xs, data.ys))
    ])
    for k, t in enumerate(fit.order):
        S = np.asarray(fit.order[:k], dtype=int)
        others = np.setdiff1d(np.arange(data.n_tasks), S)
        assert np.all(fit.B[others, t] == 0)  # only earlier tasks send to t
        if S.size == 0:
            continue
        q = mu * c[S] * L[S]
        b = fit.B[S, t]
        gw, gb = curriculum_gradient(data.Xs[t], data.ys[t], fit.W[:, t], b, fit.W[:, S], q, lam,
                                     loss=loss, ridge=fit.ridge)
        scale = max(1.0, float(np.abs(q).max()))
        assert np.linalg.norm(gw) <= 1e-7 * scale, (t, np.linalg.norm(gw))
        assert np.all(gb >= -1e-7 * scale), (t, gb)
        assert np.all(np.abs(gb[b > 0]) <= 1e-7 * scale), (t, gb)
    # the history adds up the steps' objectives, priced the same way as F
    assert fit.objective_history[-1] == pytest.approx(fit.objective, rel=1e-9)
    assert fit.objective == pytest.approx(
        amtl_objective(fit.W, fit.B, data, lam=lam, mu=mu, loss=loss, ridge=fit.ridge, c=c), rel=1e-12)


def test_curriculum_scale_of_s_is_a_scale_of_mu(imbalanced_generated):
    """c = s / n**sigma enters only through mu * c: doubling s is doubling mu, and with
    equal task sizes sigma is a rescaling of mu too."""
    data = imbalanced_generated.train
    a = fit_curriculum(data, lam=0.2, mu=0.3, s=2.0, sigma=0.5)
    b = fit_curriculum(data, lam=0.2, mu=0.6, s=1.0, sigma=0.5)
    one = fit_curriculum(data, lam=0.2, mu=0.3, s=1.0, sigma=0.5)
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_allclose(a.W, b.W, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.B, b.B, rtol=1e-9, atol=1e-12)
    assert a.objective == pytest.approx(b.objective, rel=1e-10)
    assert np.abs(a.B - one.B).max() > 1e-3  # and s does change the fit
    equal = make_regression_tasks(n_tasks=6, n_features=5, n_samples=16, random_state=5).train
    e1 = fit_curriculum(equal, lam=0.2, mu=0.8, sigma=0.5)
    e2 = fit_curriculum(equal, lam=0.2, mu=0.8 / 4.0, sigma=0.0)
    np.testing.assert_array_equal(e1.order, e2.order)
    np.testing.assert_allclose(e1.B, e2.B, rtol=1e-9, atol=1e-12)
    assert np.abs(e1.B - fit_curriculum(equal, lam=0.2, mu=0.8).B).max() > 1e-3
