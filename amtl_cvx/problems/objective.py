r"""The AMTL objective and its per-task losses in numpy: the one definition.

Everything else in the package (the CVXPY statements in :mod:`amtl_cvx.problems`, the
fast solvers in :mod:`solvers`) is checked against these functions. The scaling is
(see ``docs/objective.md``)::

    F(W, B) = sum_t (1 + mu * c_t * ||B[t, :]||_1) * L_t(w_t)
              + lam * ||W - W B||_F^2 + ridge * ||W||_F^2

    squared:  L_t(w) = 1/(2 n_t) * ||y_t - X_t w||^2
    logistic: L_t(w) = 1/n_t * sum_i log(1 + exp(-y_ti * x_ti' w)),  y in {-1, +1}
    c_t = s / n_t**sigma
"""

from __future__ import annotations

import numpy as np

from amtl_cvx._validation import check_array, check_scalar, check_transfer_matrix
from amtl_cvx.data.container import LOSSES, MultiTaskData

__all__ = [
    "task_loss",
    "task_losses",
    "imbalance_weights",
    "loss_weights",
    "amtl_objective",
    "bstep_objective",
    "wstep_objective",
    "curriculum_objective",
]


def _check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return loss


def task_loss(X: np.ndarray, y: np.ndarray, w: np.ndarray, loss: str = "squared") -> float:
    """Mean loss of one task.

    ``squared``: ``1/(2 n) ||y - X w||^2``; ``logistic``: ``mean(log(1 + exp(-y X w)))``.
    """
    _check_loss(loss)
    z = X @ w
    if loss == "squared":
        r = y - z
        return float(r @ r) / (2.0 * X.shape[0])
    return float(np.mean(np.logaddexp(0.0, -y * z)))


def task_losses(W: np.ndarray, data: MultiTaskData, loss: str = "squared") -> np.ndarray:
    """Per-task mean losses ``L_t(w_t)``, shape (T,)."""
    W = _check_W(W, data)
    return np.array(
        [task_loss(X, y, W[:, t], loss) for t, (X, y) in enumerate(zip(data.Xs, data.ys))]
    )


def imbalance_weights(n_samples: np.ndarray, s: float = 1.0, sigma: float = 0.0) -> np.ndarray:
    """Sample-size weights ``c_t = s / n_t**sigma``.

    The default (``s = 1, sigma = 0``) gives ``c_t = 1``. With ``sigma > 0`` the weight
    shrinks as ``n_t`` grows: a task with many rows (a reliable loss estimate) pays
    less to send transfer, a task with few rows pays relatively more.
    """
    s = check_scalar(s, "s", min_value=0.0)
    sigma = check_scalar(sigma, "sigma", min_value=0.0)
    n = np.asarray(n_samples, dtype=np.float64)
    if n.ndim != 1 or np.any(n < 1):
        raise ValueError("n_samples must be a vector of positive counts")
    return s / n**sigma


def loss_weights(B: np.ndarray, c: np.ndarray, mu: float) -> np.ndarray:
    """Per-task loss weights ``a_t = 1 + mu * c_t * ||B[t, :]||_1`` of the W-step."""
    return 1.0 + mu * c * np.abs(B).sum(axis=1)


def _check_W(W: np.ndarray, data: MultiTaskData) -> np.ndarray:
    W = check_array(W, "W", ndim=2)
    if W.shape != (data.n_features, data.n_tasks):
        raise ValueError(
            f"W must have shape ({data.n_features}, {data.n_tasks}), got {W.shape}"
        )
    return W


def _check_c(c: np.ndarray | None, T: int) -> np.ndarray:
    if c is None:
        return np.ones(T)
    c = check_array(c, "c", ndim=1)
    if c.shape != (T,) or np.any(c < 0):
        raise ValueError(f"c must be a nonnegative vector of length {T}")
    return c


def amtl_objective(
    W: np.ndarray,
    B: np.ndarray,
    data: MultiTaskData,
    *,
    lam: float,
    mu: float,
    loss: str = "squared",
    c: np.ndarray | None = None,
    ridge: float = 0.0,
    transfer_ridge: float = 0.0,
) -> float:
    """The full AMTL objective.

    ``F(W, B) = sum_t (1 + mu c_t ||B[t,:]||_1) L_t(w_t) + lam ||W - W B||_F^2
    + ridge ||W||_F^2 + transfer_ridge ||B||_F^2``.

    Parameters
    ----------
    W : numpy.ndarray, shape (d, T)
    B : numpy.ndarray, shape (T, T)
        Nonnegative with zero diagonal (checked).
    data : MultiTaskData
    lam, mu, ridge, transfer_ridge : float
        ``lam > 0``, ``mu >= 0``, ``ridge >= 0``, ``transfer_ridge >= 0`` (both ridges 0:
        the paper's objective; see ``docs/objective.md``).
    loss : {"squared", "logistic"}
    c : numpy.ndarray, optional
        Imbalance weights (default all ones).
    """
    lam = check_scalar(lam, "lam", strict=True)
    mu = check_scalar(mu, "mu")
    ridge = check_scalar(ridge, "ridge")
    transfer_ridge = check_scalar(transfer_ridge, "transfer_ridge")
    W = _check_W(W, data)
    B = check_transfer_matrix(B, data.n_tasks)
    c = _check_c(c, data.n_tasks)
    losses = task_losses(W, data, loss)
    R = W - W @ B
    return float(
        loss_weights(B, c, mu) @ losses + lam * np.sum(R * R) + ridge * np.sum(W * W)
        + transfer_ridge * np.sum(B * B)
    )


def bstep_objective(W: np.ndarray, B: np.ndarray, penalty: np.ndarray, lam: float) -> float:
    """B-step objective ``lam ||W - W B||_F^2 + sum_{s,t} p_s B[s, t]``.

    ``penalty`` is ``p_s = mu * c_s * L_s(w_s)``; the constant terms of ``F`` that do not
    depend on ``B`` are dropped.
    """
    R = W - W @ B
    return float(lam * np.sum(R * R) + np.asarray(penalty) @ B.sum(axis=1))


def wstep_objective(
    W: np.ndarray,
    B: np.ndarray,
    data: MultiTaskData,
    *,
    lam: float,
    weights: np.ndarray,
    loss: str = "squared",
    ridge: float = 0.0,
) -> float:
    """W-step objective ``sum_t a_t L_t(w_t) + lam ||W (I - B)||_F^2 + ridge ||W||_F^2``."""
    losses = task_losses(W, data, loss)
    R = W - W @ B
    return float(np.asarray(weights) @ losses + lam * np.sum(R * R) + ridge * np.sum(W * W))


def curriculum_objective(
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    W_S: np.ndarray,
    q: np.ndarray,
    *,
    lam: float,
    loss: str = "squared",
    ridge: float = 0.0,
) -> float:
    """Curriculum-step objective ``L_t(w) + lam ||w - W_S b||^2 + q' b + ridge ||w||^2``.

    ``W_S`` (d x k) holds the frozen parameters of the tasks learned so far and
    ``q_s = mu c_s L_s(w_s)`` their sending prices; ``b`` (k,) is the new task's
    incoming column restricted to them.
    """
    r = w - W_S @ b
    return float(task_loss(X, y, w, loss) + lam * (r @ r) + np.asarray(q) @ b + ridge * (w @ w))
