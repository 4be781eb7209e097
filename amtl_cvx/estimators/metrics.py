"""Predictions and per-task metrics for a parameter matrix ``W`` (d x T)."""

from __future__ import annotations

import numpy as np

from amtl_cvx.data.container import MultiTaskData

__all__ = ["predict", "task_rmse", "task_accuracy", "one_vs_all_accuracy", "task_errors"]


def predict(W: np.ndarray, data: MultiTaskData) -> list[np.ndarray]:
    """Scores ``X_t w_t`` of every task (real values; their sign for binary tasks)."""
    if W.shape != (data.n_features, data.n_tasks):
        raise ValueError(f"W must have shape ({data.n_features}, {data.n_tasks}), got {W.shape}")
    return [X @ W[:, t] for t, X in enumerate(data.Xs)]


def task_rmse(W: np.ndarray, data: MultiTaskData) -> np.ndarray:
    """Root mean squared error of each task, shape (T,)."""
    return np.array([np.sqrt(np.mean((y - z) ** 2)) for y, z in zip(data.ys, predict(W, data))])


def task_accuracy(W: np.ndarray, data: MultiTaskData) -> np.ndarray:
    """Accuracy of ``sign(X_t w_t)`` against labels in {-1, +1}, per task (ties count as +1)."""
    return np.array(
        [np.mean(np.where(z >= 0, 1.0, -1.0) == y) for y, z in zip(data.ys, predict(W, data))]
    )


def one_vs_all_accuracy(W: np.ndarray, data: MultiTaskData) -> float:
    """Multi-class accuracy of the argmax over one-vs-all task scores.

    All tasks must share the same rows (as in the USPS layout); the true class of a row
    is the task whose label is +1.
    """
    n = data.n_samples
    if np.any(n != n[0]) or any(not np.array_equal(X, data.Xs[0]) for X in data.Xs[1:]):
        raise ValueError("one-vs-all accuracy needs tasks that share the same rows")
    scores = data.Xs[0] @ W
    truth = np.argmax(np.column_stack(data.ys), axis=1)
    return float(np.mean(np.argmax(scores, axis=1) == truth))


def task_errors(W: np.ndarray, data: MultiTaskData, loss: str) -> np.ndarray:
    """The natural per-task error: RMSE (squared loss) or error rate (logistic)."""
    return task_rmse(W, data) if loss == "squared" else 1.0 - task_accuracy(W, data)
