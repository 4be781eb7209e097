"""The benchmark's problem instances and argument checks.

:func:`make_bench_instance` generates the planted problem of one size ``(T, d)``
(:func:`amtl_cvx.make_regression_tasks`, ``n_samples`` training rows per task) with the
data of its B-step and W-step: ``W`` for the B-step are single-task ridge fits (penalty
``lam``), the prices ``p = mu L(W)``; ``B`` for the W-step is the fast B-step solution at
that ``W`` and the weights ``a = 1 + mu B.sum(1)`` (``c = 1``, ``ridge = 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Any, Sequence

import numpy as np

from amtl_cvx._validation import check_scalar
from amtl_cvx.problems.objective import loss_weights, task_losses

__all__ = ["BenchInstance", "make_bench_instance"]


@dataclass(frozen=True)
class BenchInstance:
    """A generated planted problem with the data of its B-step and W-step.

    Attributes
    ----------
    T, d : int
    data : MultiTaskData
        Training split (``n_samples`` rows per task).
    lam, mu : float
    W : numpy.ndarray, shape (d, T)
        Single-task ridge fits (penalty ``lam``): the B-step's fixed ``W``.
    penalty : numpy.ndarray, shape (T,)
        B-step prices ``p = mu * L(W)``.
    B : numpy.ndarray, shape (T, T)
        The fast B-step solution at ``W``: the W-step's fixed ``B``.
    weights : numpy.ndarray, shape (T,)
        W-step loss weights ``a = 1 + mu * B.sum(1)``.
    """

    T: int
    d: int
    data: Any
    lam: float
    mu: float
    W: np.ndarray
    penalty: np.ndarray
    B: np.ndarray
    weights: np.ndarray

    # the attributes :mod:`amtl_cvx.tools.subproblems` reads from an instance
    @property
    def loss(self) -> str:
        """Always ``"squared"``."""
        return "squared"

    @property
    def ridge(self) -> float:
        """Always 0."""
        return 0.0

    @property
    def n_tasks(self) -> int:
        """Number of tasks T."""
        return self.T

    @property
    def n_features(self) -> int:
        """Number of features d."""
        return self.d


def make_bench_instance(
    T: int,
    d: int,
    *,
    lam: float = 1.0,
    mu: float = 0.1,
    n_samples: int = 30,
    random_state: int | None = 0,
    tol: float = 1e-10,
) -> BenchInstance:
    """Generate the planted problem of size ``(T, d)`` and its step data.

    Parameters
    ----------
    T : int
        Number of tasks (``>= 2``).
    d : int
        Number of features (``>= 1``).
    lam : float, default=1.0
    mu : float, default=0.1
    n_samples : int, default=30
        Training rows per task.
    random_state : int or None, default=0
    tol : float, default=1e-10
        Tolerance of the fast B-step that provides ``B``.

    Returns
    -------
    BenchInstance
    """
    from amtl_cvx.algorithms.single_task import fit_single_task
    from amtl_cvx.data import make_regression_tasks
    import solvers.transfer as fast_transfer

    T = check_int(T, "T", 2)
    d = check_int(d, "d", 1)
    n_samples = check_int(n_samples, "n_samples", 1)
    lam = check_scalar(lam, "lam", strict=True)
    mu = check_scalar(mu, "mu")
    ds = make_regression_tasks(
        n_tasks=T, n_features=d, n_samples=n_samples, n_val=1, n_test=1,
        n_parents=min(2, max(1, T // 3)), random_state=random_state,
    )
    data = ds.train
    W = fit_single_task(data, lam, "squared")
    penalty = mu * task_losses(W, data, "squared")
    B = np.asarray(fast_transfer.solve_transfer(W, penalty, lam, tol=tol).solution, dtype=np.float64)
    weights = loss_weights(B, np.ones(T), mu)
    return BenchInstance(T, d, data, lam, mu, W, penalty, B, weights)


# --------------------------------------------------------------------------- checks


def check_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int ``>= minimum``; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (Integral, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_ints(values: Any, name: str, minimum: int) -> list[int]:
    """``values`` (one or several ints ``>= minimum``) sorted, without repeats."""
    if isinstance(values, (Integral, np.integer)) and not isinstance(values, bool):
        values = [values]
    try:
        values = list(values)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of integers, got {values!r}") from None
    if not values:
        raise ValueError(f"{name} must hold at least one value")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (Integral, np.integer)) or v < minimum:
            raise ValueError(f"{name} must hold integers >= {minimum}, got {v!r}")
        out.append(int(v))
    return sorted(set(out))


def check_names(values: Any, name: str, allowed: Sequence[str], upper: bool = False) -> list[str]:
    """``values`` (one or several names among ``allowed``) in order, without repeats."""
    if isinstance(values, str):
        values = [values]
    try:
        values = [str(v).upper() if upper else str(v) for v in values]
    except TypeError:
        raise ValueError(f"{name} must be a sequence of names among {tuple(allowed)}") from None
    for v in values:
        if v not in allowed:
            raise ValueError(f"{name} must name values among {tuple(allowed)}, got {v!r}")
    if not values:
        raise ValueError(f"{name} must name at least one of {tuple(allowed)}")
    return list(dict.fromkeys(values))
