"""The estimators' data layout: all rows in one ``X``, the task of each row in a task column
(:mod:`amtl_cvx.estimators`, "How the task of each row reaches the estimator")."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from amtl_cvx.data.container import MultiTaskData

__all__ = ["stack_tasks", "task_preprocessor"]


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
