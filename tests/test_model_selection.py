"""Grid evaluation over (lam, mu) and folds: warm starts, joblib locally, and Dask."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score

from amtl_cvx import make_classification_tasks, make_regression_tasks
from amtl_cvx.estimators import AMTLClassifier, AMTLRegressor, SingleTaskRegressor, stack_tasks
from amtl_cvx.model_selection import TaskKFold, evaluate_grid

LAMS = [0.03, 0.3, 1.0]
MUS = [0.0, 0.3, 1.0, 3.0]


@pytest.fixture(scope="module")
def xy():
    ds = make_regression_tasks(n_tasks=5, n_features=5, n_sources=2, random_state=0)
    return stack_tasks(ds.train)


@pytest.fixture(scope="module")
def cv_splits(xy):
    X, y = xy
    return list(TaskKFold(3, random_state=0).split(X, y))


@pytest.fixture(scope="module")
def local_warm(xy, cv_splits):
    X, y = xy
    return evaluate_grid(AMTLRegressor(), X, y, lams=LAMS, mus=MUS, cv=cv_splits, n_jobs=1)


def test_task_kfold_keeps_every_task_in_every_fold(xy):
    X, y = xy
    cv = TaskKFold(3, random_state=0)
    assert cv.get_n_splits() == 3
    seen_test = np.zeros(len(y), dtype=int)
    for train, test in cv.split(X, y):
        assert set(X[train, 0]) == set(X[test, 0]) == set(range(5))
        seen_test[test] += 1
    np.testing.assert_array_equal(seen_test, 1)
    # the same folds for the same seed, other folds for another one
    a = [t for _, t in TaskKFold(3, random_state=0).split(X)]
    b = [t for _, t in TaskKFold(3, random_state=1).split(X)]
    assert all(np.array_equal(u, v) for u, v in zip(a, [t for _, t in cv.split(X)]))
    assert not all(np.array_equal(u, v) for u, v in zip(a, b))
    with pytest.raises(ValueError, match="n_splits"):
        TaskKFold(1)


def test_cold_grid_equals_gridsearchcv(xy, cv_splits):
    X, y = xy
    result = evaluate_grid(AMTLRegressor(), X, y, lams=LAMS, mus=MUS, cv=cv_splits,
                           warm_start=False, n_jobs=1)
    search = GridSearchCV(AMTLRegressor(), {"lam": LAMS, "mu": MUS}, cv=cv_splits, error_score="raise").fit(X, y)
    # GridSearchCV orders its grid the same way (lam-major, mu within)
    assert result.cv_results["params"] == list(search.cv_results_["params"])
    np.testing.assert_allclose(result.cv_results["mean_test_score"], search.cv_results_["mean_test_score"],
                               rtol=0, atol=1e-12)
    assert result.best_params == search.best_params_
    assert result.best_score == pytest.approx(search.best_score_, abs=1e-12)
    np.testing.assert_allclose(result.best_estimator.coef_, search.best_estimator_.coef_, atol=1e-12)
    assert result.scores.shape == (3, 4, 3)
    np.testing.assert_array_equal(result.cv_results["split1_test_score"], result.scores[:, :, 1].ravel())


def test_warm_grid_reuses_solutions(xy, cv_splits, local_warm):
    X, y = xy
    cold = evaluate_grid(AMTLRegressor(), X, y, lams=LAMS, mus=MUS, cv=cv_splits, warm_start=False, n_jobs=1)
    # the first mu of every path starts cold: identical
    np.testing.assert_array_equal(local_warm.scores[:, 0], cold.scores[:, 0])
    np.testing.assert_array_equal(local_warm.n_iter[:, 0], cold.n_iter[:, 0])
    # later ones start from the previous solution: fewer alternations in total ...
    assert local_warm.n_iter[:, 1:].sum() < cold.n_iter[:, 1:].sum()
    # ... at held-out scores mostly equal to the cold ones. The problem is not jointly
    # convex: at lam=1, mu=3 the cold fit stops at once at the single-task point (its
    # B-step finds no edge worth its price) while the warm path keeps the transfer.
    diff = local_warm.scores - cold.scores
    assert np.median(np.abs(diff)) < 1e-3
    assert np.all(diff[:2] > -0.01) and diff[2, 3].min() > 0.1
    assert set(local_warm.best_params) == {"lam", "mu"}
    assert local_warm.best_score == pytest.approx(local_warm.cv_results["mean_test_score"].max())
    assert local_warm.cv_results["rank_test_score"].min() == 1


def test_local_processes_equal_sequential(xy, cv_splits, local_warm):
    X, y = xy
    parallel = evaluate_grid(AMTLRegressor(), X, y, lams=LAMS, mus=MUS, cv=cv_splits, n_jobs=2)
    np.testing.assert_array_equal(parallel.scores, local_warm.scores)
    np.testing.assert_array_equal(parallel.n_iter, local_warm.n_iter)


def test_dask_cluster_equals_local(xy, cv_splits, local_warm):
    pytest.importorskip("dask")
    distributed = pytest.importorskip("dask.distributed")
    X, y = xy
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp",
        dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as client:
        workers = set(client.scheduler_info()["workers"])
        assert len(workers) == 2 and all(w.startswith("tcp://127.0.0.1:") for w in workers)
        with distributed.get_task_stream(client=client) as stream:
            on_dask = evaluate_grid(AMTLRegressor(), X, y, lams=LAMS, mus=MUS, cv=cv_splits,
                                    parallel="dask", client=client)
        # the (fold, lam) units really ran on the cluster's workers
        ran_on = {task["worker"] for task in stream.data}
        assert ran_on and ran_on <= workers
        by_address = evaluate_grid(AMTLRegressor(), X, y, lams=LAMS[:1], mus=MUS[:2], cv=cv_splits,
                                   parallel="dask", client=cluster.scheduler_address, refit=False)
    np.testing.assert_array_equal(on_dask.scores, local_warm.scores)
    np.testing.assert_array_equal(on_dask.n_iter, local_warm.n_iter)
    assert on_dask.best_params == local_warm.best_params
    np.testing.assert_array_equal(on_dask.best_estimator.coef_, local_warm.best_estimator.coef_)
    np.testing.assert_array_equal(by_address.scores, local_warm.scores[:1, :2])


def test_default_folds_follow_the_task_column(xy):
    X, y = xy
    result = evaluate_grid(AMTLRegressor(), X, y, lams=[0.1], mus=[0.0, 1.0], cv=4, n_jobs=1, random_state=0)
    expected = cross_val_score(AMTLRegressor(lam=0.1, mu=0.0), X, y, cv=TaskKFold(4, random_state=0))
    np.testing.assert_allclose(result.scores[0, 0], expected, atol=1e-12)


def test_single_task_lam_only_and_classifier_scoring(xy):
    X, y = xy
    result = evaluate_grid(SingleTaskRegressor(), X, y, lams=[0.01, 0.1, 1.0], cv=3, n_jobs=1,
                           scoring="neg_mean_squared_error")
    assert result.scores.shape == (3, 1, 3) and np.all(result.scores < 0)
    assert list(result.best_params) == ["lam"]
    ds = make_classification_tasks(n_tasks=4, n_features=4, n_sources=2, random_state=0)
    Xc, yc = stack_tasks(ds.train)
    res = evaluate_grid(AMTLClassifier(), Xc, yc, lams=[0.01, 0.1], mus=[0.1, 1.0], cv=3, n_jobs=1)
    assert np.all((res.scores >= 0) & (res.scores <= 1))


def test_bad_arguments(xy):
    X, y = xy
    with pytest.raises(ValueError, match="lams"):
        evaluate_grid(AMTLRegressor(), X, y, lams=[-1.0], mus=[0.0])
    with pytest.raises(ValueError, match="lams"):
        evaluate_grid(AMTLRegressor(), X, y, lams=[], mus=[0.0])
    with pytest.raises(ValueError, match="mus"):
        evaluate_grid(AMTLRegressor(), X, y, lams=[0.1], mus=[-0.5])
    with pytest.raises(ValueError, match="mu parameter"):
        evaluate_grid(SingleTaskRegressor(), X, y, lams=[0.1], mus=[0.5])
    with pytest.raises(ValueError, match="parallel"):
        evaluate_grid(AMTLRegressor(), X, y, lams=[0.1], mus=[0.0], parallel="spark")
    with pytest.raises(ValueError, match="client"):
        evaluate_grid(AMTLRegressor(), X, y, lams=[0.1], mus=[0.0], client="tcp://127.0.0.1:1")


def test_task_kfold_default_folds_are_reproducible(xy):
    """The README's cross_val_score and evaluate_grid used to give other numbers on
    every run: TaskKFold shuffled without a seed by default."""
    X, y = xy[0], xy[1]
    first = [test.tolist() for _, test in TaskKFold(3).split(X, y)]
    again = [test.tolist() for _, test in TaskKFold(3).split(X, y)]
    assert first == again
    assert first == [test.tolist() for _, test in TaskKFold(3, random_state=0).split(X, y)]
