r"""Custom statements: an AMTL variant written as CVXPY, one step at a time.

A :class:`Variant` replaces any of the three steps of Algorithms 1 and 2 by a statement
the user writes in CVXPY, from the step's parameters and unknowns in **original units**
(the units of :mod:`amtl_cvx.problems.objective`):

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

How a custom statement is solved (units, checks, what is not covered):
:mod:`amtl_cvx.problems.custom_statements`.

The algorithms (:func:`amtl_cvx.algorithms.fit_alternating`,
:func:`amtl_cvx.algorithms.fit_curriculum`)
solve the custom steps with these statements and every other step with the backend
asked for (``"fast"`` by default). Their history and stopping test use the variant's
own objective (:meth:`Variant.objective_value`, see there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import cvxpy as cp
import numpy as np
from sklearn.base import BaseEstimator

from amtl_cvx.data.container import MultiTaskData

__all__ = [
    "Variant",
    "VariantError",
    "TransferStep",
    "TasksStep",
    "CurriculumStep",
    "STEPS",
]

#: The steps a :class:`Variant` may replace.
STEPS = ("transfer", "tasks", "curriculum")

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
        Shown in messages and recorded in :attr:`amtl_cvx.algorithms.result.AMTLFit.variant`.

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
