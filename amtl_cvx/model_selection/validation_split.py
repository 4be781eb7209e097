"""Choosing ``lam`` and ``mu`` on the validation split (never on the test split)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
from sklearn.model_selection import ParameterGrid

from amtl_cvx.algorithms.alternating import fit_alternating
from amtl_cvx.algorithms.curriculum import fit_curriculum
from amtl_cvx.algorithms.result import AMTLFit
from amtl_cvx.algorithms.single_task import fit_single_task
from amtl_cvx.data.container import MultiTaskDataset
from amtl_cvx.estimators.metrics import task_errors

__all__ = [
    "Selected",
    "select_amtl",
    "select_single_task",
    "select_baseline",
    "grid_edges",
    "DEFAULT_LAMS",
    "DEFAULT_MUS",
    "SINGLE_TASK_LAMS",
]

DEFAULT_LAMS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
DEFAULT_MUS = (0.0, 0.1, 0.3, 1.0, 3.0)

#: Single-task lam grid of :func:`select_single_task`: 1e-5 to 1e3, 3 points a decade
#: (25 fits, cheap). Validation chose interior values on every release file (0.1, 2.2 to
#: 10, 4.6e-4: docs/results.md), and a real data set whose single-task optimum lies near
#: 0.03 is inside it (the command line's old grid, 0.1 to 100, missed it).
SINGLE_TASK_LAMS = tuple(float(v) for v in np.logspace(-5, 3, 25))


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


def _select_on_grid(
    dataset: MultiTaskDataset,
    fit: Callable[..., np.ndarray],
    grid: Mapping[str, Sequence],
    warm: str | None = None,
) -> Selected:
    """``fit(**params) -> W`` at every point of ``grid`` (``ParameterGrid`` order), the
    lowest mean validation error chosen (ties: the first).

    With ``warm`` (a hyperparameter name), the points are fitted along paths of decreasing
    ``warm`` (the other hyperparameters fixed), each fit started from the previous one's
    ``W`` (``fit(**params, W0=W)``); the table and the choice are those of the grid order.
    """
    points = list(ParameterGrid({k: list(v) for k, v in grid.items()}))
    order = range(len(points))
    if warm is not None:
        others = [k for k in sorted(points[0]) if k != warm]
        order = sorted(order, key=lambda i: ([repr(points[i][k]) for k in others], -points[i][warm]))
    fitted: dict[int, np.ndarray] = {}
    previous = None
    for i in order:
        params = points[i]
        same_path = previous is not None and all(params[k] == points[previous][k] for k in params if k != warm)
        W = fit(**params, W0=fitted[previous]) if warm is not None and same_path else fit(**params)
        fitted[i], previous = W, i
    table, best = [], None
    for i, params in enumerate(points):
        err = float(np.mean(task_errors(fitted[i], dataset.val, dataset.loss)))
        table.append((params, err))
        if best is None or err < best[0]:
            best = (err, params, fitted[i])
    err, params, W = best
    return Selected(params, W, None, err, table)


def select_single_task(dataset: MultiTaskDataset, lams: Sequence[float] = SINGLE_TASK_LAMS) -> Selected:
    """Single-task ridge / L2-logistic regression with ``lam`` chosen on validation."""
    return _select_on_grid(dataset, lambda lam: fit_single_task(dataset.train, lam, dataset.loss), {"lam": lams})


def select_baseline(
    dataset: MultiTaskDataset, name: str, grid: Mapping[str, Sequence] | None = None, **fit_kwargs
) -> Selected:
    """A multi-task baseline of :data:`amtl_cvx.baselines.MULTITASK_BASELINES` with its
    hyperparameters chosen on validation.

    Parameters
    ----------
    dataset : MultiTaskDataset
    name : str
        ``"pooled"``, ``"mean_regularized"``, ``"l21"``, ``"trace_norm"`` or ``"gomtl"``.
    grid : mapping, optional
        Values per hyperparameter (default: the baseline's own grid,
        :meth:`~amtl_cvx.baselines.multitask.MultiTaskBaseline.param_grid`).
    **fit_kwargs
        ``backend``, ``solver``.
    """
    from amtl_cvx.baselines.multitask import MULTITASK_BASELINES

    if name not in MULTITASK_BASELINES:
        raise ValueError(f"name must be one of {tuple(MULTITASK_BASELINES)}, got {name!r}")
    baseline = MULTITASK_BASELINES[name]
    grid = baseline.param_grid(dataset.train, dataset.loss) if grid is None else grid
    return _select_on_grid(
        dataset,
        lambda **params: baseline.fit(dataset.train, dataset.loss, **fit_kwargs, **params),
        grid,
        warm=baseline.warm_start if fit_kwargs.get("backend", "fast") == "fast" else None,
    )


def grid_edges(selected: Selected) -> dict[str, float]:
    """The chosen hyperparameters that sit at an end of their grid (with more than two
    values): ``{name: value}``. An optimum at an edge may lie outside the grid."""
    edges = {}
    for key, value in selected.params.items():
        values = sorted({params[key] for params, _ in selected.table})
        if len(values) > 2 and value in (values[0], values[-1]):
            edges[key] = value
    return edges


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
        ``(W, B)`` (``W_init``, ``B_init`` of :func:`~amtl_cvx.algorithms.fit_alternating`);
        the first point of a new ``lam`` starts from the first point of the previous
        ``lam``. Each fit still runs to its own KKT certificate; since the problem is
        not convex, a warm start may end at another stationary point than the
        single-task start would (``warm_start=False`` fits every point from the
        single-task models).
    on_fit : callable, optional
        Called as ``on_fit(params, val_error)`` after each grid point (progress).
    **fit_kwargs
        Passed to :func:`amtl_cvx.algorithms.fit_alternating` or
        :func:`amtl_cvx.algorithms.fit_curriculum` (``backend``, ``ridge``, ``s``, ``sigma`` ...).
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
