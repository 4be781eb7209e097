"""What every CVXPY statement shares: building, solving, unscaling."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import cvxpy as cp
import numpy as np

from amtl_cvx.problems.exact import AUTO_LADDER, ExactSolveError, SolveStats, solve_problem

from amtl_cvx.problems import memory

__all__ = ["ExactResult", "StatedProblem"]

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
    implement ``_solution`` to read (and unscale) the variables, ``_memory_args`` to
    describe their size to :func:`amtl_cvx.problems.memory.predict_peak` and
    ``_constant_problem`` to restate themselves with constant data.

    Memory (:mod:`amtl_cvx.problems.memory`): a statement is kept parametric (DPP) only
    when its DPP form fits :func:`_dpp_fits` on the cheapest solver path; a solve whose
    solver path makes the DPP form too large uses the constant-data statement instead,
    and a solve whose predicted peak exceeds half the available memory raises
    :class:`amtl_cvx.problems.memory.ExactMemoryError` before CVXPY is called.
    """

    problem: cp.Problem
    default_solver: str = "OSQP"
    name: str = "problem"
    #: Objective in original units = ``scale * problem.value``.
    scale: float = 1.0

    #: False when the statement is rebuilt with constant data at every ``set`` (its
    #: DPP form would not fit, see :mod:`amtl_cvx.problems.memory`).
    parametric: bool = True

    def _finish_build(self) -> None:
        if self.parametric and not self.problem.is_dcp(dpp=True):  # pragma: no cover
            raise AssertionError(f"the {self.name} statement is not DPP")
        if not self.problem.is_dcp():  # pragma: no cover - a statement bug
            raise AssertionError(f"the {self.name} statement is not DCP")

    def _solution(self) -> Any:
        raise NotImplementedError

    def _memory_args(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~amtl_cvx.problems.memory.predict_peak`, except the
        form and the path."""
        raise NotImplementedError

    def _constant_problem(self) -> cp.Problem:
        """The statement with the parameters' current values as constants."""
        raise NotImplementedError

    def predicted_peak(self, solver: str, form: str | None = None) -> float:
        """Predicted peak memory (bytes) of solving this statement with ``solver``.

        Parameters
        ----------
        solver : str
        form : {"dpp", "constant"}, optional
            Default: the form :meth:`solve` would use with ``solver``.
        """
        path = memory.solver_path(solver, getattr(self, "loss", "squared"))
        args = dict(self._memory_args())
        return memory.predict_peak(args.pop("statement"), form or self._form(path), path, **args)

    def _form(self, path: str) -> str:
        """``"dpp"`` or ``"constant"``: the form solved on ``path``."""
        return "dpp" if self.parametric and self._dpp_fits(path) else "constant"

    def _dpp_fits(self, path: str) -> bool:
        """Whether the DPP form's predicted peak on ``path`` is within the DPP budget."""
        args = dict(self._memory_args())
        peak = memory.predict_peak(args.pop("statement"), "dpp", path, **args)
        return peak <= min(memory.DPP_BUDGET_BYTES, memory.available_memory() / 8)

    def _check_memory(self, solver: str, form: str) -> None:
        peak = self.predicted_peak(solver, form)
        available = memory.available_memory()
        if peak > available / 2:
            args = self._memory_args()
            size = f"T = {args['n_tasks']}, d = {args['n_features']}"
            if args.get("n_rows"):
                size += f", {args['n_rows']:,} rows"
            raise memory.ExactMemoryError(
                f"the {self.name} statement ({size}) would need about {memory.format_bytes(peak)} "
                f"with {solver}, more than half of the {memory.format_bytes(available)} of memory "
                "available; verify one step at a time (amtl-cvx verify --step), use a smaller "
                "problem, or the fast solvers (backend='fast')"
            )

    def solve(self, solver: str | None = None, **options: Any) -> ExactResult:
        """Solve at tight tolerances (see :data:`amtl_cvx.problems.exact.SOLVER_OPTIONS`).

        Parameters
        ----------
        solver : {"OSQP", "CLARABEL", "ECOS"} or None
            A named solver is used alone, at its tight tolerance: any status other than
            ``optimal`` raises :class:`amtl_cvx.problems.exact.ExactSolveError`. ``None`` climbs
            the ladder :data:`amtl_cvx.problems.exact.AUTO_LADDER` (QPs: OSQP, then Clarabel at
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
        for rung_solver, rung_options in self.ladder:
            try:
                result = self._solve_with(rung_solver, dict(rung_options))
            except ExactSolveError as exc:
                logger.info("%s; trying the next solver", exc)
                failures.append(str(exc))
                continue
            if failures:
                result = ExactResult(result.solution, result.objective, replace(result.stats, note="; ".join(failures)))
            return result
        raise ExactSolveError(f"every exact solver failed on the {self.name}: " + "; ".join(failures))

    @property
    def ladder(self) -> list[tuple[str, dict[str, Any]]]:
        """The automatic solver ladder (``solver=None``): :data:`amtl_cvx.problems.exact.AUTO_LADDER`
        of the statement's cone."""
        return AUTO_LADDER[self.cone]

    @property
    def cone(self) -> str:
        """``"exp_cone"`` for logistic statements, ``"qp"`` otherwise."""
        return "exp_cone" if getattr(self, "loss", "squared") == "logistic" else "qp"

    def _solve_with(self, solver: str, options: dict) -> ExactResult:
        form = self._form(memory.solver_path(solver, getattr(self, "loss", "squared")))
        self._check_memory(solver, form)
        problem = self._constant_problem() if self.parametric and form == "constant" else self.problem
        stats = solve_problem(problem, solver, name=self.name, **options)
        return ExactResult(self._solution(), float(self.scale * problem.value), stats)
