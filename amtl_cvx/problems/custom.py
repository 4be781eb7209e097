r"""Custom statements: an AMTL variant written as CVXPY, one step at a time.

A :class:`Variant` replaces any of the three steps of Algorithms 1 and 2 by a statement
the user writes in CVXPY, from the step's parameters and unknowns in **original units**
(the units of :mod:`amtl_cvx.objective`):

- ``transfer(step: TransferStep) -> cp.Problem``: the B-step, for fixed ``W``;
- ``tasks(step: TasksStep) -> cp.Problem``: the W-step, for fixed ``B``;
- ``curriculum(step: CurriculumStep) -> cp.Problem``: one step of Algorithm 2.

Each step object carries the built-in statement's objective (``step.objective``), so a
variant usually adds a term or a constraint to it::

    ColumnSums = Variant(transfer=lambda s: cp.Problem(cp.Minimize(s.objective),
                                                       [cp.sum(s.B, axis=0) <= 1]))

The structure of AMTL is always kept: ``B >= 0`` (the unknown is nonnegative) and
``diag(B) = 0`` in the B-step, ``b >= 0`` supported on the learned tasks in a curriculum
step (``step.constraints``; these are added to the user's statement when it does not
list them).

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
  DPP; otherwise :class:`VariantError` names the offending subexpression.
- Not covered: the memory model of :mod:`amtl_cvx.problems.memory` (a custom statement
  is compiled as written) and the built-in B-step's per-entry KKT polish (a variant's
  B-step has another optimality condition); each solve is certified by the solver's
  status ``optimal`` at the tight tolerances of :data:`amtl_cvx.exact.SOLVER_OPTIONS`.

The algorithms (:func:`amtl_cvx.fit.fit_alternating`, :func:`amtl_cvx.fit.fit_curriculum`)
solve the custom steps with these statements and every other step with the backend
asked for (``"fast"`` by default). Their history and stopping test use the variant's
own objective (:meth:`Variant.objective_value`, see there).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import cvxpy as cp
import numpy as np
from sklearn.base import BaseEstimator

from amtl_cvx.data import MultiTaskData
from amtl_cvx.problems._loss import loss_expression, target_scale
from amtl_cvx.problems.base import ExactResult, StatedProblem

__all__ = [
    "Variant",
    "VariantError",
    "TransferStep",
    "TasksStep",
    "CurriculumStep",
    "CustomStatement",
    "CustomTransferStatement",
    "CustomTasksStatement",
    "CustomCurriculumStatement",
    "STEPS",
    "UNIT_DRIFT",
]

logger = logging.getLogger(__name__)

#: The steps a :class:`Variant` may replace.
STEPS = ("transfer", "tasks", "curriculum")

#: The B-step statement of a variant is rebuilt in new units when a column norm of
#: ``W`` or ``max|W|`` has moved by more than this factor since it was built.
UNIT_DRIFT = 2.0

_STEP_TITLES = {"transfer": "B-step", "tasks": "W-step", "curriculum": "curriculum step"}


class VariantError(ValueError):
    """A variant's statement is unusable: not a ``cp.Problem``, not DCP or DPP, or
    written with a variable that is not the step's own."""


# ====================================================================== the steps
@dataclass(frozen=True, eq=False)
class TransferStep:
    r"""What a custom B-step is written with (original units).

    The built-in B-step is ``min_B lam ||W - W B||_F^2 + sum_{s,t} price_s B[s, t]``
    over ``B >= 0, diag(B) = 0``.

    Attributes
    ----------
    B : cvxpy.Expression, shape (T, T)
        The unknown transfer graph (nonnegative by construction).
    W : cvxpy.Parameter, shape (d, T)
        The fixed task parameters.
    price : cvxpy.Parameter, shape (T,)
        Sending prices ``p_s = mu c_s L_s(w_s)`` (with the variant's losses).
    objective : cvxpy.Expression
        The built-in objective ``lam * sum_squares(W - W @ B) + price @ sum(B, axis=1)``.
    constraints : list of cvxpy.Constraint
        ``[diag(B) == 0]``; always part of the statement.
    lam, mu, ridge : float
        The fit's hyperparameters.
    c : numpy.ndarray, shape (T,)
        Imbalance weights.
    data : MultiTaskData
        The training data.
    loss : str
        The fit's loss name.
    """

    B: cp.Expression
    W: cp.Parameter
    price: cp.Parameter
    objective: cp.Expression
    constraints: list
    lam: float
    mu: float
    ridge: float
    c: np.ndarray
    data: MultiTaskData
    loss: str


@dataclass(frozen=True, eq=False)
class TasksStep:
    r"""What a custom W-step is written with (original units).

    The built-in W-step is ``min_W sum_t a_t L_t(w_t) + lam ||W (I - B)||_F^2 + ridge
    ||W||_F^2``, unconstrained.

    Attributes
    ----------
    W : cvxpy.Expression, shape (d, T)
        The unknown task parameters.
    B : cvxpy.Parameter, shape (T, T)
        The fixed transfer graph.
    weights : cvxpy.Parameter, shape (T,)
        Loss weights ``a_t = 1 + mu c_t ||B[t, :]||_1``.
    losses : list of cvxpy.Expression
        The built-in per-task losses ``L_t(w_t)`` (squared or logistic, mean over rows).
    penalty : cvxpy.Expression
        ``lam * sum_squares(W @ (I - B)) + ridge * sum_squares(W)``.
    objective : cvxpy.Expression
        The built-in objective ``weights @ hstack(losses) + penalty``.
    constraints : list
        Empty: the built-in W-step has none.
    lam, mu, ridge : float
    c : numpy.ndarray, shape (T,)
    data : MultiTaskData
    loss : str
    """

    W: cp.Expression
    B: cp.Parameter
    weights: cp.Parameter
    losses: list
    penalty: cp.Expression
    objective: cp.Expression
    constraints: list
    lam: float
    mu: float
    ridge: float
    c: np.ndarray
    data: MultiTaskData
    loss: str


@dataclass(frozen=True, eq=False)
class CurriculumStep:
    r"""What a custom curriculum step (Algorithm 2) is written with (original units).

    The built-in step for the new task ``t`` is ``min_{w, b >= 0} L_t(w) + lam ||w - W
    b||^2 + q' b + ridge ||w||^2`` with ``b`` zero outside the learned tasks.

    Attributes
    ----------
    w : cvxpy.Expression, shape (d,)
        The new task's parameters.
    b : cvxpy.Variable, shape (T,)
        Its incoming edges (column ``task`` of ``B``; nonnegative by construction).
    W : cvxpy.Parameter, shape (d, T)
        The learned tasks' parameters (zero columns for the others).
    q : cvxpy.Parameter, shape (T,)
        Sending prices of the learned tasks (zero for the others).
    B : cvxpy.Parameter, shape (T, T)
        The graph learned so far (the columns of the learned tasks).
    blocked : cvxpy.Parameter, shape (T,)
        1 for every task not learned yet (``task`` included), else 0.
    loss : cvxpy.Expression
        The built-in loss ``L_t(w)``.
    objective : cvxpy.Expression
        The built-in objective.
    constraints : list
        ``[multiply(blocked, b) == 0]``; always part of the statement.
    task : int
    X, y : numpy.ndarray
        The new task's training rows.
    lam, mu, ridge : float
    c : numpy.ndarray, shape (T,)
    data : MultiTaskData
    loss_name : str
    """

    w: cp.Expression
    b: cp.Variable
    W: cp.Parameter
    q: cp.Parameter
    B: cp.Parameter
    blocked: cp.Parameter
    loss: cp.Expression
    objective: cp.Expression
    constraints: list
    task: int
    X: np.ndarray
    y: np.ndarray
    lam: float
    mu: float
    ridge: float
    c: np.ndarray
    data: MultiTaskData
    loss_name: str


# ===================================================================== the variant
class Variant(BaseEstimator):
    r"""An AMTL variant: custom CVXPY statements for some steps of Algorithms 1 and 2.

    Either pass functions, or subclass and override the ``*_problem`` methods (a
    subclass may take its own hyperparameters in ``__init__``, stored under their own
    names as scikit-learn expects; they can then be tuned by ``GridSearchCV`` as
    ``variant__name``).

    Parameters
    ----------
    transfer : callable, optional
        ``transfer(step: TransferStep) -> cvxpy.Problem``: the B-step.
    tasks : callable, optional
        ``tasks(step: TasksStep) -> cvxpy.Problem``: the W-step.
    curriculum : callable, optional
        ``curriculum(step: CurriculumStep) -> cvxpy.Problem``: a step of Algorithm 2.
    objective : callable, optional
        ``objective(W, B, data, *, lam, mu, loss, c, ridge) -> float`` (the signature of
        :func:`amtl_cvx.amtl_objective`): the variant's whole objective, in numpy. By
        default it is evaluated from the statements (see :meth:`objective_value`).
    task_losses : callable, optional
        ``task_losses(W, data, loss) -> numpy.ndarray`` (the signature of
        :func:`amtl_cvx.task_losses`): the variant's per-task losses, which set the
        sending prices ``mu c_s L_s(w_s)`` and the curriculum's order. Default: the
        built-in loss. A variant that changes the loss must replace the W-step (and,
        for Algorithm 2, the curriculum step): the fast solvers minimise the built-in
        loss.
    dpp : bool, default=True
        Assert that every custom statement is DPP (built once, re-solved with new
        parameter values). ``False`` accepts statements that are only DCP; they are
        compiled anew at every solve.
    name : str, default="variant"
        Shown in messages and recorded in :attr:`amtl_cvx.fit.AMTLFit.variant`.

    Examples
    --------
    >>> import cvxpy as cp
    >>> column_sums = Variant(
    ...     transfer=lambda s: cp.Problem(cp.Minimize(s.objective), [cp.sum(s.B, axis=0) <= 1]),
    ...     name="column sums <= 1")
    >>> class GroupRows(Variant):
    ...     def __init__(self, gamma=1.0):
    ...         self.gamma = gamma
    ...     def transfer_problem(self, s):
    ...         rows = cp.sum(cp.norm(s.B, 2, axis=1))
    ...         return cp.Problem(cp.Minimize(s.objective + self.gamma * rows))
    """

    def __init__(
        self,
        transfer: Callable[[TransferStep], cp.Problem] | None = None,
        tasks: Callable[[TasksStep], cp.Problem] | None = None,
        curriculum: Callable[[CurriculumStep], cp.Problem] | None = None,
        objective: Callable[..., float] | None = None,
        task_losses: Callable[[np.ndarray, MultiTaskData, str], np.ndarray] | None = None,
        dpp: bool = True,
        name: str = "variant",
    ) -> None:
        self.transfer = transfer
        self.tasks = tasks
        self.curriculum = curriculum
        self.objective = objective
        self.task_losses = task_losses
        self.dpp = dpp
        self.name = name

    # -- override points ------------------------------------------------------------
    def transfer_problem(self, step: TransferStep) -> cp.Problem:
        """The custom B-step (default: ``self.transfer(step)``)."""
        return _call(getattr(self, "transfer", None), step, self, "transfer")

    def tasks_problem(self, step: TasksStep) -> cp.Problem:
        """The custom W-step (default: ``self.tasks(step)``)."""
        return _call(getattr(self, "tasks", None), step, self, "tasks")

    def curriculum_problem(self, step: CurriculumStep) -> cp.Problem:
        """The custom curriculum step (default: ``self.curriculum(step)``)."""
        return _call(getattr(self, "curriculum", None), step, self, "curriculum")

    def objective_value(self, W: np.ndarray, B: np.ndarray, data: MultiTaskData, **kwargs: Any) -> float | None:
        """The variant's whole objective at ``(W, B)``, or None to evaluate it from the
        statements.

        From the statements (``None``): the built-in objective with the variant's
        losses, plus, for each custom step of Algorithm 1, the custom statement's
        objective at ``(W, B)`` minus the built-in step objective there. This is the
        variant's objective when each custom step is the built-in step plus the
        variant's own terms (a penalty on ``B``, another loss, constraints); supply
        ``objective`` otherwise.

        Parameters
        ----------
        W, B : numpy.ndarray
        data : MultiTaskData
        **kwargs
            ``lam, mu, loss, c, ridge``.
        """
        fn = getattr(self, "objective", None)
        if fn is None:
            return None
        value = fn(W, B, data, **kwargs)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise VariantError(f"{self._label()}: objective must return a number, got {type(value).__name__}") from None
        return value

    def task_loss_values(self, W: np.ndarray, data: MultiTaskData, loss: str) -> np.ndarray | None:
        """The variant's per-task losses at ``W`` (shape (T,)), or None for the built-in loss."""
        fn = getattr(self, "task_losses", None)
        if fn is None:
            return None
        L = np.asarray(fn(W, data, loss), dtype=np.float64)
        if L.shape != (data.n_tasks,) or not np.all(np.isfinite(L)) or np.any(L < 0):
            raise VariantError(
                f"{self._label()}: task_losses must return {data.n_tasks} finite nonnegative "
                f"losses, got an array of shape {L.shape}"
            )
        return L

    # -- queries ----------------------------------------------------------------------
    def customises(self, step: str) -> bool:
        """Whether the variant replaces ``step`` (one of :data:`STEPS`)."""
        if step not in STEPS:
            raise ValueError(f"step must be one of {STEPS}, got {step!r}")
        method = f"{step}_problem"
        overridden = getattr(type(self), method) is not getattr(Variant, method)
        return overridden or getattr(self, step, None) is not None

    def changes_loss(self) -> bool:
        """Whether the variant has its own per-task losses."""
        return (type(self).task_loss_values is not Variant.task_loss_values
                or getattr(self, "task_losses", None) is not None)

    def _label(self) -> str:
        name = getattr(self, "name", None)
        return f"variant {name!r}" if isinstance(name, str) and name != "variant" else f"variant {type(self).__name__}"

    def check(self) -> None:
        """Raise :class:`VariantError` if the variant's parameters are unusable."""
        for key in (*STEPS, "objective", "task_losses"):
            value = getattr(self, key, None)
            if value is not None and not callable(value):
                raise VariantError(f"{self._label()}: {key} must be a callable or None, got {type(value).__name__}")
        if not isinstance(getattr(self, "dpp", True), (bool, np.bool_)):
            raise VariantError(f"{self._label()}: dpp must be a bool, got {getattr(self, 'dpp')!r}")


def _call(fn: Callable | None, step: Any, variant: Variant, kind: str) -> cp.Problem:
    if fn is None:
        raise NotImplementedError(f"{variant._label()} does not replace the {_STEP_TITLES[kind]}")
    return fn(step)


# ================================================================= the statements
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
