"""The weights of a fit's objective: checked, and ``"auto"`` resolved.

``ridge="auto"`` is :data:`AUTO_RIDGE_RATIO` ``* lam`` and ``transfer_ridge="auto"`` is
:data:`AUTO_TRANSFER_RIDGE_RATIO` ``* lam * mean_t ||w_t||^2`` (docs/objective.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amtl_cvx._validation import check_scalar
from amtl_cvx.data.container import MultiTaskData
from amtl_cvx.problems.objective import imbalance_weights

__all__ = [
    "AUTO_RIDGE_RATIO",
    "AUTO_TRANSFER_RIDGE_RATIO",
    "resolve_ridge",
    "check_transfer_ridge",
    "resolve_transfer_ridge",
]

#: Largest lam, mu or ridge a fit accepts: the subproblems form 2 (lam + ridge) and
#: products of these weights with squared norms, which overflow float64 near 1e308.
_MAX_WEIGHT = 1e300

#: ``ridge="auto"`` (the default) is ``AUTO_RIDGE_RATIO * lam``: the penalty on ``W``
#: is then ``lam (||W (I - B)||^2 + 0.1 ||W||^2)``, which stays at least
#: ``0.1 lam ||W||^2`` whatever ``B`` is. Chosen on the release's data (docs/objective.md,
#: "The default ridge"): it removes the blow-up of Algorithm 1 on the imbalanced files
#: (the worst grid point's test RMSE within 1.15x of the best, against 10x to 36x at
#: ``ridge = 0``) and keeps AMTL 17% below single-task ridge on synthetic_dataset.mat.
AUTO_RIDGE_RATIO = 0.1

#: ``transfer_ridge="auto"`` (the default of Algorithm 1) is
#: ``AUTO_TRANSFER_RIDGE_RATIO * lam * mean_t ||w_t||^2`` with ``w_t`` the single-task
#: models the fit starts from: a tenth of the average diagonal of ``lam W'W``, the
#: B-step's quadratic term, so that every B-step is strictly convex (its minimiser
#: unique) and ``B`` stays bounded (docs/objective.md, "The transfer ridge"). Without it,
#: on real-data-like tasks with fewer rows than features (``make_tabular_tasks``), tasks
#: that fit their rows exactly send for free and ``B`` grows without bound (a fit at
#: ``lam = 0.1, mu = 0.1`` crawls for 1,000 iterations while ``max B`` climbs past 60),
#: and at ``mu = 0`` the B-steps are degenerate; with it every grid point converges.
AUTO_TRANSFER_RIDGE_RATIO = 0.1


@dataclass(frozen=True)
class _Penalties:
    """The checked weights of one fit: ``lam``, ``mu``, the imbalance weights ``c``,
    ``ridge`` and the transfer ridge ``rho`` (resolved numbers)."""

    lam: float
    mu: float
    c: np.ndarray
    ridge: float
    rho: float = 0.0


def resolve_ridge(ridge: float | str, lam: float) -> float:
    """The ridge a fit uses: ``ridge`` itself, or ``AUTO_RIDGE_RATIO * lam`` for ``"auto"``.

    Parameters
    ----------
    ridge : float or "auto"
        ``ridge >= 0``, or ``"auto"``.
    lam : float
        The fit's ``lam`` (already checked).
    """
    if isinstance(ridge, str):
        if ridge != "auto":
            raise ValueError(f"ridge must be a nonnegative number or 'auto', got {ridge!r}")
        return AUTO_RIDGE_RATIO * lam
    return check_scalar(ridge, "ridge")


def check_transfer_ridge(transfer_ridge: float | str) -> float | str:
    """``transfer_ridge`` checked: ``"auto"`` or a finite number ``>= 0`` (ValueError naming it)."""
    if isinstance(transfer_ridge, str):
        if transfer_ridge != "auto":
            raise ValueError(f"transfer_ridge must be a nonnegative number or 'auto', got {transfer_ridge!r}")
        return transfer_ridge
    value = check_scalar(transfer_ridge, "transfer_ridge")
    if value > _MAX_WEIGHT:
        raise ValueError(f"transfer_ridge must be at most {_MAX_WEIGHT:g}, got {value:g}")
    return value


def resolve_transfer_ridge(transfer_ridge: float | str, lam: float, W_single: np.ndarray) -> float:
    """The transfer ridge a fit uses: ``transfer_ridge`` itself, or for ``"auto"``
    ``AUTO_TRANSFER_RIDGE_RATIO * lam * mean_t ||w_t||^2`` over the columns of
    ``W_single`` (the single-task models at the fit's ``lam`` and ``ridge``).

    Parameters
    ----------
    transfer_ridge : float or "auto"
    lam : float
        The fit's ``lam`` (already checked).
    W_single : numpy.ndarray
        (d, T) single-task models.
    """
    value = check_transfer_ridge(transfer_ridge)
    if value == "auto":
        return float(AUTO_TRANSFER_RIDGE_RATIO * lam * np.mean(np.sum(W_single * W_single, axis=0)))
    return value


def _check_common(data: MultiTaskData, lam, mu, loss, ridge, s, sigma):
    if not isinstance(data, MultiTaskData):
        raise ValueError(f"data must be a MultiTaskData, got {type(data).__name__}")
    data.check_labels(loss)
    lam = check_scalar(lam, "lam", strict=True)
    mu = check_scalar(mu, "mu")
    ridge = resolve_ridge(ridge, lam)
    for name, value in (("lam", lam), ("mu", mu), ("ridge", ridge)):
        if value > _MAX_WEIGHT:
            raise ValueError(f"{name} must be at most {_MAX_WEIGHT:g} (larger values overflow float64 "
                             f"in the subproblems), got {value:g}")
    c = imbalance_weights(data.n_samples, s, sigma)
    return lam, mu, ridge, c
