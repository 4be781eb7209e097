r"""scikit-learn estimators over :mod:`amtl_cvx.fit`: fit, predict, score, cross-validate.

Four estimators share one interface:

- :class:`AMTLRegressor` (squared loss) and :class:`AMTLClassifier` (logistic loss) fit
  AMTL with :func:`amtl_cvx.fit.fit_alternating` (Algorithm 1) or
  :func:`amtl_cvx.fit.fit_curriculum` (Algorithm 2);
- :class:`SingleTaskRegressor` and :class:`SingleTaskClassifier` fit every task alone
  with :func:`amtl_cvx.baselines.fit_single_task` (ridge / L2-logistic regression, AMTL's
  objective at ``B = 0``), for comparisons with the same data layout.

How the task of each row reaches the estimator: a task column
------------------------------------------------------------------
scikit-learn's model selection (``cross_val_score``, ``GridSearchCV``, ``Pipeline``)
slices ``X`` and ``y`` row by row and passes nothing else to ``predict`` and ``score``.
So the task of a row travels **inside** ``X``: column ``task_column`` (default 0, the
first column; negative indices count from the end; a string names a column of a pandas
DataFrame) holds integer task ids, the remaining columns are the features. Every
scikit-learn tool then works unchanged, without metadata routing. The rules:

- task ids are any integers (stored as floats in ``X``; a non-integer value is an
  error). The tasks are ``tasks_ = numpy.unique(ids)`` of the training rows; row ``k``
  of ``coef_`` and ``transfer_matrix_`` is task ``tasks_[k]``;
- ``predict`` on a row whose task id was not seen by ``fit`` raises ``ValueError``.
  Cross-validation must therefore keep every task in every training fold: use
  :class:`amtl_cvx.model_selection.TaskKFold` (folds stratified by task), or a shuffled
  ``KFold`` when every task has many rows. scikit-learn's default unshuffled folds on
  rows stacked task by task leave whole tasks out of training, and fail loudly;
- preprocessing must leave the task column alone: wrap it with
  :func:`task_preprocessor` (a ``ColumnTransformer`` that passes the task column
  through as column 0 and applies the transformer to the others);
- :func:`stack_tasks` turns a :class:`~amtl_cvx.data.MultiTaskData` into ``(X, y)``
  in this layout.

``task_column=None`` means the tasks share all rows (no task column):

- :class:`AMTLRegressor` / :class:`SingleTaskRegressor`: each column of a 2-D ``y``
  (n x T) is a task (multi-output regression); a 1-D ``y`` is one task;
- :class:`AMTLClassifier` / :class:`SingleTaskClassifier`: one-vs-all multi-class, as in
  the original USPS experiment. With K > 2 classes, task k separates ``classes_[k]``
  from the rest and ``predict`` is the argmax of the K task scores; with K = 2 there is
  one task (``classes_[1]`` against ``classes_[0]``), as in scikit-learn's
  ``LogisticRegression``.

With a task column the classifier's tasks are binary: ``y`` holds two labels overall
(``classes_``; ``classes_[1]`` is the positive label +1 of the logistic loss).

Intercept
---------
``fit_intercept=True`` (default) builds the data with ``MultiTaskData(add_bias=True)``:
a ones column is appended, and its coefficient, the last row of ``W``, becomes
``intercept_`` (one per task). As everywhere in amtl-cvx, the bias is **coupled and
regularised like any other feature** (it takes part in ``lam ||W - W B||^2`` and
``ridge ||W||^2``), unlike scikit-learn's linear models; centre ``y`` (or use a
``TransformedTargetRegressor``) when the tasks' means are far from zero.
``fit_intercept=False`` gives ``intercept_ = 0``.

Imbalance weights
-----------------
``c_t = s / n_t**sigma`` (``n_t`` the task's training rows) scales the price a task
pays to send transfer. The default ``s = 1, sigma = 0`` (``c_t = 1``) is the package's
and the paper's objective; ``sigma > 0`` makes tasks with few rows pay more.

Warm starts
-----------
With ``warm_start=True`` and ``algorithm="alternating"``, a second ``fit`` on data with
the same tasks and features starts Algorithm 1 from the previous ``W`` instead of the
single-task models. Walking a (lam, mu) path this way reuses every solution; this is
what :func:`amtl_cvx.model_selection.evaluate_grid` does. The objective is not jointly
convex in (W, B), so a warm-started fit can end at another stationary point than a cold
one, with a lower or a higher objective (a cold fit with a large ``mu`` can stop at
once at the single-task point, where no edge is worth its price, while a warm start
from a point with transfer keeps it). Algorithm 2 always starts from scratch.
"""

from __future__ import annotations

import logging
import numbers
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from amtl_cvx._validation import check_scalar
from amtl_cvx.backends import BACKENDS
from amtl_cvx.baselines import fit_single_task
from amtl_cvx.data import MultiTaskData
from amtl_cvx.fit import (
    SELECTIONS,
    AMTLFit,
    check_transfer_ridge,
    fit_alternating,
    fit_curriculum,
    resolve_ridge,
)
from amtl_cvx.objective import amtl_objective, imbalance_weights

__all__ = [
    "AMTLRegressor",
    "AMTLClassifier",
    "SingleTaskRegressor",
    "SingleTaskClassifier",
    "stack_tasks",
    "task_preprocessor",
    "estimator_from_fit",
    "ALGORITHMS",
]

logger = logging.getLogger(__name__)

#: Algorithms an AMTL estimator can run.
ALGORITHMS = ("alternating", "curriculum")

def stack_tasks(data: MultiTaskData, *, task_column: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(X, y)`` in the estimators' layout: all rows, task ids in one column.

    Parameters
    ----------
    data : MultiTaskData
        The tasks. When it carries a bias column (``data.add_bias``), the column is
        dropped: the estimators add it themselves (``fit_intercept=True``).
    task_column : int, default=0
        Where to put the task ids: 0 (first) or -1 (last).

    Returns
    -------
    X : numpy.ndarray, shape (n_rows, n_features + 1)
        Task ids (0..T-1) in column ``task_column``, then the features.
    y : numpy.ndarray, shape (n_rows,)
    """
    if not isinstance(data, MultiTaskData):
        raise ValueError(f"data must be a MultiTaskData, got {type(data).__name__}")
    if task_column not in (0, -1):
        raise ValueError(f"task_column must be 0 or -1, got {task_column!r}")
    X, y, ids = data.stacked()
    if data.add_bias:
        X = X[:, :-1]
    ids = ids[:, None].astype(np.float64)
    X = np.hstack([ids, X] if task_column == 0 else [X, ids])
    return X, y


def estimator_from_fit(fit: AMTLFit, data: MultiTaskData, *, loss: str, **params):
    """The fitted estimator equivalent to an :class:`~amtl_cvx.fit.AMTLFit` on ``data``.

    So that a model fitted through the functional API (or by ``amtl-cvx fit``) can be
    saved with :func:`amtl_cvx.save_model`, read back with :func:`amtl_cvx.load_model`
    and used like any fitted estimator. Squared loss gives an :class:`AMTLRegressor`
    whose ``X`` carries the task id (0..T-1) in column 0; logistic loss on tasks that
    share their rows (one-vs-all, the release's USPS layout) gives an
    :class:`AMTLClassifier` with ``task_column=None`` and classes 0..T-1, and logistic
    loss on tasks with their own rows an :class:`AMTLClassifier` whose tasks are binary
    with classes -1 and +1. ``data.add_bias`` becomes ``fit_intercept``.

    Parameters
    ----------
    fit : AMTLFit
    data : MultiTaskData
        The training data of ``fit``.
    loss : {"squared", "logistic"}
        The loss ``fit`` was fitted with.
    **params
        Estimator parameters (``lam``, ``mu``, ``ridge``, ``sigma``, ``algorithm`` ...)
        recorded in the estimator.

    Returns
    -------
    AMTLRegressor or AMTLClassifier
    """
    if not isinstance(fit, AMTLFit) or not isinstance(data, MultiTaskData):
        raise ValueError("fit must be an AMTLFit and data the MultiTaskData it was fitted on")
    W = np.asarray(fit.W, dtype=np.float64)
    if W.shape != (data.n_features, data.n_tasks):
        raise ValueError(
            f"fit.W has shape {W.shape}, data has {data.n_features} features and {data.n_tasks} tasks"
        )
    if loss not in ("squared", "logistic"):
        raise ValueError(f"loss must be 'squared' or 'logistic', got {loss!r}")
    logistic = loss == "logistic"
    shared = logistic and all(X is data.Xs[0] or np.array_equal(X, data.Xs[0]) for X in data.Xs)
    if shared and data.n_tasks == 2:
        raise ValueError(
            "two one-vs-all tasks on shared rows have no AMTLClassifier equivalent (with two "
            "classes it fits a single task)"
        )
    cls = AMTLClassifier if logistic else AMTLRegressor
    est = cls(fit_intercept=bool(data.add_bias), task_column=None if shared else 0, **params)
    est._check_layout_params()
    est._check_solver_params()
    est._set_fit_attributes(fit, np.arange(data.n_tasks))
    est.n_features_in_ = est.coef_.shape[1] + (0 if shared else 1)
    est._y_2d = False
    if logistic:
        est.classes_ = est.tasks_.copy() if shared else np.array([-1.0, 1.0])
    return est


def task_preprocessor(transformer: Any, *, task_column: int = 0):
    """Apply ``transformer`` to the features and pass the task column through.

    Parameters
    ----------
    transformer : scikit-learn transformer
        For example ``StandardScaler()``; it sees every column but the task column.
    task_column : int, default=0
        The task column of the input.

    Returns
    -------
    sklearn.compose.ColumnTransformer
        Its output has the task ids in column 0 (so the estimator after it keeps the
        default ``task_column=0``) followed by the transformed features.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> pipe = make_pipeline(task_preprocessor(StandardScaler()), AMTLRegressor())
    """
    from sklearn.compose import ColumnTransformer

    if isinstance(task_column, bool) or not isinstance(task_column, (numbers.Integral, str)):
        raise ValueError(f"task_column must be an int or a column name, got {task_column!r}")
    return ColumnTransformer(
        [("task", "passthrough", [task_column])],
        remainder=transformer,
        verbose_feature_names_out=False,
    )


#: Largest task id magnitude: every integer up to 2**53 is exact in float64 (and in int64).
_MAX_TASK_ID = 2.0**53


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return bool(value)


class _MultiTaskLinearModel(BaseEstimator):
    """Shared machinery: the task layout, the data container, the linear scores.

    Subclasses set ``_loss`` and implement ``_solve(data) -> AMTLFit``.
    """

    _loss = "squared"

    # ----------------------------------------------------------------- parameters
    def _check_layout_params(self) -> None:
        _check_bool(self.fit_intercept, "fit_intercept")
        tc = self.task_column
        if tc is not None and (isinstance(tc, bool) or not isinstance(tc, (numbers.Integral, str))):
            raise ValueError(f"task_column must be an int, a column name or None, got {tc!r}")
        try:  # validated only: the algorithms are deterministic
            check_random_state(self.random_state)
        except ValueError as exc:
            raise ValueError(f"random_state: {exc}") from exc

    def _task_index(self, n_columns: int) -> int | None:
        """Position of the task column in the validated ``X`` (None: no task column)."""
        tc = self.task_column
        if tc is None:
            return None
        if isinstance(tc, str):
            names = getattr(self, "feature_names_in_", None)
            if names is None or tc not in list(names):
                raise ValueError(
                    f"task_column={tc!r} names a column, but X has no column of that name "
                    "(pass a pandas DataFrame, or give the column's position)"
                )
            j = list(names).index(tc)
        elif not -n_columns <= tc < n_columns:
            raise ValueError(f"task_column={tc} is out of range for X with {n_columns} columns")
        else:
            j = int(tc) % n_columns
        if n_columns < 2:
            raise ValueError(
                f"X has {n_columns} column: it needs the task column (task_column={tc!r}) "
                "and at least one feature"
            )
        return j

    def _split_tasks(self, X: np.ndarray, j: int, tasks: np.ndarray | None):
        """Split ``X`` into features and task codes (indices into ``tasks``)."""
        col = X[:, j]
        nonint = col != np.round(col)
        if np.any(nonint):
            raise ValueError(
                f"X: the task column (task_column={self.task_column!r}) must hold integer "
                f"task ids, got {col[nonint][0]!r}"
            )
        huge = ~(np.abs(col) <= _MAX_TASK_ID)
        if np.any(huge):
            raise ValueError(
                f"X: the task column (task_column={self.task_column!r}) must hold integer "
                f"task ids of magnitude at most 2**53 (exact in float64), got {col[huge][0]!r}"
            )
        ids = col.astype(np.int64)
        Xf = np.delete(X, j, axis=1)
        if tasks is None:
            tasks = np.unique(ids)
        pos = np.minimum(np.searchsorted(tasks, ids), len(tasks) - 1)
        unknown = tasks[pos] != ids
        if np.any(unknown):
            bad = np.unique(ids[unknown])
            raise ValueError(
                f"X holds task ids not seen during fit: {bad[:10].tolist()} "
                f"(known tasks: {tasks[:10].tolist()}{' ...' if len(tasks) > 10 else ''})"
            )
        return Xf, pos, tasks

    # ------------------------------------------------------------------- fitting
    def _fit_tasks(self, Xs: list, ys: list, tasks: np.ndarray) -> None:
        """Fit on per-task lists and set the fitted attributes."""
        data = MultiTaskData(
            Xs, ys, add_bias=bool(self.fit_intercept), task_names=[str(t) for t in tasks]
        )
        self._set_fit_attributes(self._solve(data), tasks)
        logger.debug(
            "%s: %d tasks, %d features, objective %.6g after %d iterations",
            type(self).__name__, self.n_tasks_, self.coef_.shape[1], self.objective_, self.n_iter_,
        )

    def _set_fit_attributes(self, result: AMTLFit, tasks: np.ndarray) -> None:
        """The fitted attributes from an :class:`~amtl_cvx.fit.AMTLFit` (one row of
        ``coef_`` per task; the last row of ``W`` is the intercept if ``fit_intercept``)."""
        W = result.W
        if self.fit_intercept:
            self.coef_ = np.ascontiguousarray(W[:-1].T)
            self.intercept_ = W[-1].copy()
        else:
            self.coef_ = np.ascontiguousarray(W.T)
            self.intercept_ = np.zeros(W.shape[1])
        self.tasks_ = np.asarray(tasks)
        self.n_tasks_ = int(W.shape[1])
        self.transfer_matrix_ = np.array(result.B, dtype=np.float64)
        self.objective_ = float(result.objective)
        self.objective_history_ = np.array(result.objective_history, dtype=np.float64)
        self.n_iter_ = int(result.n_iter)
        self.converged_ = bool(result.converged)
        self.order_ = np.array(result.order, dtype=np.int64)
        self.imbalance_weights_ = np.array(result.c, dtype=np.float64)

    def _W(self) -> np.ndarray:
        """The fitted ``W`` (d x T) in the layout of :mod:`amtl_cvx.fit`."""
        if self.fit_intercept:
            return np.vstack([self.coef_.T, self.intercept_[None, :]])
        return self.coef_.T.copy()

    def _grouped(self, X: np.ndarray, y: np.ndarray):
        """Per-task lists ``(Xs, ys, tasks)`` of a task-column fit."""
        j = self._task_index(X.shape[1])
        Xf, codes, tasks = self._split_tasks(X, j, None)
        Xs = [Xf[codes == k] for k in range(len(tasks))]
        ys = [y[codes == k] for k in range(len(tasks))]
        return Xs, ys, tasks

    # ---------------------------------------------------------------- prediction
    def _raw_scores(self, X) -> np.ndarray:
        """Linear scores: (n,) per-row task scores, or (n, T) with shared rows."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        j = self._task_index(X.shape[1])
        if j is None:
            return X @ self.coef_.T + self.intercept_
        Xf, codes, _ = self._split_tasks(X, j, self.tasks_)
        return np.einsum("ij,ij->i", Xf, self.coef_[codes]) + self.intercept_[codes]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.string = False
        return tags


class _AMTLSolver:
    """``_solve`` through :func:`fit_alternating` / :func:`fit_curriculum`."""

    def __init__(
        self,
        *,
        lam: float = 1.0,
        mu: float = 0.1,
        algorithm: str = "alternating",
        backend: str = "fast",
        solver: str | None = None,
        ridge: float | str = "auto",
        transfer_ridge: float | str = "auto",
        s: float = 1.0,
        sigma: float = 0.0,
        selection: str = "greedy",
        max_iter: int | None = None,
        tol: float = 1e-6,
        fit_intercept: bool = True,
        task_column: int | str | None = 0,
        warm_start: bool = False,
        random_state=None,
        variant=None,
    ) -> None:
        self.lam = lam
        self.mu = mu
        self.algorithm = algorithm
        self.backend = backend
        self.solver = solver
        self.ridge = ridge
        self.transfer_ridge = transfer_ridge
        self.s = s
        self.sigma = sigma
        self.selection = selection
        self.max_iter = max_iter
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.task_column = task_column
        self.warm_start = warm_start
        self.random_state = random_state
        self.variant = variant

    def _check_solver_params(self) -> None:
        resolve_ridge(self.ridge, check_scalar(self.lam, "lam", strict=True))
        check_transfer_ridge(self.transfer_ridge)
        check_scalar(self.mu, "mu")
        check_scalar(self.s, "s")
        check_scalar(self.sigma, "sigma")
        check_scalar(self.tol, "tol")
        if self.max_iter is not None and (
            isinstance(self.max_iter, bool) or not isinstance(self.max_iter, numbers.Integral) or self.max_iter < 1
        ):
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        exact = self.backend == "cvxpy" or self.variant is not None
        if self.solver is not None and (not isinstance(self.solver, str) or not exact):
            raise ValueError(
                f"solver names a CVXPY solver and applies only to backend='cvxpy' or a variant's "
                f"statements, got solver={self.solver!r} with backend={self.backend!r}"
            )
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        _check_bool(self.warm_start, "warm_start")
        if self.variant is not None:
            from amtl_cvx.problems.custom import Variant

            if not isinstance(self.variant, Variant):
                raise ValueError(f"variant must be an amtl_cvx.Variant or None, got {type(self.variant).__name__}")
            self.variant.check()

    def _warm_start_point(self, data: MultiTaskData) -> dict:
        """``W_init`` and ``B_init`` from the previous fit, if it fits."""
        if not (self.warm_start and self.algorithm == "alternating" and hasattr(self, "coef_")):
            return {}
        W = self._W()
        if W.shape != (data.n_features, data.n_tasks) or [str(t) for t in self.tasks_] != list(data.task_names):
            logger.debug("warm_start: previous fit has other tasks or features; starting cold")
            return {}
        return {"W_init": W, "B_init": self.transfer_matrix_}

    def _solve(self, data: MultiTaskData) -> AMTLFit:
        common = dict(
            lam=self.lam, mu=self.mu, loss=self._loss, ridge=self.ridge, s=self.s,
            sigma=self.sigma, backend=self.backend, solver=self.solver, variant=self.variant,
        )
        if self.algorithm == "curriculum":
            return fit_curriculum(data, selection=self.selection, **common)
        # fit_alternating warns (ConvergenceWarning) when it stops at max_iter
        return fit_alternating(
            data, max_iter=self.max_iter, tol=self.tol, transfer_ridge=self.transfer_ridge,
            **self._warm_start_point(data), **common
        )


class _SingleTaskSolver:
    """``_solve`` through :func:`fit_single_task`; ``B = 0``."""

    def __init__(
        self,
        *,
        lam: float = 1.0,
        fit_intercept: bool = True,
        task_column: int | str | None = 0,
        random_state=None,
    ) -> None:
        self.lam = lam
        self.fit_intercept = fit_intercept
        self.task_column = task_column
        self.random_state = random_state

    def _check_solver_params(self) -> None:
        check_scalar(self.lam, "lam", strict=True)

    def _solve(self, data: MultiTaskData) -> AMTLFit:
        W = fit_single_task(data, self.lam, self._loss)
        T = data.n_tasks
        B = np.zeros((T, T))
        objective = amtl_objective(W, B, data, lam=self.lam, mu=0.0, loss=self._loss)
        return AMTLFit(W, B, objective, np.array([objective]), 1, True, c=imbalance_weights(data.n_samples))


# ============================================================== regressors
class _RegressorBase(RegressorMixin, _MultiTaskLinearModel):
    _loss = "squared"

    def fit(self, X, y):
        """Fit the model.

        Parameters
        ----------
        X : array_like, shape (n_rows, n_columns)
            Features, with the task ids in column ``task_column`` (unless it is None).
        y : array_like, shape (n_rows,) or (n_rows, T)
            Targets; 2-D (one column per task) only with ``task_column=None``.

        Returns
        -------
        self
        """
        self._check_layout_params()
        self._check_solver_params()
        shared = self.task_column is None
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True, multi_output=shared)
        y = np.asarray(y, dtype=np.float64)
        if shared:
            self._y_2d = y.ndim == 2
            Y = y.reshape(len(y), -1)
            T = Y.shape[1]
            self._fit_tasks([X] * T, [Y[:, t] for t in range(T)], np.arange(T))
        else:
            self._y_2d = False
            self._fit_tasks(*self._grouped(X, y))
        return self

    def predict(self, X) -> np.ndarray:
        """Predict targets.

        Parameters
        ----------
        X : array_like, shape (n_rows, n_columns)

        Returns
        -------
        numpy.ndarray, shape (n_rows,) or (n_rows, T)
            Each row's prediction by its task's model (with a task column); all tasks'
            predictions (shared rows, 2-D when ``y`` was 2-D at fit).
        """
        scores = self._raw_scores(X)
        if scores.ndim == 2 and not self._y_2d:
            return scores[:, 0]
        return scores

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if self.task_column is None:
            tags.target_tags.multi_output = True
            tags.target_tags.single_output = True
        return tags


_AMTL_PARAMS_DOC = """
    lam : float, default=1.0
        Weight of ``||W - W B||_F^2`` (``> 0``); with ``B = 0`` it is the ridge penalty.
    mu : float, default=0.1
        Weight of the loss-weighted sparsity of the outgoing edges (``>= 0``).
    algorithm : {"alternating", "curriculum"}, default="alternating"
        Algorithm 1 (:func:`~amtl_cvx.fit.fit_alternating`) or Algorithm 2
        (:func:`~amtl_cvx.fit.fit_curriculum`).
    backend : {"fast", "first-order", "cvxpy"}, default="fast"
        The subproblem solvers: the exact active-set, Cholesky and Newton solvers of
        ``solvers`` (``"fast"``), its first-order solvers (``"first-order"``:
        coordinate descent, accelerated gradient; ``docs/first_order.md``), or the exact
        CVXPY statements.
    solver : str, optional
        The CVXPY solver name (``backend="cvxpy"`` only); default: the ladder of
        ``docs/algorithms.md``.
    ridge : float or "auto", default="auto"
        Weight of ``ridge ||W||_F^2``; ``"auto"`` is ``0.1 * lam``
        (:data:`amtl_cvx.fit.AUTO_RIDGE_RATIO`), which keeps the problem well posed
        whatever ``B`` is; ``0`` is the paper's objective.
    transfer_ridge : float or "auto", default="auto"
        Weight of ``transfer_ridge ||B||_F^2`` (``algorithm="alternating"`` only);
        ``"auto"`` is ``0.1 * lam * mean_t ||w_t||^2`` over the single-task models
        (:func:`amtl_cvx.fit.resolve_transfer_ridge`), which keeps every B-step's
        minimiser unique and ``B`` bounded; ``0`` (with ``ridge=0``) is the paper's
        objective. ``"auto"`` is 0 with a ``variant``.
    s, sigma : float, default=1.0, 0.0
        Imbalance weights ``c_t = s / n_t**sigma``; the default gives ``c_t = 1``.
    selection : {"greedy", "static"}, default="greedy"
        Curriculum task selection (``algorithm="curriculum"`` only).
    max_iter : int, optional
        Maximum L-BFGS iterations (default 1000) or alternations (default 100) of
        :func:`~amtl_cvx.fit.fit_alternating` (``algorithm="alternating"``).
    tol : float, default=1e-6
        Tolerance on the fit's KKT certificate (``algorithm="alternating"``).
    fit_intercept : bool, default=True
        Append a ones column; its (regularised, coupled) coefficient is ``intercept_``.
    task_column : int, str or None, default=0
        The column of ``X`` holding each row's integer task id (see the module
        docstring); None: the tasks share all rows.
    warm_start : bool, default=False
        Start Algorithm 1 from the previous fit's ``W`` when the tasks and features match.
    random_state : int, RandomState or None, default=None
        Accepted for scikit-learn compatibility; the algorithms are deterministic and
        do not use it.
    variant : amtl_cvx.Variant, optional
        An AMTL variant (custom CVXPY statements of some steps, see
        ``docs/prototyping.md``): passed to the fit functions as ``variant=``; its steps
        are solved by CVXPY (``solver`` applies to them), the others by ``backend``.
        A variant is cloned like any parameter, and its own hyperparameters can be
        searched as ``variant__<name>``.
"""

_FITTED_DOC = """
    coef_ : numpy.ndarray, shape (n_tasks, n_features)
        Row k: the weights of task ``tasks_[k]`` (the task column and the bias excluded).
    intercept_ : numpy.ndarray, shape (n_tasks,)
        The bias row of ``W`` (zeros when ``fit_intercept=False``).
    transfer_matrix_ : numpy.ndarray, shape (n_tasks, n_tasks)
        ``B``: ``B[s, t] > 0`` is transfer from task ``tasks_[s]`` to task ``tasks_[t]``.
    tasks_ : numpy.ndarray
        The task labels, in the order of the rows of ``coef_``.
    n_tasks_ : int
    objective_ : float
        The final AMTL objective ``F(W, B)``.
    objective_history_ : numpy.ndarray
        ``F`` at the start and after each alternation (Algorithm 1), or after each
        curriculum step (Algorithm 2).
    n_iter_ : int
        Alternations or curriculum steps.
    converged_ : bool
    order_ : numpy.ndarray
        Curriculum: task positions in the order learned; alternating: empty.
    imbalance_weights_ : numpy.ndarray, shape (n_tasks,)
        ``c_t`` used.
    n_features_in_ : int
        Columns of ``X`` seen by ``fit`` (the task column included).
    feature_names_in_ : numpy.ndarray
        Column names, when ``X`` was a DataFrame with string column names.
"""


class AMTLRegressor(_AMTLSolver, _RegressorBase):
    __doc__ = (
        """Asymmetric multi-task regression (squared loss), scikit-learn style.

    A thin layer over :func:`amtl_cvx.fit.fit_alternating` and
    :func:`amtl_cvx.fit.fit_curriculum`; the data layout (a task column) is described in
    :mod:`amtl_cvx.estimators`.

    Parameters
    ----------"""
        + _AMTL_PARAMS_DOC
        + """
    Attributes
    ----------"""
        + _FITTED_DOC
        + """
    Examples
    --------
    >>> from amtl_cvx import make_regression_tasks
    >>> from amtl_cvx.estimators import AMTLRegressor, stack_tasks
    >>> ds = make_regression_tasks(n_tasks=6, n_features=5, random_state=0)
    >>> X, y = stack_tasks(ds.train)
    >>> model = AMTLRegressor(lam=0.1, mu=1.0).fit(X, y)
    >>> model.coef_.shape
    (6, 5)
    """
    )



class SingleTaskRegressor(_SingleTaskSolver, _RegressorBase):
    """Single-task ridge regression per task, with the AMTL estimators' interface.

    Each task solves ``min 1/(2 n_t) ||y_t - X_t w||^2 + lam ||w||^2`` alone
    (:func:`amtl_cvx.baselines.fit_single_task`): AMTL's objective at ``B = 0``.

    Parameters
    ----------
    lam : float, default=1.0
        Penalty on ``||w_t||^2`` (``> 0``), the same scaling as AMTL's ``lam``.
    fit_intercept : bool, default=True
        Append a ones column; its (regularised) coefficient is ``intercept_``.
    task_column : int, str or None, default=0
        As for :class:`AMTLRegressor`.
    random_state : int, RandomState or None, default=None
        Accepted for compatibility; unused.

    Attributes
    ----------
    coef_, intercept_, tasks_, n_tasks_, objective_, objective_history_, n_iter_,
    converged_, n_features_in_ :
        As for :class:`AMTLRegressor` (``n_iter_ = 1``).
    transfer_matrix_ : numpy.ndarray
        All zeros (no transfer).
    """



# ============================================================== classifiers
class _ClassifierBase(ClassifierMixin, _MultiTaskLinearModel):
    _loss = "logistic"

    def fit(self, X, y):
        """Fit the model.

        Parameters
        ----------
        X : array_like, shape (n_rows, n_columns)
            Features, with the task ids in column ``task_column`` (unless it is None).
        y : array_like, shape (n_rows,)
            Labels: two values overall with a task column; K >= 2 classes (one-vs-all)
            with ``task_column=None``.

        Returns
        -------
        self
        """
        self._check_layout_params()
        self._check_solver_params()
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        K = len(self.classes_)
        if K < 2:
            raise ValueError(f"y has only one class ({self.classes_[0]!r}); at least two are needed")
        if self.task_column is None:
            if K == 2:
                pm = np.where(y == self.classes_[1], 1.0, -1.0)
                self._fit_tasks([X], [pm], self.classes_[1:])
            else:
                ys = [np.where(y == c, 1.0, -1.0) for c in self.classes_]
                self._fit_tasks([X] * K, ys, self.classes_)
        else:
            if K > 2:
                raise ValueError(
                    f"y has {K} classes; with a task column every task is binary and y must "
                    "hold two labels overall (use task_column=None for one-vs-all multi-class)"
                )
            pm = np.where(y == self.classes_[1], 1.0, -1.0)
            self._fit_tasks(*self._grouped(X, pm))
        return self

    def decision_function(self, X) -> np.ndarray:
        """Linear scores ``x' w_t + b_t``.

        Returns
        -------
        numpy.ndarray, shape (n_rows,) or (n_rows, K)
            Binary tasks: the score of each row's task (positive: ``classes_[1]``).
            One-vs-all with K > 2 classes: the K task scores.
        """
        scores = self._raw_scores(X)
        if scores.ndim == 2 and scores.shape[1] == 1:
            return scores[:, 0]
        return scores

    def predict(self, X) -> np.ndarray:
        """Predict labels: the sign of the task score, or the argmax over one-vs-all tasks."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(np.int64)]
        return self.classes_[np.argmax(scores, axis=1)]

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_rows, n_classes).

        Binary: ``sigmoid(score)`` for ``classes_[1]``. One-vs-all: the K sigmoids
        normalised to sum to one (as scikit-learn's one-vs-rest logistic regression).
        """
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p = expit(scores)
            return np.column_stack([1.0 - p, p])
        P = expit(scores)
        return P / P.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`."""
        return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = self.task_column is None
        return tags


class AMTLClassifier(_AMTLSolver, _ClassifierBase):
    __doc__ = (
        """Asymmetric multi-task classification (logistic loss), scikit-learn style.

    Binary tasks with a task column, or (``task_column=None``) multi-class as one-vs-all
    tasks sharing all rows with argmax prediction, as in the original USPS experiment.
    A thin layer over :func:`amtl_cvx.fit.fit_alternating` and
    :func:`amtl_cvx.fit.fit_curriculum`.

    Parameters
    ----------"""
        + _AMTL_PARAMS_DOC
        + """
    Attributes
    ----------
    classes_ : numpy.ndarray
        The labels; with binary tasks ``classes_[1]`` is the positive label.
"""
        + _FITTED_DOC
    )



class SingleTaskClassifier(_SingleTaskSolver, _ClassifierBase):
    """Single-task L2-logistic regression per task, with the AMTL estimators' interface.

    Each task solves ``min mean(log(1 + exp(-y x'w))) + lam ||w||^2`` alone
    (:func:`amtl_cvx.baselines.fit_single_task`): AMTL's objective at ``B = 0``.

    Parameters
    ----------
    lam : float, default=1.0
        Penalty on ``||w_t||^2`` (``> 0``).
    fit_intercept : bool, default=True
    task_column : int, str or None, default=0
        As for :class:`AMTLClassifier` (None: one-vs-all multi-class).
    random_state : int, RandomState or None, default=None
        Accepted for compatibility; unused.

    Attributes
    ----------
    classes_, coef_, intercept_, tasks_, n_tasks_, objective_, objective_history_,
    n_iter_, converged_, n_features_in_ :
        As for :class:`AMTLClassifier`.
    transfer_matrix_ : numpy.ndarray
        All zeros (no transfer).
    """

