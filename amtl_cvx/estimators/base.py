"""What every estimator shares: the task layout, the data container and the linear scores
(:class:`_MultiTaskLinearModel`), and the regressor and classifier interfaces
(:class:`_RegressorBase`, :class:`_ClassifierBase`; the multi-task baselines build on them)."""

from __future__ import annotations

import logging
import numbers

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from amtl_cvx.algorithms.result import AMTLFit
from amtl_cvx.data.container import MultiTaskData
from amtl_cvx.estimators.layout import _MAX_TASK_ID, _check_bool

logger = logging.getLogger(__name__)


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
        """The fitted attributes from an :class:`~amtl_cvx.algorithms.result.AMTLFit` (one row of
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
        """The fitted ``W`` (d x T) in the layout of :mod:`amtl_cvx.algorithms`."""
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
