"""CVXPY expressions of the per-task mean losses (the scaling of ``amtl_cvx.problems.objective``)."""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from amtl_cvx.data.container import LOSSES

__all__ = ["loss_expression", "target_scale"]


def loss_expression(X: np.ndarray, y: np.ndarray, w: cp.Expression, loss: str) -> cp.Expression:
    """``1/(2n) ||y - X w||^2`` (squared) or ``mean(log(1 + exp(-y * X w)))`` (logistic)."""
    n = X.shape[0]
    if loss == "squared":
        return cp.sum_squares(X @ w - y) / (2.0 * n)
    if loss == "logistic":
        return cp.sum(cp.logistic(cp.multiply(-y, X @ w))) / n
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def target_scale(ys: list[np.ndarray] | tuple[np.ndarray, ...], loss: str) -> float:
    """Scale ``sigma`` by which squared-loss targets are divided before solving.

    The squared loss is homogeneous: with ``y' = y / sigma`` the minimiser is ``W / sigma``
    and every term of the objective is divided by ``sigma^2``. The release's synthetic
    data has targets of standard deviation ~30 (losses in the hundreds); dividing by the
    root mean square of the targets brings the solver's numbers to order one. The
    logistic loss is not homogeneous in ``y`` and is left unscaled (its values are O(1)).
    """
    if loss != "squared":
        return 1.0
    y = np.concatenate([np.ravel(v) for v in ys])
    rms = float(np.sqrt(np.mean(y * y)))
    return rms if rms > 0 else 1.0
