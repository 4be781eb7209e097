"""The result object every fast solver returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SolverResult"]


@dataclass(frozen=True)
class SolverResult:
    """Outcome of one fast solve.

    Attributes
    ----------
    solution : numpy.ndarray or tuple of numpy.ndarray
        The minimiser found (for a joint step, a tuple such as ``(w, b)``).
    objective : float
        Objective value at ``solution``, with the exact scaling stated in the
        solver's docstring.
    n_iter : int
        Iterations of the solver's main loop.
    converged : bool
        True when ``certificate <= tol`` at exit.
    certificate : float
        The stopping certificate at exit (its definition is given by each solver:
        a relative KKT residual or a relative gradient norm).
    tol : float
        The tolerance the certificate was compared with.
    history : tuple of float
        Optional per-iteration certificate values (empty unless requested).
    duality_gap : float or None
        The relative duality gap at ``solution`` (``(P - D) / P``, ``P`` the objective and
        ``D`` the dual value of a dual-feasible point built from ``solution``), for the
        solvers whose problem has a cheap dual (the first-order B-step); ``None`` for the
        others.
    """

    solution: np.ndarray | tuple[np.ndarray, ...]
    objective: float
    n_iter: int
    converged: bool
    certificate: float
    tol: float
    history: tuple[float, ...] = field(default=())
    duality_gap: float | None = None


@dataclass(frozen=True)
class _Stop:
    """A solver's stopping rule (private): the certificate tolerance ``tol``, the
    iteration cap ``max_iter`` and whether to ``record`` the certificate per iteration."""

    tol: float
    max_iter: int
    record: bool
