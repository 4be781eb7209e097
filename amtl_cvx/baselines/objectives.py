"""The numpy objectives of the multi-task baselines, with the scaling of
:mod:`amtl_cvx.baselines.multitask` (``L_t`` each task's mean loss)."""

from __future__ import annotations

from typing import Any

import numpy as np

from amtl_cvx._validation import check_array
from amtl_cvx.baselines._common import _W
from amtl_cvx.data import MultiTaskData
from amtl_cvx.problems.objective import task_loss, task_losses

__all__ = [
    "pooled_objective",
    "mean_regularized_objective",
    "l21_objective",
    "trace_norm_objective",
    "gomtl_objective",
]


def pooled_objective(W: Any, data: MultiTaskData, *, lam: float, loss: str = "squared") -> float:
    """``sum_t L_t(w) + lam ||w||^2`` at ``w`` (d,) or at ``W`` (d x T) with equal columns."""
    w = check_array(W, "W")
    if w.ndim == 2:
        w = _W(w, data)
        if not np.all(w == w[:, :1]):
            raise ValueError("W must have equal columns (the pooled model)")
        w = w[:, 0]
    if w.shape != (data.n_features,):
        raise ValueError(f"w must have shape ({data.n_features},), got {w.shape}")
    W = np.repeat(w[:, None], data.n_tasks, axis=1)
    return float(task_losses(W, data, loss).sum() + lam * (w @ w))


def mean_regularized_objective(W: Any, data: MultiTaskData, *, lam: float, rho: float, loss: str = "squared") -> float:
    """``sum_t L_t(w_t) + lam sum_t ||w_t - wbar||^2 + rho ||W||_F^2``."""
    W = _W(W, data)
    dev = W - W.mean(axis=1, keepdims=True)
    return float(task_losses(W, data, loss).sum() + lam * np.sum(dev * dev) + rho * np.sum(W * W))


def l21_objective(W: Any, data: MultiTaskData, *, lam: float, rho: float = 0.0, loss: str = "squared") -> float:
    """``sum_t L_t(w_t) + lam sum_j ||W[j, :]||_2 + rho ||W||_F^2``."""
    W = _W(W, data)
    return float(task_losses(W, data, loss).sum() + lam * np.sum(np.sqrt(np.sum(W * W, axis=1)))
                 + rho * np.sum(W * W))


def trace_norm_objective(W: Any, data: MultiTaskData, *, lam: float, rho: float = 0.0, loss: str = "squared") -> float:
    """``sum_t L_t(w_t) + lam ||W||_* + rho ||W||_F^2``."""
    W = _W(W, data)
    return float(task_losses(W, data, loss).sum() + lam * np.sum(np.linalg.svd(W, compute_uv=False))
                 + rho * np.sum(W * W))


def _gomtl_value(L: np.ndarray, S: np.ndarray, data: MultiTaskData, mu: float, lam: float, loss: str) -> float:
    """:func:`gomtl_objective` without its checks, with the same arithmetic (``task_losses``
    is ``task_loss`` over the tasks), so equal to it to the last bit: ``fit_gomtl``'s
    history, evaluated twice per alternation."""
    W = L @ S
    if loss == "squared":  # task_loss's squared branch, inlined (the same operations, in order)
        losses = np.empty(W.shape[1])
        for t, (X, y) in enumerate(zip(data.Xs, data.ys)):
            r = y - X @ W[:, t]
            losses[t] = float(r @ r) / (2.0 * X.shape[0])
    else:
        losses = np.array([task_loss(X, y, W[:, t], loss) for t, (X, y) in enumerate(zip(data.Xs, data.ys))])
    return float(losses.sum() + mu * np.sum(np.abs(S)) + lam * np.sum(L * L))


def gomtl_objective(L: Any, S: Any, data: MultiTaskData, *, mu: float, lam: float, loss: str = "squared") -> float:
    """``sum_t L_t(L s_t) + mu ||S||_1 + lam ||L||_F^2``."""
    L = check_array(L, "L", ndim=2)
    S = check_array(S, "S", ndim=2)
    W = _W(L @ S, data)
    return float(task_losses(W, data, loss).sum() + mu * np.sum(np.abs(S)) + lam * np.sum(L * L))

