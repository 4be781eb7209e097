"""Checks and warnings shared by the multi-task baselines (:mod:`amtl_cvx.baselines.multitask`)."""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from amtl_cvx._validation import check_array
from amtl_cvx.algorithms import ConvergenceWarning
from amtl_cvx.data import MultiTaskData


def _check_data(data: Any, loss: str) -> MultiTaskData:
    if not isinstance(data, MultiTaskData):
        raise ValueError(f"data must be a MultiTaskData, got {type(data).__name__}")
    data.check_labels(loss)
    return data


#: The baselines' solvers: their fast solvers or their CVXPY statements (the first-order
#: family of :mod:`solvers` covers AMTL's subproblems, not the baselines').
_BASELINE_BACKENDS = ("fast", "cvxpy")


def _check_backend(backend: Any, solver: Any) -> None:
    if backend not in _BASELINE_BACKENDS:
        raise ValueError(f"backend must be one of {_BASELINE_BACKENDS}, got {backend!r}")
    if solver is not None and (not isinstance(solver, str) or backend != "cvxpy"):
        raise ValueError(
            f"solver names a CVXPY solver and applies only to backend='cvxpy', got "
            f"solver={solver!r} with backend={backend!r}"
        )


def _check_int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return int(value)


def _warn_unless(result, what: str) -> None:
    if not result.converged:
        warnings.warn(
            f"{what}: the fast solver stopped after {result.n_iter} iterations with certificate "
            f"{result.certificate:.2e} > tol {result.tol:.1e}; raise max_iter, or use backend='cvxpy'",
            ConvergenceWarning,
            stacklevel=3,
        )



def _W(W: Any, data: MultiTaskData) -> np.ndarray:
    W = check_array(W, "W", ndim=2)
    if W.shape != (data.n_features, data.n_tasks):
        raise ValueError(f"W must have shape {(data.n_features, data.n_tasks)}, got {W.shape}")
    return W
