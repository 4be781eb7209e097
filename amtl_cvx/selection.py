"""Choosing ``lam`` and ``mu`` on the validation split (never on the test split)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from amtl_cvx.baselines import fit_single_task
from amtl_cvx.data import MultiTaskDataset
from amtl_cvx.fit import AMTLFit, fit_alternating, fit_curriculum
from amtl_cvx.metrics import task_errors

__all__ = ["Selected", "select_amtl", "select_single_task", "DEFAULT_LAMS", "DEFAULT_MUS"]

DEFAULT_LAMS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
DEFAULT_MUS = (0.0, 0.1, 0.3, 1.0, 3.0)


@dataclass(frozen=True)
class Selected:
    """The model chosen on validation.

    Attributes
    ----------
    params : dict
        The chosen hyperparameters.
    W : numpy.ndarray
        Its task parameters (fitted on the training split).
    fit : AMTLFit or None
        The AMTL fit (None for single-task models).
    val_error : float
        Mean validation error over tasks (RMSE or error rate).
    table : list of tuple
        ``(params, mean validation error)`` for every grid point.
    """

    params: dict
    W: np.ndarray
    fit: AMTLFit | None
    val_error: float
    table: list


def select_single_task(dataset: MultiTaskDataset, lams: Sequence[float] = DEFAULT_LAMS) -> Selected:
    """Single-task ridge / L2-logistic regression with ``lam`` chosen on validation."""
    table, best = [], None
    for lam in lams:
        W = fit_single_task(dataset.train, lam, dataset.loss)
        err = float(np.mean(task_errors(W, dataset.val, dataset.loss)))
        table.append(({"lam": lam}, err))
        if best is None or err < best[0]:
            best = (err, lam, W)
    err, lam, W = best
    return Selected({"lam": lam}, W, None, err, table)


def select_amtl(
    dataset: MultiTaskDataset,
    lams: Sequence[float] = DEFAULT_LAMS,
    mus: Sequence[float] = DEFAULT_MUS,
    *,
    algorithm: str = "alternating",
    warm_start: bool = True,
    on_fit: Callable[[dict, float], None] | None = None,
    **fit_kwargs,
) -> Selected:
    """AMTL with ``(lam, mu)`` chosen on the validation split's mean task error.

    Parameters
    ----------
    dataset : MultiTaskDataset
    lams, mus : sequence of float
        The grid, walked as a path: ``mu`` inner (in the order given), ``lam`` outer.
    algorithm : {"alternating", "curriculum"}
    warm_start : bool, default=True
        Alternating AMTL only: start every grid point from the previous point's
        ``(W, B)`` (``W_init``, ``B_init`` of :func:`~amtl_cvx.fit.fit_alternating`);
        the first point of a new ``lam`` starts from the first point of the previous
        ``lam``. Each fit still runs to its own KKT certificate; since the problem is
        not convex, a warm start may end at another stationary point than the
        single-task start would (``warm_start=False`` fits every point from the
        single-task models).
    on_fit : callable, optional
        Called as ``on_fit(params, val_error)`` after each grid point (progress).
    **fit_kwargs
        Passed to :func:`amtl_cvx.fit.fit_alternating` or
        :func:`amtl_cvx.fit.fit_curriculum` (``backend``, ``ridge``, ``s``, ``sigma`` ...).
    """
    if algorithm not in ("alternating", "curriculum"):
        raise ValueError(f"algorithm must be 'alternating' or 'curriculum', got {algorithm!r}")
    if not isinstance(warm_start, bool):
        raise ValueError(f"warm_start must be True or False, got {warm_start!r}")
    fitter = fit_alternating if algorithm == "alternating" else fit_curriculum
    warm = warm_start and algorithm == "alternating"
    table, best = [], None
    previous, row_start = None, None  # the last fit, the first fit of the current lam
    for lam, (k, mu) in itertools.product(lams, enumerate(mus)):
        kwargs = dict(fit_kwargs)
        start = row_start if k == 0 else previous
        if warm and start is not None:
            kwargs.update(W_init=start.W, B_init=start.B)
        fit = fitter(dataset.train, lam=lam, mu=mu, loss=dataset.loss, **kwargs)
        previous = fit
        if k == 0:
            row_start = fit
        err = float(np.mean(task_errors(fit.W, dataset.val, dataset.loss)))
        params = {"lam": lam, "mu": mu}
        table.append((params, err))
        if on_fit is not None:
            on_fit(params, err)
        if best is None or err < best[0]:
            best = (err, params, fit)
    err, params, fit = best
    return Selected(params, fit.W, fit, err, table)
