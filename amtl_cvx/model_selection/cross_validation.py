"""Cross-validation over a (lam, mu) grid and folds: local cores, or a Dask cluster.

:func:`evaluate_grid` cross-validates an estimator of :mod:`amtl_cvx.estimators` on a
grid of ``lam`` and ``mu``. The unit of work is one (fold, lam) pair: it fits the
``mu`` values in the order given, each warm-started from the previous solution
(``warm_start=True``), and scores each on the fold's held-out rows. The units run
through joblib:

- ``parallel="local"`` (default): joblib's default backend (loky processes) on
  ``n_jobs`` local cores (default: all);
- ``parallel="dask"``: joblib's ``"dask"`` backend on a ``dask.distributed`` cluster,
  through ``client`` (a ``distributed.Client`` or a scheduler address; default the
  current default client). Needs the optional extra ``amtl-cvx[dask]``.

The units, their order inside and the folds do not depend on where they run, so the
two paths give the same numbers.

:class:`TaskKFold` is a scikit-learn splitter whose folds are stratified by task: every
task appears in every training and test fold, which the estimators need (a task not
seen by ``fit`` cannot be predicted). It works with scikit-learn's own
``cross_val_score`` and ``GridSearchCV`` too.
"""

from __future__ import annotations

import logging
import numbers
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from joblib import Parallel, delayed, parallel_config
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import StratifiedKFold, check_cv
from sklearn.utils import _safe_indexing

from amtl_cvx._validation import check_scalar

__all__ = ["TaskKFold", "GridResult", "evaluate_grid", "PARALLEL"]

logger = logging.getLogger(__name__)

#: Where :func:`evaluate_grid` can run.
PARALLEL = ("local", "dask")


class TaskKFold:
    """K-fold cross-validation with folds stratified by task.

    Each task's rows are spread over the ``n_splits`` folds (scikit-learn's
    ``StratifiedKFold`` on the task ids), so every task is in every training fold as
    long as it has at least ``n_splits`` rows.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds (``>= 2``).
    task_column : int or str, default=0
        The column of ``X`` holding the task ids (a name for a pandas DataFrame).
    shuffle : bool, default=True
        Shuffle each task's rows before splitting.
    random_state : int, RandomState or None, default=0
        Seed of the shuffle. The default gives the same folds on every run (as
        :func:`evaluate_grid`'s default does); ``None`` draws new folds every time.

    Examples
    --------
    >>> from sklearn.model_selection import cross_val_score
    >>> scores = cross_val_score(AMTLRegressor(), X, y, cv=TaskKFold(5, random_state=0))  # doctest: +SKIP
    """

    def __init__(
        self,
        n_splits: int = 5,
        *,
        task_column: int | str = 0,
        shuffle: bool = True,
        random_state=0,
    ) -> None:
        if isinstance(n_splits, bool) or not isinstance(n_splits, numbers.Integral) or n_splits < 2:
            raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}")
        if task_column is None or isinstance(task_column, bool):
            raise ValueError(f"task_column must be an int or a column name, got {task_column!r}")
        self.n_splits = int(n_splits)
        self.task_column = task_column
        self.shuffle = shuffle
        self.random_state = random_state

    def _task_ids(self, X) -> np.ndarray:
        if isinstance(self.task_column, str):
            if not hasattr(X, "columns"):
                raise ValueError(f"task_column={self.task_column!r} needs a DataFrame X")
            return np.asarray(X[self.task_column])
        return np.asarray(X)[:, self.task_column]

    def split(self, X, y=None, groups=None):
        """Yield ``(train, test)`` row indices, stratified by the task column of ``X``."""
        ids = self._task_ids(X)
        skf = StratifiedKFold(self.n_splits, shuffle=self.shuffle,
                              random_state=self.random_state if self.shuffle else None)
        yield from skf.split(np.zeros((len(ids), 1)), ids)

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """The number of folds."""
        return self.n_splits

    def __repr__(self) -> str:
        return (
            f"TaskKFold(n_splits={self.n_splits}, task_column={self.task_column!r}, "
            f"shuffle={self.shuffle}, random_state={self.random_state!r})"
        )


@dataclass(frozen=True)
class GridResult:
    """Cross-validated scores of a (lam, mu) grid.

    Attributes
    ----------
    lams, mus : numpy.ndarray
        The grid (``mus`` is ``[nan]`` for estimators without ``mu``).
    scores : numpy.ndarray, shape (n_lams, n_mus, n_splits)
        Held-out score of every grid point on every fold (higher is better).
    n_iter : numpy.ndarray, shape (n_lams, n_mus, n_splits)
        ``n_iter_`` of every fit (fewer with warm starts).
    fit_time : numpy.ndarray, shape (n_lams, n_mus, n_splits)
        Seconds per fit.
    cv_results : dict
        In the layout of scikit-learn's ``GridSearchCV.cv_results_`` (grid points in
        lam-major order): ``params``, ``param_lam``, ``param_mu``,
        ``split{k}_test_score``, ``mean_test_score``, ``std_test_score``,
        ``rank_test_score``, ``mean_n_iter``, ``mean_fit_time``.
    best_params : dict
    best_score : float
        Mean held-out score of ``best_params`` (ties: the first in lam-major order).
    best_estimator : estimator or None
        Refitted on all rows with ``best_params`` (``refit=True``).
    """

    lams: np.ndarray
    mus: np.ndarray
    scores: np.ndarray
    n_iter: np.ndarray
    fit_time: np.ndarray
    cv_results: dict
    best_params: dict
    best_score: float
    best_estimator: Any = field(default=None, repr=False)


def _path_job(estimator, X, y, split, lam, mus, scorer, warm_start):
    """Fit one fold (``split = (train, test)`` row indices) along the ``mu`` path at one
    ``lam``; return (score, n_iter, seconds)."""
    train, test = split
    est = clone(estimator)
    if warm_start and "warm_start" in est.get_params():
        est.set_params(warm_start=True)
    X_train, y_train = _safe_indexing(X, train), _safe_indexing(y, train)
    X_test, y_test = _safe_indexing(X, test), _safe_indexing(y, test)
    out = []
    for mu in mus:
        params = {"lam": lam} if mu is None else {"lam": lam, "mu": mu}
        est.set_params(**params)
        start = time.perf_counter()
        est.fit(X_train, y_train)
        elapsed = time.perf_counter() - start
        out.append((float(scorer(est, X_test, y_test)), int(est.n_iter_), elapsed))
    return out


def _grid_values(values, name: str, strict: bool) -> list[float]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}")
    values = [check_scalar(v, name, strict=strict) for v in values]
    if not values:
        raise ValueError(f"{name} must not be empty")
    return values


def _resolve_cv(cv, estimator, y, random_state):
    task_column = getattr(estimator, "task_column", None)
    if cv is None:
        cv = 5
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool) and task_column is not None:
        return TaskKFold(int(cv), task_column=task_column, shuffle=True, random_state=random_state)
    return check_cv(cv, y, classifier=is_classifier(estimator))


def evaluate_grid(
    estimator,
    X,
    y,
    *,
    lams: Sequence[float],
    mus: Sequence[float] | None = None,
    cv=None,
    scoring=None,
    groups=None,
    warm_start: bool = True,
    refit: bool = True,
    parallel: str = "local",
    n_jobs: int | None = -1,
    client=None,
    random_state: int | None = 0,
    verbose: int = 0,
) -> GridResult:
    """Cross-validate ``estimator`` on a (lam, mu) grid, in parallel through joblib.

    Parameters
    ----------
    estimator : estimator of :mod:`amtl_cvx.estimators`
        Cloned for every unit of work; its other parameters are kept.
    X, y : array_like
        All rows (the task column included), as for ``estimator.fit``.
    lams : sequence of float
        Values of ``lam`` (``> 0``).
    mus : sequence of float, optional
        Values of ``mu`` (``>= 0``), fitted in this order along each path; None for
        estimators without ``mu`` (the single-task ones).
    cv : int, splitter or iterable, optional
        Default 5 folds. An int gives a :class:`TaskKFold` (shuffled with
        ``random_state``) when the estimator has a task column, else scikit-learn's
        default folds; a splitter or a list of ``(train, test)`` pairs is used as is.
    scoring : str or callable, optional
        A scikit-learn scorer; default the estimator's ``score`` (R^2 or accuracy).
    groups : array_like, optional
        Passed to the splitter's ``split``.
    warm_start : bool, default=True
        Warm-start each fit along the ``mu`` path from the previous solution (the
        alternating algorithm only); False fits every point from scratch, exactly
        as ``GridSearchCV`` would.
    refit : bool, default=True
        Refit the best point on all rows (from scratch).
    parallel : {"local", "dask"}, default="local"
        Local cores (joblib's default backend) or a Dask cluster (joblib's ``"dask"``
        backend; needs ``dask.distributed``).
    n_jobs : int or None, default=-1
        Parallel jobs (-1: all local cores, or as many as the cluster takes).
    client : distributed.Client or str, optional
        ``parallel="dask"`` only: the client, or a scheduler address; default the
        current default client.
    random_state : int or None, default=0
        Seed of the fold shuffle when ``cv`` is an int.
    verbose : int, default=0
        joblib's verbosity.

    Returns
    -------
    GridResult

    Raises
    ------
    ValueError
        On an empty or negative grid, an unknown ``parallel``, ``client`` without
        ``parallel="dask"``, or an estimator without ``lam`` (or ``mu`` when ``mus``
        is given).
    ImportError
        ``parallel="dask"`` without ``dask.distributed`` installed.
    """
    params = estimator.get_params()
    if "lam" not in params:
        raise ValueError(f"estimator must have a lam parameter, got {type(estimator).__name__}")
    lam_values = _grid_values(lams, "lams", strict=True)
    if mus is None:
        mu_values: list = [None]
    else:
        if "mu" not in params:
            raise ValueError(f"mus is given but {type(estimator).__name__} has no mu parameter")
        mu_values = _grid_values(mus, "mus", strict=False)
    if parallel not in PARALLEL:
        raise ValueError(f"parallel must be one of {PARALLEL}, got {parallel!r}")
    if client is not None and parallel != "dask":
        raise ValueError("client applies only to parallel='dask'")
    if not isinstance(warm_start, bool) or not isinstance(refit, bool):
        raise ValueError("warm_start and refit must be bools")

    splitter = _resolve_cv(cv, estimator, y, random_state)
    splits = list(splitter.split(X, y, groups))
    scorer = check_scoring(estimator, scoring=scoring)
    units = [(k, i) for k in range(len(splits)) for i in range(len(lam_values))]
    tasks = (
        delayed(_path_job)(estimator, X, y, splits[k], lam_values[i], mu_values, scorer, warm_start)
        for k, i in units
    )
    logger.info(
        "evaluate_grid: %d lam x %d mu x %d folds = %d fits in %d units (%s)",
        len(lam_values), len(mu_values), len(splits), len(lam_values) * len(mu_values) * len(splits),
        len(units), parallel,
    )
    if parallel == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "parallel='dask' needs dask.distributed: pip install 'amtl-cvx[dask]'"
            ) from exc
        backend_kwargs = {}
        if isinstance(client, str):
            backend_kwargs["scheduler_host"] = client
        elif client is not None:
            backend_kwargs["client"] = client
        with parallel_config(backend="dask", **backend_kwargs):
            outputs = Parallel(n_jobs=n_jobs, verbose=verbose)(tasks)
    else:
        outputs = Parallel(n_jobs=n_jobs, verbose=verbose)(tasks)

    shape = (len(lam_values), len(mu_values), len(splits))
    scores, n_iter, fit_time = np.empty(shape), np.empty(shape, dtype=np.int64), np.empty(shape)
    for (k, i), out in zip(units, outputs):
        for j, (score, it, seconds) in enumerate(out):
            scores[i, j, k], n_iter[i, j, k], fit_time[i, j, k] = score, it, seconds

    flat_params = [
        {"lam": lam} if mu is None else {"lam": lam, "mu": mu}
        for lam in lam_values for mu in mu_values
    ]
    flat = scores.reshape(-1, len(splits))
    mean = flat.mean(axis=1)
    order = np.argsort(-mean, kind="stable")
    rank = np.empty(len(mean), dtype=np.int64)
    rank[order] = np.arange(1, len(mean) + 1)
    cv_results: dict = {
        "params": flat_params,
        "param_lam": np.array([p["lam"] for p in flat_params]),
        "param_mu": np.array([p.get("mu", np.nan) for p in flat_params]),
        "mean_test_score": mean,
        "std_test_score": flat.std(axis=1),
        "rank_test_score": rank,
        "mean_n_iter": n_iter.reshape(-1, len(splits)).mean(axis=1),
        "mean_fit_time": fit_time.reshape(-1, len(splits)).mean(axis=1),
    }
    for k in range(len(splits)):
        cv_results[f"split{k}_test_score"] = flat[:, k]
    best = int(order[0])
    best_params = flat_params[best]
    best_estimator = clone(estimator).set_params(**best_params).fit(X, y) if refit else None
    return GridResult(
        lams=np.array(lam_values),
        mus=np.array([np.nan if m is None else m for m in mu_values]),
        scores=scores,
        n_iter=n_iter,
        fit_time=fit_time,
        cv_results=cv_results,
        best_params=best_params,
        best_score=float(mean[best]),
        best_estimator=best_estimator,
    )
