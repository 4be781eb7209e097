r"""The statements of a :class:`~amtl_cvx.problems.custom.Variant`: its custom steps as
:class:`~amtl_cvx.problems.base.StatedProblem` objects, solved like the built-in ones.

How a custom statement is solved (:class:`CustomStatement`, a
:class:`~amtl_cvx.problems.base.StatedProblem`): with the built-in statements' units,
solver ladder, tolerances and status discipline (:meth:`StatedProblem.solve
<amtl_cvx.problems.base.StatedProblem.solve>`; ``optimal_inaccurate`` is a failure).

- Units. The unknowns handed to the user are affine expressions of the solver's
  variables in the built-in units and the objective is divided by the built-in scale:
  W-step and curriculum ``W = sigma V`` with ``sigma`` the root mean square of the
  targets (squared loss), objective over ``sigma^2``; B-step ``B = C / D`` with ``D``
  the column norms of ``W`` and the objective over ``lam max|W|^2``. The B-step's units
  depend on ``W``: they are taken at the first solve and kept (the statement stays DPP)
  until a column norm or ``max|W|`` moves by more than :data:`UNIT_DRIFT` (a factor 2),
  when the statement is rebuilt (the user's function is called again).
- Checks when the statement is built: the function returns a ``cp.Problem`` that
  minimises, uses no variable but the step's own (right object, right shape) and
  no parameter without a value, is DCP and -- unless the variant says ``dpp=False`` --
  DPP; otherwise :class:`~amtl_cvx.problems.custom.VariantError` names the offending subexpression.
- Not covered: the memory model of :mod:`amtl_cvx.problems.memory` (a custom statement
  is compiled as written) and the built-in B-step's per-entry KKT polish (a variant's
  B-step has another optimality condition); each solve is certified by the solver's
  status ``optimal`` at the tight tolerances of :data:`amtl_cvx.problems.exact.SOLVER_OPTIONS`.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import cvxpy as cp
import numpy as np

from amtl_cvx.data.container import MultiTaskData
from amtl_cvx.problems._loss import loss_expression, target_scale
from amtl_cvx.problems.base import ExactResult, StatedProblem
from amtl_cvx.problems.custom import _STEP_TITLES, CurriculumStep, TasksStep, TransferStep, Variant, VariantError

__all__ = [
    "CustomStatement",
    "CustomTransferStatement",
    "CustomTasksStatement",
    "CustomCurriculumStatement",
    "UNIT_DRIFT",
]

logger = logging.getLogger(__name__)

#: The B-step statement of a variant is rebuilt in new units when a column norm of
#: ``W`` or ``max|W|`` has moved by more than this factor since it was built.
UNIT_DRIFT = 2.0


def _is_dcp(obj: Any, dpp: bool) -> bool:
    return bool(obj.is_dcp(dpp=True) if dpp else obj.is_dcp())


def _culprit(obj: Any, dpp: bool) -> Any:
    """The smallest subexpression of ``obj`` that is not DCP (not DPP with ``dpp``)."""
    for arg in getattr(obj, "args", []):
        if hasattr(arg, "is_dcp") and not _is_dcp(arg, dpp):
            return _culprit(arg, dpp)
    return obj


def _nonconvex(expr: Any) -> Any:
    """The smallest term of a DCP but not convex ``expr`` that is not convex."""
    for arg in getattr(expr, "args", []):
        if hasattr(arg, "is_convex") and not arg.is_convex():
            return _nonconvex(arg) if isinstance(arg, cp.atoms.affine.add_expr.AddExpression) else arg
    return expr


def _show(obj: Any, limit: int = 160) -> str:
    text = str(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class CustomStatement(StatedProblem):
    """A user's statement of one step, solved like the built-in statements.

    Subclasses build the step object (:meth:`_make_step`), set its parameters (``set``)
    and read the solution (``_solution``). The statement is ``Minimize(user objective /
    scale)`` subject to the user's constraints and the step's structural ones.
    """

    kind: str = ""

    def __init__(self, variant: Variant) -> None:
        self.variant = variant
        self.dpp = bool(getattr(variant, "dpp", True))
        self.parametric = self.dpp
        self.name = f"custom {_STEP_TITLES[self.kind]} of the {variant._label()}"
        self._user_objective: cp.Expression | None = None

    # -- building ---------------------------------------------------------------------
    def _own_variables(self) -> list[cp.Variable]:
        raise NotImplementedError

    def _describe_unknowns(self) -> str:
        raise NotImplementedError

    def _adopt(self, step: Any, scale: float) -> None:
        """Call the variant on ``step``, check its statement, and keep it (scaled)."""
        where = f"{self.variant._label()}, {self.kind}"
        try:
            problem = getattr(self.variant, f"{self.kind}_problem")(step)
        except (ValueError, TypeError, IndexError) as exc:
            if isinstance(exc, VariantError):
                raise
            raise VariantError(
                f"{where}: building the statement failed ({exc}); the step's unknowns are "
                f"{self._describe_unknowns()}"
            ) from exc
        if not isinstance(problem, cp.Problem):
            raise VariantError(f"{where} must return a cvxpy.Problem, got {type(problem).__name__}")
        if not isinstance(problem.objective, cp.Minimize):
            raise VariantError(
                f"{where}: the statement must minimise (cp.Minimize), got {type(problem.objective).__name__}")
        own = {v.id for v in self._own_variables()}
        used = problem.variables()
        for v in used:
            if v.id not in own:
                raise VariantError(
                    f"{where}: variable {v.name()!r} of shape {v.shape} is not the step's own; "
                    f"write the statement with {self._describe_unknowns()} (no other variables)"
                )
        if not used:
            raise VariantError(f"{where}: the statement does not involve {self._describe_unknowns()}")
        for p in problem.parameters():
            if p.value is None:
                raise VariantError(f"{where}: parameter {p.name()!r} has no value")
        constraints = list(problem.constraints)
        have = {id(con) for con in constraints}
        constraints += [con for con in self._structural() if id(con) not in have]
        scaled = cp.Problem(cp.Minimize(problem.objective.expr / scale), constraints)
        if not problem.objective.expr.is_convex():
            term = _nonconvex(problem.objective.expr)
            what = f"{_show(term)!r} is {term.curvature.lower()}" if term.is_dcp() else \
                f"{_show(_culprit(term, False))!r} is not DCP"
            raise VariantError(f"{where}: the statement is not DCP: a minimised objective must be "
                               f"convex, and its term {what}")
        for con in problem.constraints:
            if not _is_dcp(con, False):
                raise VariantError(f"{where}: the statement is not DCP: its constraint "
                                   f"{_show(_culprit(con, False))!r} is not DCP")
        if self.dpp:
            parts = [(problem.objective.expr, "objective"), *((con, "constraint") for con in problem.constraints)]
            for part, label in parts:
                if not _is_dcp(part, True):
                    raise VariantError(
                        f"{where}: the statement is DCP but not DPP: its {label} contains "
                        f"{_show(_culprit(part, True))!r}, which is not DPP (a parameter times "
                        "an expression of parameters, or a parameter inside a nonlinear atom); "
                        "restate it, or pass dpp=False to the variant (compiled at every solve)"
                    )
            if not scaled.is_dcp(dpp=True):  # pragma: no cover - the parts were checked
                raise VariantError(f"{where}: the statement is not DPP")
        elif not scaled.is_dcp():  # pragma: no cover - the parts were checked
            raise VariantError(f"{where}: the statement is not DCP")
        self.problem, self.scale, self._user_objective = scaled, float(scale), problem.objective.expr
        self._cone = "qp" if scaled.is_qp() else "exp_cone"

    def _structural(self) -> list:
        return []

    # -- solving ---------------------------------------------------------------------
    @property
    def cone(self) -> str:
        """``"qp"`` when the statement is a QP (ladder OSQP, Clarabel), else
        ``"exp_cone"`` (the conic ladder ECOS, Clarabel)."""
        return self._cone

    def _form(self, path: str) -> str:
        return "dpp" if self.parametric else "constant"

    def _check_memory(self, solver: str, form: str) -> None:
        # Custom statements are outside the memory model (amtl_cvx.problems.memory).
        return None

    def _solve_with(self, solver: str, options: dict) -> ExactResult:
        with warnings.catch_warnings():
            # dpp=False was asked for: CVXPY's "not DPP" warning says only that.
            warnings.filterwarnings("ignore", message="You are solving a parameterized problem that is not DPP")
            result = super()._solve_with(solver, options)
        # the objective at the returned (projected) solution, original units
        return ExactResult(result.solution, self.value_at(result.solution), result.stats)

    # -- evaluating ------------------------------------------------------------------
    def _assign(self, solution: Any) -> None:
        raise NotImplementedError

    def value_at(self, solution: Any) -> float:
        """The user's objective at ``solution`` (original units, current parameters)."""
        self._assign(solution)
        value = self._user_objective.value
        return float("inf") if value is None else float(value)

    def violation_at(self, solution: Any) -> float:
        """Largest violation of the statement's constraints at ``solution`` (original units)."""
        self._assign(solution)
        worst = 0.0
        for con in self.problem.constraints:
            v = con.violation()
            if v is not None and np.size(v):
                worst = max(worst, float(np.max(v)))
        return worst


class CustomTransferStatement(CustomStatement):
    """A variant's B-step (see :class:`TransferStep`)."""

    kind = "transfer"

    def __init__(self, variant: Variant, data: MultiTaskData, loss: str, *, lam: float, mu: float,
                 c: np.ndarray, ridge: float) -> None:
        super().__init__(variant)
        self.data, self.loss_name = data, loss
        self.lam, self.mu, self.c, self.ridge = float(lam), float(mu), np.asarray(c, dtype=np.float64), float(ridge)
        d, T = data.n_features, data.n_tasks
        self.Wp = cp.Parameter((d, T), name="W")
        self.price = cp.Parameter(T, nonneg=True, name="price")
        self.units: tuple[np.ndarray, float] | None = None
        self.n_builds = 0

    @staticmethod
    def _units_of(W: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
        norms = np.linalg.norm(W, axis=0)
        sigma = float(np.max(np.abs(W))) or 1.0
        return np.where(norms > 0, norms, 1.0), lam * sigma**2

    def _build(self, units: tuple[np.ndarray, float]) -> None:
        D, kappa = units
        T = self.data.n_tasks
        self.C = cp.Variable((T, T), nonneg=True, name="C")
        B = cp.multiply(np.repeat((1.0 / D)[:, None], T, axis=1), self.C)
        self._diag = [cp.diag(self.C) == 0]
        step = TransferStep(
            B=B, W=self.Wp, price=self.price,
            objective=self.lam * cp.sum_squares(self.Wp - self.Wp @ B) + self.price @ cp.sum(B, axis=1),
            constraints=list(self._diag), lam=self.lam, mu=self.mu, ridge=self.ridge, c=self.c,
            data=self.data, loss=self.loss_name,
        )
        self._step_constraints = step.constraints
        self._adopt(step, kappa)
        self.units = units
        self.n_builds += 1

    def _structural(self) -> list:
        return self._step_constraints

    def _own_variables(self) -> list[cp.Variable]:
        return [self.C]

    def _describe_unknowns(self) -> str:
        T = self.data.n_tasks
        return f"step.B (shape ({T}, {T}))"

    def set(self, W: np.ndarray, penalty: np.ndarray, lam: float) -> "CustomTransferStatement":
        """Set ``W`` (d x T) and the prices ``penalty`` (T,) (``lam`` is the fit's)."""
        if float(lam) != self.lam:
            raise ValueError(f"lam must be the variant statement's {self.lam:g}, got {lam!r}")
        self.Wp.value = np.asarray(W, dtype=np.float64)
        self.price.value = np.asarray(penalty, dtype=np.float64)
        if self.units is None:
            self._build(self._units_of(self.Wp.value, self.lam))
        return self

    def solve(self, solver: str | None = None, **options: Any) -> ExactResult:
        """Solve (see :meth:`StatedProblem.solve`), first rebuilding the statement in new
        units if ``W`` has drifted by more than :data:`UNIT_DRIFT` since it was built."""
        D, kappa = self._units_of(self.Wp.value, self.lam)
        D0, kappa0 = self.units
        drift = max(float(np.max(np.abs(np.log(D / D0)))), 0.5 * abs(float(np.log(kappa / kappa0))))
        if drift > np.log(UNIT_DRIFT):
            logger.debug("%s: rebuilt in new units (drift x%.2f)", self.name, float(np.exp(drift)))
            self._build((D, kappa))
        return super().solve(solver, **options)

    def _assign(self, B: np.ndarray) -> None:
        self.C.value = self.units[0][:, None] * np.asarray(B, dtype=np.float64)

    def _solution(self) -> np.ndarray:
        B = np.maximum(self.C.value, 0.0) / self.units[0][:, None]
        np.fill_diagonal(B, 0.0)
        return B


class CustomTasksStatement(CustomStatement):
    """A variant's W-step (see :class:`TasksStep`)."""

    kind = "tasks"

    def __init__(self, variant: Variant, data: MultiTaskData, loss: str, *, lam: float, mu: float,
                 c: np.ndarray, ridge: float) -> None:
        super().__init__(variant)
        self.data, self.loss_name = data, loss
        self.lam, self.ridge = float(lam), float(ridge)
        d, T = data.n_features, data.n_tasks
        self.sigma = target_scale(data.ys, loss)
        self.V = cp.Variable((d, T), name="W")
        W = self.sigma * self.V
        self.Bp = cp.Parameter((T, T), nonneg=True, name="B")
        self.weights = cp.Parameter(T, nonneg=True, name="weights")
        losses = [
            self.sigma**2 * loss_expression(X, y / self.sigma, self.V[:, t], loss)
            for t, (X, y) in enumerate(zip(data.Xs, data.ys))
        ]
        penalty = self.lam * cp.sum_squares(W @ (np.eye(T) - self.Bp)) + self.ridge * cp.sum_squares(W)
        step = TasksStep(
            W=W, B=self.Bp, weights=self.weights, losses=losses, penalty=penalty,
            objective=self.weights @ cp.hstack(losses) + penalty, constraints=[],
            lam=self.lam, mu=float(mu), ridge=self.ridge, c=np.asarray(c, dtype=np.float64),
            data=data, loss=loss,
        )
        # parameter values are needed by the checks (and by CVXPY's DPP analysis)
        self.Bp.value = np.zeros((T, T))
        self.weights.value = np.ones(T)
        self._adopt(step, self.sigma**2)

    def _own_variables(self) -> list[cp.Variable]:
        return [self.V]

    def _describe_unknowns(self) -> str:
        return f"step.W (shape ({self.data.n_features}, {self.data.n_tasks}))"

    def set(self, B: np.ndarray, lam: float, weights: np.ndarray, ridge: float = 0.0) -> "CustomTasksStatement":
        """Set ``B`` and the loss ``weights`` (``lam`` and ``ridge`` are the fit's)."""
        if float(lam) != self.lam or float(ridge) != self.ridge:
            raise ValueError(f"lam and ridge must be the variant statement's ({self.lam:g}, {self.ridge:g})")
        self.Bp.value = np.asarray(B, dtype=np.float64)
        self.weights.value = np.asarray(weights, dtype=np.float64)
        return self

    def _assign(self, W: np.ndarray) -> None:
        self.V.value = np.asarray(W, dtype=np.float64) / self.sigma

    def _solution(self) -> np.ndarray:
        return self.sigma * self.V.value


class CustomCurriculumStatement(CustomStatement):
    """A variant's curriculum step for one new task (see :class:`CurriculumStep`)."""

    kind = "curriculum"

    def __init__(self, variant: Variant, data: MultiTaskData, loss: str, task: int, *, lam: float,
                 mu: float, c: np.ndarray, ridge: float) -> None:
        super().__init__(variant)
        self.data, self.task = data, int(task)
        self.lam, self.ridge = float(lam), float(ridge)
        d, T = data.n_features, data.n_tasks
        X, y = data.Xs[task], data.ys[task]
        self.sigma = target_scale([y], loss)
        self.v = cp.Variable(d, name="w")
        self.b = cp.Variable(T, nonneg=True, name="b")
        w = self.sigma * self.v
        self.Wp = cp.Parameter((d, T), name="W")
        self.q = cp.Parameter(T, nonneg=True, name="q")
        self.Bp = cp.Parameter((T, T), nonneg=True, name="B")
        self.blocked = cp.Parameter(T, nonneg=True, name="blocked")
        self.Wp.value, self.q.value, self.Bp.value = np.zeros((d, T)), np.zeros(T), np.zeros((T, T))
        self.blocked.value = np.ones(T)
        L = self.sigma**2 * loss_expression(X, y / self.sigma, self.v, loss)
        self._step_constraints = [cp.multiply(self.blocked, self.b) == 0]
        step = CurriculumStep(
            w=w, b=self.b, W=self.Wp, q=self.q, B=self.Bp, blocked=self.blocked, loss=L,
            objective=L + self.lam * cp.sum_squares(w - self.Wp @ self.b) + self.q @ self.b
            + self.ridge * cp.sum_squares(w),
            constraints=list(self._step_constraints), task=self.task, X=X, y=y, lam=self.lam,
            mu=float(mu), ridge=self.ridge, c=np.asarray(c, dtype=np.float64), data=data, loss_name=loss,
        )
        self._adopt(step, self.sigma**2)

    def _structural(self) -> list:
        return self._step_constraints

    def _own_variables(self) -> list[cp.Variable]:
        return [self.v, self.b]

    def _describe_unknowns(self) -> str:
        return f"step.w (shape ({self.data.n_features},)) and step.b (shape ({self.data.n_tasks},))"

    def set(self, W: np.ndarray, learned: np.ndarray, q: np.ndarray, lam: float, ridge: float,
            B: np.ndarray | None = None) -> "CustomCurriculumStatement":
        """Set the learned tasks' ``W``, the mask ``learned``, prices ``q`` and the graph
        ``B`` learned so far (``lam`` and ``ridge`` are the fit's)."""
        if float(lam) != self.lam or float(ridge) != self.ridge:
            raise ValueError(f"lam and ridge must be the variant statement's ({self.lam:g}, {self.ridge:g})")
        learned = np.asarray(learned, dtype=bool)
        self.Wp.value = np.where(learned, np.asarray(W, dtype=np.float64), 0.0)
        self.q.value = np.where(learned, np.asarray(q, dtype=np.float64), 0.0)
        T = self.data.n_tasks
        self.Bp.value = np.zeros((T, T)) if B is None else np.where(learned[None, :], B, 0.0)
        self.blocked.value = (~learned).astype(np.float64)
        return self

    def _assign(self, solution: tuple[np.ndarray, np.ndarray]) -> None:
        w, b = solution
        self.v.value = np.asarray(w, dtype=np.float64) / self.sigma
        self.b.value = np.asarray(b, dtype=np.float64)

    def _solution(self) -> tuple[np.ndarray, np.ndarray]:
        b = np.maximum(self.b.value, 0.0)
        b[self.blocked.value > 0] = 0.0
        return self.sigma * self.v.value, b
