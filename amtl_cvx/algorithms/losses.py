"""Fast evaluation of the per-task training losses inside a fit's loops."""

from __future__ import annotations

import numpy as np

from amtl_cvx.data.container import MultiTaskData
from amtl_cvx.problems.objective import task_loss


def _loss_evaluator(data: MultiTaskData, loss: str):
    """``W -> (L_t(w_t))_t`` for a fixed data set, without per-call validation.

    Squared loss: from the per-task statistics ``X_t'X_t``, ``X_t'y_t``, ``y_t'y_t``
    (one vectorised expression; the expansion loses at most ~1e-15 * ||y_t||^2 / n_t
    to cancellation, far below the solvers' tolerances). The reported objective of a fit
    is always recomputed with :func:`amtl_cvx.problems.objective.amtl_objective`.
    """
    if loss == "squared":
        G = np.stack([X.T @ X for X in data.Xs])
        h = np.stack([X.T @ y for X, y in zip(data.Xs, data.ys)])
        yy = np.array([y @ y for y in data.ys])
        two_n = 2.0 * data.n_samples

        def squared(W: np.ndarray) -> np.ndarray:
            Wt = W.T
            quad = np.einsum("ti,tij,tj->t", Wt, G, Wt)
            return np.maximum(quad - 2.0 * np.einsum("ti,ti->t", Wt, h) + yy, 0.0) / two_n

        return squared
    return lambda W: np.array([task_loss(X, y, W[:, t], loss) for t, (X, y) in enumerate(zip(data.Xs, data.ys))])
