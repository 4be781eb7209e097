"""The multi-task data container.

A :class:`MultiTaskData` holds T tasks, each a design matrix ``X_t`` (n_t x d) and a
target vector ``y_t`` (n_t,), with its own number of rows. It is validated once, on
construction, so everything downstream can trust it. :class:`MultiTaskDataset` bundles
the train / validation / test splits of one problem with its ground truth, when known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from amtl_cvx._validation import check_array

__all__ = ["MultiTaskData", "MultiTaskDataset", "LOSSES"]

#: Loss names understood throughout the package.
LOSSES = ("squared", "logistic")


class MultiTaskData:
    """T tasks as ``(X_t, y_t)`` pairs, validated on construction.

    Parameters
    ----------
    Xs : sequence of array_like
        One design matrix per task, shape (n_t, d_raw); every task has the same number
        of columns and at least one row.
    ys : sequence of array_like
        One target vector per task, shape (n_t,) (an (n_t, 1) column is accepted).
    add_bias : bool, default=False
        Append a column of ones to every ``X_t`` (the original release's convention).
        This is the only place a bias column is added; do not append it yourself.
        The bias coefficient is then the last row of ``W`` and is regularised like any
        other feature.
    task_names : sequence of str, optional
        Names of the tasks (default ``"task0"``, ``"task1"``, ...).

    Attributes
    ----------
    Xs : tuple of numpy.ndarray
        Read-only design matrices, including the bias column when ``add_bias``.
    ys : tuple of numpy.ndarray
        Read-only target vectors.
    n_tasks : int
    n_features : int
        Columns of each ``X_t`` including the bias column.
    n_samples : numpy.ndarray of int
        Rows per task.

    Raises
    ------
    ValueError
        On NaN or infinite values, a task with zero rows, mismatched lengths of
        ``X_t`` and ``y_t``, different feature counts across tasks, or no task at all.
    """

    def __init__(
        self,
        Xs: Sequence[np.ndarray],
        ys: Sequence[np.ndarray],
        *,
        add_bias: bool = False,
        task_names: Sequence[str] | None = None,
    ) -> None:
        if isinstance(Xs, np.ndarray) or isinstance(ys, np.ndarray):
            raise ValueError("Xs and ys must be sequences (one array per task), not a single array")
        Xs, ys = list(Xs), list(ys)
        if len(Xs) == 0:
            raise ValueError("Xs must hold at least one task")
        if len(Xs) != len(ys):
            raise ValueError(f"Xs has {len(Xs)} tasks but ys has {len(ys)}")
        if not isinstance(add_bias, (bool, np.bool_)):
            raise ValueError(f"add_bias must be a bool, got {add_bias!r}")
        X_out, y_out = [], []
        d_raw = None
        for t, (X, y) in enumerate(zip(Xs, ys)):
            X = check_array(X, f"Xs[{t}]", ndim=2)
            y = check_array(y, f"ys[{t}]")
            if y.ndim == 2 and y.shape[1] == 1:
                y = y[:, 0]
            if y.ndim != 1:
                raise ValueError(f"ys[{t}] must be a vector, got shape {y.shape}")
            if X.shape[0] == 0:
                raise ValueError(f"task {t} is empty: Xs[{t}] has zero rows")
            if X.shape[0] != y.shape[0]:
                raise ValueError(
                    f"Xs[{t}] has {X.shape[0]} rows but ys[{t}] has {y.shape[0]} entries"
                )
            if d_raw is None:
                d_raw = X.shape[1]
                if d_raw == 0:
                    raise ValueError("Xs[0] has zero columns")
            elif X.shape[1] != d_raw:
                raise ValueError(
                    f"Xs[{t}] has {X.shape[1]} columns but Xs[0] has {d_raw}: "
                    "all tasks must share the same features"
                )
            if add_bias:
                X = np.hstack([X, np.ones((X.shape[0], 1))])
            else:
                X = np.array(X, dtype=np.float64, copy=True)
            y = np.array(y, dtype=np.float64, copy=True)
            X.setflags(write=False)
            y.setflags(write=False)
            X_out.append(X)
            y_out.append(y)
        if task_names is None:
            task_names = [f"task{t}" for t in range(len(X_out))]
        task_names = [str(s) for s in task_names]
        if len(task_names) != len(X_out):
            raise ValueError(f"task_names has {len(task_names)} names for {len(X_out)} tasks")
        self.Xs: tuple[np.ndarray, ...] = tuple(X_out)
        self.ys: tuple[np.ndarray, ...] = tuple(y_out)
        self.add_bias = bool(add_bias)
        self.task_names: tuple[str, ...] = tuple(task_names)

    @property
    def n_tasks(self) -> int:
        """Number of tasks T."""
        return len(self.Xs)

    @property
    def n_features(self) -> int:
        """Columns of each design matrix, including the bias column."""
        return self.Xs[0].shape[1]

    @property
    def n_samples(self) -> np.ndarray:
        """Rows per task, shape (T,)."""
        return np.array([X.shape[0] for X in self.Xs], dtype=np.int64)

    def check_labels(self, loss: str) -> None:
        """Raise ``ValueError`` unless the targets suit ``loss``.

        The logistic loss needs labels in {-1, +1}; the squared loss takes any reals.
        """
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if loss == "logistic":
            for t, y in enumerate(self.ys):
                if not np.all(np.isin(y, (-1.0, 1.0))):
                    raise ValueError(
                        f"ys[{t}] must hold labels in {{-1, +1}} for the logistic loss"
                    )

    def stacked(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(X, y, task_ids)``: all rows stacked task by task."""
        X = np.vstack(self.Xs)
        y = np.concatenate(self.ys)
        ids = np.repeat(np.arange(self.n_tasks), self.n_samples)
        return X, y, ids

    def __repr__(self) -> str:
        n = self.n_samples
        return (
            f"MultiTaskData(n_tasks={self.n_tasks}, n_features={self.n_features}, "
            f"rows per task {n.min()}..{n.max()}, add_bias={self.add_bias})"
        )


@dataclass(frozen=True)
class MultiTaskDataset:
    """Train / validation / test splits of one multi-task problem.

    Attributes
    ----------
    train, val, test : MultiTaskData
        The splits; they share tasks and features.
    loss : {"squared", "logistic"}
        The loss the problem is meant for.
    W_true : numpy.ndarray or None
        Planted task parameters (d x T) of a generated problem (bias row included when
        the splits carry a bias column; its entries are then zero).
    B_true : numpy.ndarray or None
        Planted transfer graph (T x T, column t = incoming edges of task t).
    name : str
        A short description.
    """

    train: MultiTaskData
    val: MultiTaskData
    test: MultiTaskData
    loss: str = "squared"
    W_true: np.ndarray | None = field(default=None, repr=False)
    B_true: np.ndarray | None = field(default=None, repr=False)
    name: str = ""

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for split in ("val", "test"):
            other = getattr(self, split)
            if other.n_tasks != self.train.n_tasks or other.n_features != self.train.n_features:
                raise ValueError(
                    f"{split} has {other.n_tasks} tasks x {other.n_features} features, "
                    f"train has {self.train.n_tasks} x {self.train.n_features}"
                )
        for split in ("train", "val", "test"):
            getattr(self, split).check_labels(self.loss)
