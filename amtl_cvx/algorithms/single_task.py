r"""Single-task fits (AMTL at ``B = 0``): ridge and L2-regularised logistic regression.

The single-task baseline and the starting point of Algorithm 1.

Each task is fitted on its own, with the same scaling as the AMTL objective at ``B = 0``::

    min_{w_t}  L_t(w_t) + lam * ||w_t||^2

so single-task learning with ``lam`` is exactly AMTL's starting point (Algorithm 1 is
initialised there). Ridge is solved in closed form; logistic regression by Newton's
method with a backtracking line search, stopped when the gradient norm is below
``tol`` relative to its value at zero.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from amtl_cvx._validation import check_scalar
from amtl_cvx.data import MultiTaskData

__all__ = ["fit_single_task", "ridge_task", "logistic_task"]


def ridge_task(X: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Minimiser of ``1/(2n) ||y - X w||^2 + lam ||w||^2``: ``(X'X/n + 2 lam I) w = X'y/n``."""
    n, d = X.shape
    A = X.T @ X / n + 2.0 * lam * np.eye(d)
    return cho_solve(cho_factor(A), X.T @ y / n)


def logistic_task(
    X: np.ndarray, y: np.ndarray, lam: float, *, tol: float = 1e-10, max_iter: int = 100
) -> np.ndarray:
    """Minimiser of ``mean(log(1 + exp(-y X w))) + lam ||w||^2`` (``lam > 0``), by Newton."""
    n, d = X.shape
    w = np.zeros(d)

    def value(v: np.ndarray) -> float:
        return float(np.mean(np.logaddexp(0.0, -y * (X @ v))) + lam * v @ v)

    g0 = None
    f = value(w)
    for _ in range(max_iter):
        z = y * (X @ w)
        s = 0.5 * (1.0 - np.tanh(0.5 * z))  # sigmoid(-z), stable
        g = -X.T @ (y * s) / n + 2.0 * lam * w
        gnorm = np.linalg.norm(g)
        g0 = gnorm if g0 is None else g0
        if gnorm <= tol * max(1.0, g0):
            break
        H = (X.T * (s * (1.0 - s))) @ X / n + 2.0 * lam * np.eye(d)
        step = -cho_solve(cho_factor(H), g)
        alpha = 1.0
        while True:
            f_new = value(w + alpha * step)
            if f_new <= f + 1e-4 * alpha * (g @ step) or alpha < 1e-12:
                break
            alpha *= 0.5
        w, f = w + alpha * step, f_new
    return w


def fit_single_task(data: MultiTaskData, lam: float, loss: str = "squared") -> np.ndarray:
    """Fit every task alone; return ``W`` (d x T).

    Parameters
    ----------
    data : MultiTaskData
    lam : float
        Penalty ``lam > 0`` on ``||w_t||^2`` (same scaling as AMTL's ``lam``).
    loss : {"squared", "logistic"}
    """
    lam = check_scalar(lam, "lam", strict=True)
    data.check_labels(loss)
    fit = ridge_task if loss == "squared" else logistic_task
    return np.column_stack([fit(X, y, lam) for X, y in zip(data.Xs, data.ys)])
