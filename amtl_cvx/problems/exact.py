"""Solve a CVXPY statement exactly: explicit tight tolerances, status checked.

CVXPY passes loose defaults to OSQP (``eps_abs = eps_rel = 1e-5``); here every solver
gets its tolerances set explicitly (:data:`SOLVER_OPTIONS`), and any status other than
``optimal`` -- ``optimal_inaccurate`` included -- raises :class:`ExactSolveError`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import cvxpy as cp

__all__ = ["ExactSolveError", "SolveStats", "SOLVER_OPTIONS", "AUTO_LADDER", "solve_problem", "available_solvers"]

#: Tight options per solver: the tightest each reaches reliably on our statements
#: (measured on the release data and random instances). OSQP is an ADMM method: it is
#: run to 1e-9 and then *polished* (an exact solve of the KKT system on the identified
#: active set), which makes its answer exact rather than approximate. The interior-point
#: solvers run at 1e-9: asked for 1e-10, Clarabel stops with ``InsufficientProgress`` on
#: the release B-step and ECOS reports ``optimal_inaccurate``.
SOLVER_OPTIONS: dict[str, dict[str, Any]] = {
    "OSQP": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iter": 400_000, "polishing": True},
    "CLARABEL": {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9, "max_iter": 400},
    "ECOS": {"abstol": 1e-9, "reltol": 1e-9, "feastol": 1e-9, "max_iters": 400},
}

#: The automatic choice (``solver=None``): a ladder of strict attempts, tightest first.
#: Each rung either returns status ``optimal`` at its own tolerance or hands over to
#: the next; ``SolveStats.note`` records what failed before. Measured on 40 random
#: logistic W-steps (T = 6, d = 4, 5 to 25 rows per task): ECOS at 1e-9 reached
#: ``optimal`` on 31, Clarabel at 1e-9 on 37 and Clarabel at 1e-8 on all 40; OSQP either
#: converges within a few thousand iterations or stalls (degenerate B-steps).
AUTO_LADDER: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "qp": [
        ("OSQP", {"max_iter": 50_000}),
        ("CLARABEL", {}),
        ("CLARABEL", {"tol_gap_abs": 1e-8, "tol_gap_rel": 1e-8, "tol_feas": 1e-8}),
    ],
    "exp_cone": [
        ("ECOS", {}),
        ("CLARABEL", {}),
        ("CLARABEL", {"tol_gap_abs": 1e-8, "tol_gap_rel": 1e-8, "tol_feas": 1e-8}),
    ],
}


class ExactSolveError(RuntimeError):
    """An exact solver did not return status ``optimal``."""


@dataclass(frozen=True)
class SolveStats:
    """Statistics of one exact solve.

    Attributes
    ----------
    solver : str
    status : str
        Always ``"optimal"`` (anything else raised).
    compile_time : float
        Seconds CVXPY spent compiling (small on a DPP re-solve).
    solve_time : float
        Seconds reported by the solver, or wall time of the call when it reports none.
    n_iter : int or None
        Solver iterations when reported.
    tolerance : float
        The tolerance at which the solver certified optimality (its gap or
        ``eps_abs`` setting).
    note : str
        Set when the automatic ladder moved past a first attempt: what failed before.
    """

    solver: str
    status: str
    compile_time: float
    solve_time: float
    n_iter: int | None
    tolerance: float = float("nan")
    note: str = ""


def available_solvers() -> list[str]:
    """The exact solvers of :data:`SOLVER_OPTIONS` installed here."""
    installed = set(cp.installed_solvers())
    return [s for s in SOLVER_OPTIONS if s in installed]


def solve_problem(
    problem: cp.Problem, solver: str, *, name: str = "problem", warm_start: bool = False, **options: Any
) -> SolveStats:
    """Solve ``problem`` with ``solver`` at tight tolerances; raise unless optimal.

    Parameters
    ----------
    problem : cvxpy.Problem
    solver : {"OSQP", "CLARABEL", "ECOS"}
    name : str
        What is being solved, for error messages.
    warm_start : bool, default=False
        Let CVXPY reuse the solver's cached state from the previous solve. Off by
        default: measured, Clarabel re-solving a DPP statement from its cache stops at
        ``optimal_inaccurate`` on logistic W-steps that it solves from scratch.
    **options
        Override entries of :data:`SOLVER_OPTIONS` for this call.

    Raises
    ------
    ValueError
        Unknown solver name, or a solver that does not accept the problem class.
    ExactSolveError
        The solver failed or returned any status other than ``optimal``.
    """
    solver = solver.upper()
    if solver not in SOLVER_OPTIONS:
        raise ValueError(f"solver must be one of {sorted(SOLVER_OPTIONS)}, got {solver!r}")
    opts = {**SOLVER_OPTIONS[solver], **options}
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # CVXPY's "Solution may be inaccurate" duplicates the status checked below,
            # which raises ExactSolveError naming the solver, the status and the options.
            warnings.filterwarnings("ignore", message="Solution may be inaccurate", category=UserWarning)
            problem.solve(solver=solver, warm_start=warm_start, **opts)
    except cp.error.SolverError as exc:
        raise ExactSolveError(f"{solver} failed on the {name}: {exc}") from exc
    wall = time.perf_counter() - t0
    if problem.status != cp.OPTIMAL:
        raise ExactSolveError(
            f"{solver} returned status {problem.status!r} on the {name} "
            f"(needs 'optimal'; options {opts})"
        )
    stats = problem.solver_stats
    solve_time = stats.solve_time if stats.solve_time is not None else wall
    compile_time = problem.compilation_time if problem.compilation_time is not None else 0.0
    return SolveStats(
        solver=solver,
        status=problem.status,
        compile_time=float(compile_time),
        solve_time=float(solve_time),
        n_iter=stats.num_iters,
        tolerance=float(opts.get("eps_abs", opts.get("tol_gap_rel", opts.get("reltol", float("nan"))))),
    )

