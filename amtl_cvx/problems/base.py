"""What every CVXPY statement shares: building, solving, unscaling."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import cvxpy as cp
import numpy as np

from amtl_cvx.exact import AUTO_LADDER, ExactSolveError, SolveStats, solve_problem

__all__ = ["ExactResult", "StatedProblem", "DPP_MAX_ENTRIES"]

#: Largest (variable entries) x (parameter entries) for which a statement whose data
#: multiply a matrix variable (B-step: ``A @ C``; W-step: ``W @ C``) is built as DPP.
#: CVXPY's parametric canonicalisation maps every parameter entry to every variable
#: entry it touches, ``T^3 d`` numbers here: measured, the B-step at T = 500, d = 20
#: asked for a dense 250,001 x 20,501 array (38 GiB). Beyond the limit the statement is
#: rebuilt with constant data at every ``set`` (still asserted DCP), and CVXPY compiles
#: it afresh on each solve.
DPP_MAX_ENTRIES = 2e8

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExactResult:
    """Solution of one exactly solved subproblem.

    Attributes
    ----------
    solution : numpy.ndarray or tuple of numpy.ndarray
        In the problem's original (unscaled) units.
    objective : float
        The subproblem's objective at ``solution``, original units, as reported by the
        solver (``problem.value`` times the scale).
    stats : SolveStats
        Solver, status, compile and solve times, iterations.
    """

    solution: np.ndarray | tuple[np.ndarray, ...]
    objective: float
    stats: SolveStats


class StatedProblem:
    """Base class: holds ``self.problem`` (DPP) and the objective scale.

    Subclasses build ``self.problem`` in ``__init__``, set parameters in ``set`` and
    implement ``_solution`` to read (and unscale) the variables.
    """

    problem: cp.Problem
    default_solver: str = "OSQP"
    name: str = "problem"
    #: Objective in original units = ``scale * problem.value``.
    scale: float = 1.0

    #: False when the statement is rebuilt with constant data (see DPP_MAX_ENTRIES).
    parametric: bool = True

    def _finish_build(self) -> None:
        if self.parametric and not self.problem.is_dcp(dpp=True):  # pragma: no cover
            raise AssertionError(f"the {self.name} statement is not DPP")
        if not self.problem.is_dcp():  # pragma: no cover - a statement bug
            raise AssertionError(f"the {self.name} statement is not DCP")

    def _solution(self) -> Any:
        raise NotImplementedError

    def solve(self, solver: str | None = None, **options: Any) -> ExactResult:
        """Solve at tight tolerances (see :data:`amtl_cvx.exact.SOLVER_OPTIONS`).

        Parameters
        ----------
        solver : {"OSQP", "CLARABEL", "ECOS"} or None
            A named solver is used alone, at its tight tolerance: any status other than
            ``optimal`` raises :class:`amtl_cvx.exact.ExactSolveError`. ``None`` climbs
            the ladder :data:`amtl_cvx.exact.AUTO_LADDER` (QPs: OSQP, then Clarabel at
            1e-9, then at 1e-8;
            exponential-cone logistic statements: ECOS, then Clarabel at 1e-9, then
            at 1e-8), each rung strict; the error is raised only when every rung fails.
            ``stats.tolerance`` is the tolerance certified and ``stats.note`` what failed
            before.
        **options
            Solver options overriding the defaults (named solver only).
        """
        if solver is not None:
            return self._solve_with(solver.upper(), options)
        failures: list[str] = []
        for rung_solver, rung_options in AUTO_LADDER[self.cone]:
            try:
                result = self._solve_with(rung_solver, rung_options)
            except ExactSolveError as exc:
                logger.info("%s; trying the next solver", exc)
                failures.append(str(exc))
                continue
            if failures:
                result = ExactResult(result.solution, result.objective, replace(result.stats, note="; ".join(failures)))
            return result
        raise ExactSolveError(f"every exact solver failed on the {self.name}: " + "; ".join(failures))

    @property
    def cone(self) -> str:
        """``"exp_cone"`` for logistic statements, ``"qp"`` otherwise."""
        return "exp_cone" if getattr(self, "loss", "squared") == "logistic" else "qp"

    def _solve_with(self, solver: str, options: dict) -> ExactResult:
        stats = solve_problem(self.problem, solver, name=self.name, **options)
        return ExactResult(self._solution(), float(self.scale * self.problem.value), stats)
