"""The scikit-learn estimators: a thin layer over amtl_cvx.algorithms, and real model selection."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (
    check_estimator_cloneable,
    check_estimator_repr,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_regressors_train,
    check_set_params,
    parametrize_with_checks,
)

from amtl_cvx import MultiTaskData, fit_alternating, fit_curriculum, make_classification_tasks, make_regression_tasks
from amtl_cvx.algorithms import ConvergenceWarning
from amtl_cvx.algorithms.single_task import fit_single_task
from amtl_cvx.estimators import (
    AMTLClassifier,
    AMTLRegressor,
    SingleTaskClassifier,
    SingleTaskRegressor,
    stack_tasks,
    task_preprocessor,
)
from amtl_cvx.estimators.metrics import one_vs_all_accuracy, task_accuracy
from amtl_cvx.model_selection import TaskKFold


@pytest.fixture(scope="module")
def reg():
    return make_regression_tasks(n_tasks=5, n_features=5, n_sources=2, random_state=0)


@pytest.fixture(scope="module")
def reg_bias():
    return make_regression_tasks(n_tasks=5, n_features=5, n_sources=2, add_bias=True, random_state=0)


@pytest.fixture(scope="module")
def clf():
    return make_classification_tasks(n_tasks=5, n_features=5, n_sources=2, random_state=1)


def _ova_data(K: int = 4, n: int = 120, d: int = 5, seed: int = 0):
    """Multi-class data whose K one-vs-all tasks share the same rows (USPS layout)."""
    rng = np.random.default_rng(seed)
    centers = 2.0 * rng.standard_normal((K, d))
    labels = rng.integers(0, K, size=n)
    X = centers[labels] + rng.standard_normal((n, d))
    return X, labels


# ------------------------------------------------------------------ thin layer
def test_regressor_equals_fit_alternating_without_intercept(reg):
    X, y = stack_tasks(reg.train)
    assert X.shape == (reg.train.n_samples.sum(), reg.train.n_features + 1)
    model = AMTLRegressor(lam=0.1, mu=1.0, fit_intercept=False).fit(X, y)
    ref = fit_alternating(reg.train, lam=0.1, mu=1.0)
    np.testing.assert_allclose(model.coef_, ref.W.T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.transfer_matrix_, ref.B, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(model.intercept_, np.zeros(5))
    np.testing.assert_allclose(model.objective_history_, ref.objective_history, rtol=1e-12)
    assert model.n_iter_ == ref.n_iter and model.converged_
    assert model.coef_.shape == (5, 5) and model.transfer_matrix_.shape == (5, 5)
    np.testing.assert_array_equal(model.tasks_, np.arange(5))
    # predictions are each row's own task model
    Xt, _ = stack_tasks(reg.test)
    ids = Xt[:, 0].astype(int)
    expected = np.concatenate([Xk @ ref.W[:, t] for t, Xk in enumerate(reg.test.Xs)])
    np.testing.assert_allclose(model.predict(Xt), expected, atol=1e-10)
    assert np.all(np.diff(ids) >= 0)


def test_intercept_is_last_row_of_W(reg_bias):
    X, y = stack_tasks(reg_bias.train)  # the bias column of the data is dropped ...
    assert X.shape[1] == reg_bias.train.n_features  # ... so: task column + raw features
    model = AMTLRegressor(lam=0.1, mu=1.0).fit(X, y)  # ... and added back by fit_intercept
    ref = fit_alternating(reg_bias.train, lam=0.1, mu=1.0)
    np.testing.assert_allclose(model.coef_, ref.W[:-1].T, atol=1e-12)
    np.testing.assert_allclose(model.intercept_, ref.W[-1], atol=1e-12)
    np.testing.assert_allclose(model.objective_, ref.objective, rtol=1e-12)


def test_curriculum_matches_fit_curriculum(reg):
    X, y = stack_tasks(reg.train)
    model = AMTLRegressor(lam=0.1, mu=1.0, algorithm="curriculum", selection="static",
                          fit_intercept=False).fit(X, y)
    ref = fit_curriculum(reg.train, lam=0.1, mu=1.0, selection="static")
    np.testing.assert_allclose(model.coef_, ref.W.T, atol=1e-12)
    np.testing.assert_array_equal(model.order_, ref.order)
    assert model.n_iter_ == 5


def test_cvxpy_backend_passes_through():
    ds = make_regression_tasks(n_tasks=3, n_features=3, n_sources=1, n_parents=1, random_state=2)
    X, y = stack_tasks(ds.train)
    fast = AMTLRegressor(lam=0.1, mu=0.5).fit(X, y)
    exact = AMTLRegressor(lam=0.1, mu=0.5, backend="cvxpy", solver="CLARABEL").fit(X, y)
    np.testing.assert_allclose(exact.coef_, fast.coef_, atol=1e-5)
    with pytest.raises(ValueError, match="solver"):
        AMTLRegressor(solver="CLARABEL").fit(X, y)


def test_single_task_regressor_equals_baseline(reg):
    X, y = stack_tasks(reg.train)
    model = SingleTaskRegressor(lam=0.1, fit_intercept=False).fit(X, y)
    np.testing.assert_allclose(model.coef_, fit_single_task(reg.train, 0.1).T, atol=1e-12)
    np.testing.assert_array_equal(model.transfer_matrix_, np.zeros((5, 5)))
    assert model.n_iter_ == 1 and model.objective_history_.shape == (1,)


def test_imbalance_weights_reach_the_objective():
    sizes = [40, 40, 8, 8, 40]
    ds = make_regression_tasks(n_tasks=5, n_features=4, n_samples=sizes, n_sources=2, random_state=3)
    X, y = stack_tasks(ds.train)
    model = AMTLRegressor(lam=0.1, mu=1.0, s=2.0, sigma=0.5, fit_intercept=False).fit(X, y)
    np.testing.assert_allclose(model.imbalance_weights_, 2.0 / np.sqrt(sizes))
    ref = fit_alternating(ds.train, lam=0.1, mu=1.0, s=2.0, sigma=0.5)
    np.testing.assert_allclose(model.coef_, ref.W.T, atol=1e-12)
    default = AMTLRegressor(lam=0.1, mu=1.0, fit_intercept=False).fit(X, y)
    np.testing.assert_array_equal(default.imbalance_weights_, np.ones(5))


def test_binary_classifier_equals_fit_alternating(clf):
    X, y = stack_tasks(clf.train)
    y01 = (y > 0).astype(int)  # any two labels; classes_[1] is the positive one
    model = AMTLClassifier(lam=0.01, mu=1.0, fit_intercept=False).fit(X, y01)
    ref = fit_alternating(clf.train, lam=0.01, mu=1.0, loss="logistic")
    np.testing.assert_allclose(model.coef_, ref.W.T, atol=1e-10)
    np.testing.assert_array_equal(model.classes_, [0, 1])
    Xt, yt = stack_tasks(clf.test)
    acc = np.mean(model.predict(Xt) == (yt > 0))
    assert acc == pytest.approx(np.average(task_accuracy(ref.W, clf.test), weights=clf.test.n_samples))
    proba = model.predict_proba(Xt)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba[:, 1] > 0.5, model.decision_function(Xt) > 0)
    single = SingleTaskClassifier(lam=0.01, fit_intercept=False).fit(X, y01)
    np.testing.assert_allclose(single.coef_, fit_single_task(clf.train, 0.01, "logistic").T, atol=1e-8)


def test_one_vs_all_classifier_is_the_usps_layout():
    X, labels = _ova_data()
    K = 4
    model = AMTLClassifier(lam=0.01, mu=0.5, ridge=1e-3, task_column=None, fit_intercept=False).fit(X, labels)
    data = MultiTaskData([X] * K, [np.where(labels == k, 1.0, -1.0) for k in range(K)])
    ref = fit_alternating(data, lam=0.01, mu=0.5, ridge=1e-3, loss="logistic")
    np.testing.assert_allclose(model.coef_, ref.W.T, atol=1e-10)
    assert model.coef_.shape == (K, 5) and model.decision_function(X).shape == (len(X), K)
    assert model.score(X, labels) == pytest.approx(one_vs_all_accuracy(ref.W, data))
    np.testing.assert_array_equal(model.predict(X), np.argmax(X @ ref.W, axis=1))
    # string labels
    names = np.array(["a", "b", "c", "d"])
    named = clone(model).fit(X, names[labels])
    np.testing.assert_array_equal(named.classes_, names)
    np.testing.assert_array_equal(named.predict(X), names[model.predict(X)])


def test_binary_without_task_column_is_one_task():
    X, labels = _ova_data(K=2)
    model = AMTLClassifier(task_column=None, lam=0.01).fit(X, labels)
    assert model.coef_.shape == (1, 5) and model.transfer_matrix_.shape == (1, 1)
    assert model.decision_function(X).shape == (len(X),)
    assert model.score(X, labels) > 0.8


def test_regressor_shared_rows_multi_output(reg):
    Xs = reg.train.Xs[0]
    Y = np.column_stack([Xs @ reg.W_true[:, t] for t in range(3)])
    model = AMTLRegressor(lam=0.01, mu=0.1, task_column=None, fit_intercept=False).fit(Xs, Y)
    assert model.predict(Xs).shape == Y.shape and model.coef_.shape == (3, 5)
    data = MultiTaskData([Xs] * 3, list(Y.T))
    np.testing.assert_allclose(model.coef_, fit_alternating(data, lam=0.01, mu=0.1).W.T, atol=1e-12)
    assert model.fit(Xs, Y[:, 0]).predict(Xs).shape == (len(Xs),)


def test_task_ids_any_integers_any_order_any_column(reg):
    X, y = stack_tasks(reg.train)
    base = AMTLRegressor(lam=0.1, mu=1.0).fit(X, y)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(y))
    X2 = X[perm].copy()
    X2[:, 0] = np.array([10, 20, 30, 40, 50])[X2[:, 0].astype(int)]
    X2 = np.hstack([X2[:, 1:], X2[:, :1]])  # task ids in the last column
    model = AMTLRegressor(lam=0.1, mu=1.0, task_column=-1).fit(X2, y[perm])
    np.testing.assert_array_equal(model.tasks_, [10, 20, 30, 40, 50])
    np.testing.assert_allclose(model.coef_, base.coef_, atol=1e-8)
    np.testing.assert_allclose(model.predict(X2), base.predict(X[perm]), atol=1e-8)


@pytest.mark.parametrize("bad", [1e20, -1e20, 2.0**63, 1e300])
def test_task_ids_beyond_float_precision_are_rejected(reg, bad):
    """A task id of 1e20 used to become int64 min (RuntimeWarning only), and predicting
    for an unseen id >= 2**63 silently used that model."""
    X, y = stack_tasks(reg.train)
    X_bad = X.copy()
    X_bad[0, 0] = bad
    with pytest.raises(ValueError, match=r"task_column=0.*2\*\*53"):
        AMTLRegressor(lam=0.1, mu=1.0).fit(X_bad, y)
    model = AMTLRegressor(lam=0.1, mu=1.0).fit(X, y)
    with pytest.raises(ValueError, match=r"2\*\*53"):
        model.predict(X_bad)
    X_ok = X.copy()
    X_ok[:, 0] += 2.0**52  # large ids that are still exact are fine
    assert AMTLRegressor(lam=0.1, mu=1.0).fit(X_ok, y).tasks_.min() == 2**52


def test_task_column_by_name_in_a_dataframe(reg):
    pd = pytest.importorskip("pandas")
    X, y = stack_tasks(reg.train)
    df = pd.DataFrame(X[:, 1:], columns=[f"f{i}" for i in range(5)])
    df.insert(3, "task", X[:, 0].astype(int))
    model = AMTLRegressor(lam=0.1, mu=1.0, task_column="task").fit(df, y)
    base = AMTLRegressor(lam=0.1, mu=1.0).fit(X, y)
    np.testing.assert_allclose(model.predict(df), base.predict(X), atol=1e-8)
    np.testing.assert_array_equal(model.feature_names_in_, df.columns)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "params, name",
    [
        ({"lam": -1.0}, "lam"), ({"lam": 0.0}, "lam"), ({"mu": -0.1}, "mu"), ({"ridge": -1.0}, "ridge"),
        ({"s": -1.0}, "s"), ({"sigma": -0.5}, "sigma"), ({"max_iter": 0}, "max_iter"),
        ({"tol": -1.0}, "tol"), ({"algorithm": "newton"}, "algorithm"), ({"backend": "gpu"}, "backend"),
        ({"selection": "random"}, "selection"), ({"fit_intercept": "yes"}, "fit_intercept"),
        ({"task_column": 1.5}, "task_column"), ({"task_column": 9}, "task_column"),
        ({"warm_start": 1}, "warm_start"), ({"lam": float("nan")}, "lam"),
        ({"random_state": "seed"}, "random_state"),
    ],
)
def test_bad_hyperparameters_name_the_argument(reg, params, name):
    X, y = stack_tasks(reg.train)
    with pytest.raises(ValueError, match=name):
        AMTLRegressor(**params).fit(X, y)


def test_bad_data(reg, clf):
    X, y = stack_tasks(reg.train)
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(ValueError, match="X.*NaN|NaN.*X"):
        AMTLRegressor().fit(Xn, y)
    yn = y.copy()
    yn[0] = np.nan
    with pytest.raises(ValueError, match="y.*NaN|NaN.*y"):
        AMTLRegressor().fit(X, yn)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        AMTLRegressor().fit(X, y[:-1])
    Xf = X.copy()
    Xf[0, 0] = 0.5
    with pytest.raises(ValueError, match="integer task ids"):
        AMTLRegressor().fit(Xf, y)
    model = AMTLRegressor(lam=0.1).fit(X, y)
    Xu = X[:4].copy()
    Xu[1, 0] = 7
    with pytest.raises(ValueError, match=r"task ids not seen during fit: \[7\]"):
        model.predict(Xu)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :-1])
    with pytest.raises(ValueError, match="task column"):
        AMTLRegressor().fit(X[:, :1], y)
    Xc, yc = stack_tasks(clf.train)
    with pytest.raises(ValueError, match="one class"):
        AMTLClassifier().fit(Xc, np.ones_like(yc))
    with pytest.raises(ValueError, match="task_column=None"):
        AMTLClassifier().fit(Xc, np.arange(len(yc)) % 3)
    with pytest.raises(ValueError, match="Unknown label type"):
        AMTLClassifier().fit(Xc, yc + 0.5 * np.arange(len(yc)))


def test_max_iter_reached_warns(reg):
    X, y = stack_tasks(reg.train)
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        model = AMTLRegressor(lam=1.0, mu=0.1, max_iter=1).fit(X, y)
    assert not model.converged_


# ------------------------------------------------------------------ warm start
def test_warm_start_starts_from_the_previous_solution(reg):
    X, y = stack_tasks(reg.train)
    model = AMTLRegressor(lam=0.1, mu=1.0, warm_start=True).fit(X, y)
    first, objective, cold_iters = model.coef_.copy(), model.objective_, model.n_iter_
    assert cold_iters > 2
    model.fit(X, y)  # from a fixed point: the same solution at once
    assert model.n_iter_ == 1
    np.testing.assert_allclose(model.coef_, first, atol=1e-4)
    assert model.objective_ == pytest.approx(objective, rel=1e-6)
    # the start really is the previous (W, B): F there, not at the single-task point
    assert model.objective_history_[0] == pytest.approx(objective, rel=1e-9)
    cold = clone(model).set_params(warm_start=False).fit(X, y)
    assert model.objective_history_[0] < cold.objective_history_[0]


def test_warm_start_along_mu_path_saves_alternations(reg):
    X, y = stack_tasks(reg.train)
    warm = AMTLRegressor(lam=1.0, warm_start=True)
    warm_iters, cold_iters = 0, 0
    for mu in (0.1, 0.3, 1.0):
        warm_iters += warm.set_params(mu=mu).fit(X, y).n_iter_
        cold = AMTLRegressor(lam=1.0, mu=mu).fit(X, y)
        cold_iters += cold.n_iter_
        assert warm.objective_ <= 1.01 * cold.objective_
    assert warm_iters < cold_iters
    # a fit on other tasks falls back to a cold start
    keep = X[:, 0] < 3
    assert warm.fit(X[keep], y[keep]).coef_.shape == (3, 5)


# ------------------------------------------------------------------ model selection
def test_cross_val_score_with_task_folds(reg):
    X, y = stack_tasks(reg.train)
    cv = TaskKFold(3, random_state=0)
    amtl = cross_val_score(AMTLRegressor(lam=0.1, mu=1.0), X, y, cv=cv, error_score="raise")
    single = cross_val_score(SingleTaskRegressor(lam=0.1), X, y, cv=cv, error_score="raise")
    assert amtl.shape == single.shape == (3,)
    assert np.all(np.isfinite(amtl)) and amtl.mean() > 0.3
    # unshuffled row folds on rows stacked task by task leave tasks out: a loud error
    with pytest.raises(ValueError, match="task ids not seen"):
        cross_val_score(AMTLRegressor(), X, y, cv=KFold(5), error_score="raise")
    # the package's own grid never turns that error into NaN scores
    from amtl_cvx import evaluate_grid

    with pytest.raises(ValueError, match="task ids not seen"):
        evaluate_grid(AMTLRegressor(), X, y, lams=[0.1], mus=[0.0], cv=KFold(3))


def test_grid_search_pipeline_end_to_end(reg):
    X, y = stack_tasks(reg.train)
    X = X.copy()
    X[:, 1:] = 3.0 * X[:, 1:] + 1.0  # features worth scaling
    pipe = make_pipeline(task_preprocessor(StandardScaler()), AMTLRegressor())
    grid = {"amtlregressor__lam": [0.01, 0.1], "amtlregressor__mu": [0.0, 1.0]}
    search = GridSearchCV(pipe, grid, cv=TaskKFold(3, random_state=0), error_score="raise").fit(X, y)
    assert set(search.best_params_) == set(grid)
    assert len(search.cv_results_["mean_test_score"]) == 4
    # the pipeline scales the features and leaves the task ids alone
    best = search.best_estimator_
    Xs = X.copy()
    Xs[:, 1:] = StandardScaler().fit_transform(X[:, 1:])
    lam, mu = search.best_params_["amtlregressor__lam"], search.best_params_["amtlregressor__mu"]
    direct = AMTLRegressor(lam=lam, mu=mu).fit(Xs, y)
    np.testing.assert_allclose(best[-1].coef_, direct.coef_, atol=1e-10)
    np.testing.assert_array_equal(best[-1].tasks_, np.arange(5))
    Xt, _ = stack_tasks(reg.test)
    assert best.predict(Xt).shape == (len(Xt),)


def test_grid_search_classifier(clf):
    X, y = stack_tasks(clf.train)
    search = GridSearchCV(
        AMTLClassifier(), {"lam": [0.01, 0.1], "mu": [0.1, 1.0]}, cv=TaskKFold(3, random_state=1),
        scoring="accuracy", error_score="raise",
    ).fit(X, y)
    Xt, yt = stack_tasks(clf.test)
    assert search.score(Xt, yt) > 0.6


# ------------------------------------------------------------------ scikit-learn checks
def _expected_failed_checks(estimator):
    if isinstance(estimator, (AMTLRegressor, SingleTaskRegressor)):
        return {
            "check_regressors_train": (
                "the default lam=1.0 (mean-scaled loss) shrinks standardised weights by "
                "1/(1 + 2 lam); R^2 on the check's data is below its 0.5 bar. It passes "
                "with lam=0.01 (test_regressors_train_with_small_lam)."
            )
        }
    return {}


@parametrize_with_checks(
    [
        AMTLRegressor(task_column=None),
        AMTLRegressor(task_column=None, algorithm="curriculum"),
        AMTLClassifier(task_column=None),
        AMTLClassifier(task_column=None, algorithm="curriculum"),
        SingleTaskRegressor(task_column=None),
        SingleTaskClassifier(task_column=None),
    ],
    expected_failed_checks=_expected_failed_checks,
    xfail_strict=True,
)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.mark.parametrize("cls", [AMTLRegressor, SingleTaskRegressor])
def test_regressors_train_with_small_lam(cls):
    check_regressors_train(cls.__name__, cls(lam=0.01, task_column=None))


@pytest.mark.parametrize("cls", [AMTLRegressor, AMTLClassifier, SingleTaskRegressor, SingleTaskClassifier])
def test_api_checks_with_default_task_column(cls):
    """The checks that need no data also pass in the default (task column) layout."""
    name = cls.__name__
    check_parameters_default_constructible(name, cls())
    check_no_attributes_set_in_init(name, cls())
    check_get_params_invariance(name, cls())
    check_set_params(name, cls())
    check_estimator_cloneable(name, cls())
    check_estimator_repr(name, cls())
