r"""Cross-check one AMTL subproblem: the fast solver against every exact CVXPY solver.

For one instance of a step (``"bstep"``, ``"wstep"`` or ``"curriculum"``, see
``docs/objective.md``) :func:`verify_instance` solves it with the fast solver of the
``solvers`` package (and, with ``first_order=True``, with its first-order solver:
``solvers.first_order``, ``solvers.first_order_tasks``, ``solvers.first_order_curriculum``)
and with each CVXPY solver named explicitly (OSQP, CLARABEL, ECOS,
at the tight tolerances of :mod:`amtl_cvx.problems.exact`), then evaluates **every** returned
solution with the one numpy definition of the objective (:mod:`amtl_cvx.problems.objective`).
Nothing reported by a solver about its own objective is trusted: the rows compare

- ``objective``: the numpy objective at the backend's solution;
- ``rel_gap``: ``(objective - best) / max(1, |best|)`` where ``best`` is the lowest
  objective among the backends that returned a solution (so the best row has gap 0
  and every gap is ``>= 0``);
- ``max_abs_diff``: ``max |solution - fast solution|`` (for the curriculum step over
  ``w`` and the length-T ``b`` together). It is meaningful when the minimiser is unique
  (W-step with ``ridge > 0`` or full-rank losses; a B-step with ``d < T`` can have
  several minimisers with the same objective);
- feasibility of the transfer variables: for ``B`` its minimum entry and its largest
  ``|diagonal|`` entry, ``"exact"`` when ``min(B) >= 0`` and ``diag(B) == 0`` exactly;
  for the curriculum ``b`` its minimum entry (``"exact"`` when ``>= 0`` and zero
  outside the learned set). The W-step has no constraint (``"n/a"``).

A backend that fails (:class:`amtl_cvx.problems.exact.ExactSolveError`, or a solver error) is a
row with its message as ``status``, never an exception; OSQP does not apply to the
exponential-cone (logistic) W-step and curriculum step and is reported as ``"n/a"``.

:func:`make_instance` builds an instance from a data set, :func:`run_verification`
chains both for several steps (one list of rows, as the command line wants it), and
:func:`format_table` renders rows as plain text.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from amtl_cvx._validation import check_scalar
from amtl_cvx.data import LOSSES, MultiTaskData, MultiTaskDataset
from amtl_cvx.problems.objective import imbalance_weights, loss_weights, task_losses
from amtl_cvx.tools.results import NAN as _NAN
from amtl_cvx.tools.results import render_table, table_columns
from amtl_cvx.tools.subproblems import feasibility, flat, solve_cvxpy, solve_fast, step_objective
from amtl_cvx.tools.timing import certificate_status, timed

__all__ = [
    "STEPS",
    "CVXPY_SOLVERS",
    "VERIFY_COLUMNS",
    "StepInstance",
    "make_instance",
    "verify_instance",
    "run_verification",
    "format_table",
    "render_table",
    "failed_checks",
]

#: The subproblems that can be verified.
STEPS = ("bstep", "wstep", "curriculum")

#: The CVXPY solvers tried, each named explicitly.
CVXPY_SOLVERS = ("OSQP", "CLARABEL", "ECOS")

#: Keys of a verification row, in table order.
VERIFY_COLUMNS = (
    "step",
    "loss",
    "backend",
    "time",
    "objective",
    "rel_gap",
    "max_abs_diff",
    "min_entry",
    "max_abs_diag",
    "feasibility",
    "status",
)


@dataclass(frozen=True)
class StepInstance:
    """One instance of an AMTL subproblem, in original units.

    Attributes
    ----------
    step : {"bstep", "wstep", "curriculum"}
    data : MultiTaskData
        Training data (the W-step and curriculum step use it; the B-step only through
        ``penalty``).
    loss : {"squared", "logistic"}
    lam, mu, ridge : float
    c : numpy.ndarray, shape (T,)
        Imbalance weights ``c_t``.
    W : numpy.ndarray, shape (d, T)
        B-step: the fixed task parameters. Curriculum: the frozen parameters (only the
        columns in ``learned`` are used). W-step: the single-task start (unused by the
        solvers, kept for reference).
    penalty : numpy.ndarray, shape (T,) or None
        B-step prices ``p_s = mu c_s L_s(w_s)``.
    B : numpy.ndarray, shape (T, T) or None
        W-step: the fixed transfer graph.
    weights : numpy.ndarray, shape (T,) or None
        W-step loss weights ``a_t = 1 + mu c_t sum_s B[t, s]``.
    task : int or None
        Curriculum: the new task.
    learned : numpy.ndarray of bool, shape (T,) or None
        Curriculum: the learned set ``S``.
    q : numpy.ndarray, shape (T,) or None
        Curriculum: sending prices ``q_s = mu c_s L_s(w_s)`` (used on ``learned`` only).
    """

    step: str
    data: MultiTaskData
    loss: str
    lam: float
    mu: float
    ridge: float
    c: np.ndarray
    W: np.ndarray
    penalty: np.ndarray | None = None
    B: np.ndarray | None = None
    weights: np.ndarray | None = None
    task: int | None = None
    learned: np.ndarray | None = None
    q: np.ndarray | None = None

    @property
    def n_tasks(self) -> int:
        """Number of tasks T."""
        return self.data.n_tasks

    @property
    def n_features(self) -> int:
        """Number of features d."""
        return self.data.n_features


def _check_step(step: str) -> str:
    if step not in STEPS:
        raise ValueError(f"step must be one of {STEPS}, got {step!r}")
    return step


def _resolve_data(dataset: MultiTaskDataset | MultiTaskData, loss: str | None) -> tuple[MultiTaskData, str]:
    if isinstance(dataset, MultiTaskDataset):
        data, default_loss = dataset.train, dataset.loss
    elif isinstance(dataset, MultiTaskData):
        data, default_loss = dataset, "squared"
    else:
        raise ValueError(
            f"dataset must be a MultiTaskDataset or MultiTaskData, got {type(dataset).__name__}"
        )
    loss = default_loss if loss is None else loss
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    data.check_labels(loss)
    if data.n_tasks < 2:
        raise ValueError(f"dataset must hold at least 2 tasks, got {data.n_tasks}")
    return data, loss


def make_instance(
    dataset: MultiTaskDataset | MultiTaskData,
    step: str,
    *,
    lam: float = 1.0,
    mu: float = 0.1,
    ridge: float = 0.0,
    loss: str | None = None,
    s: float = 1.0,
    sigma: float = 0.0,
) -> StepInstance:
    """Build one instance of ``step`` from a data set, as Algorithm 1 / 2 would meet it.

    - ``W`` are single-task fits (:func:`amtl_cvx.baselines.fit_single_task`) with
      penalty ``lam + ridge``: the objective's own single-task point, where Algorithm 1
      starts.
    - ``"bstep"``: prices ``p = mu * c * L(W)`` (per-task training losses at ``W``).
    - ``"wstep"``: ``B`` is the fast B-step solution at that ``W``
      (:func:`solvers.transfer.solve_transfer`), weights ``a = 1 + mu c B.sum(1)``.
    - ``"curriculum"``: tasks are ordered by single-task training loss (lowest first);
      the first ``T // 2`` form the learned set (frozen at their single-task ``W``,
      prices ``q = mu c L(W)``) and the next one is the new task.

    Parameters
    ----------
    dataset : MultiTaskDataset or MultiTaskData
        From :func:`amtl_cvx.make_regression_tasks`,
        :func:`amtl_cvx.make_classification_tasks` or :func:`amtl_cvx.load_release_mat`;
        its training split is used. At least two tasks.
    step : {"bstep", "wstep", "curriculum"}
    lam : float, default=1.0
        ``lam > 0``.
    mu : float, default=0.1
        ``mu >= 0``.
    ridge : float, default=0.0
        ``ridge >= 0``.
    loss : {"squared", "logistic"}, optional
        Default: the data set's loss (``"squared"`` for a bare :class:`MultiTaskData`).
    s, sigma : float
        Imbalance weights ``c_t = s / n_t**sigma``.

    Returns
    -------
    StepInstance

    Raises
    ------
    ValueError
        On a bad argument (the message names it).
    """
    from amtl_cvx.algorithms.single_task import fit_single_task

    step = _check_step(step)
    data, loss = _resolve_data(dataset, loss)
    lam = check_scalar(lam, "lam", strict=True)
    mu = check_scalar(mu, "mu")
    ridge = check_scalar(ridge, "ridge")
    c = imbalance_weights(data.n_samples, s, sigma)
    T = data.n_tasks
    W = fit_single_task(data, lam + ridge, loss)
    losses = task_losses(W, data, loss)
    prices = mu * c * losses
    common = dict(data=data, loss=loss, lam=lam, mu=mu, ridge=ridge, c=c, W=W)
    if step == "bstep":
        return StepInstance(step, penalty=prices, **common)
    if step == "wstep":
        import solvers.transfer as fast_transfer

        B = np.array(fast_transfer.solve_transfer(W, prices, lam).solution, dtype=np.float64)
        return StepInstance(step, penalty=prices, B=B, weights=loss_weights(B, c, mu), **common)
    order = np.argsort(losses, kind="stable")
    k = T // 2
    learned = np.zeros(T, dtype=bool)
    learned[order[:k]] = True
    return StepInstance(step, task=int(order[k]), learned=learned, q=prices, **common)


def _cvxpy_solve(inst: StepInstance, solver: str) -> tuple[Any, Any]:
    """Build the statement of ``inst.step`` and solve it with ``solver``; return
    ``(solution, ExactResult)``."""
    return solve_cvxpy(inst, inst.step, solver)


def _applies(inst: StepInstance, solver: str) -> bool:
    """OSQP takes QPs only: not the exponential-cone logistic statements."""
    return not (solver == "OSQP" and inst.loss == "logistic" and inst.step != "bstep")


def verify_instance(
    instance: StepInstance,
    *,
    solvers: Sequence[str] | None = None,
    tol: float = 1e-10,
    first_order: bool = False,
) -> list[dict[str, Any]]:
    """Solve one instance with the fast solver and each CVXPY solver; compare.

    Parameters
    ----------
    instance : StepInstance
        From :func:`make_instance`.
    solvers : sequence of {"OSQP", "CLARABEL", "ECOS"}, optional
        The CVXPY solvers to run, each alone at its tight tolerance (default all three).
        A solver that is not installed gives a row with status ``"n/a (not
        installed)"``; OSQP on a logistic W-step or curriculum step (exponential cone)
        a row with status ``"n/a"``.
    tol : float, default=1e-10
        Certificate tolerance of the fast solver (and of the first-order solver).
    first_order : bool, default=False
        Also solve with the step's first-order solver: a row ``"first-order"`` right
        after ``"fast"``, with the same columns and checks.

    Returns
    -------
    list of dict
        One row per backend (``"fast"`` first, then ``"first-order"`` if asked, then
        ``"cvxpy-<SOLVER>"``) with the keys
        of :data:`VERIFY_COLUMNS`:

        - ``step``, ``loss``, ``backend``;
        - ``time``: wall seconds of the solve (for CVXPY: building the statement,
          setting its parameters, compiling and solving);
        - ``objective``: numpy objective at the backend's solution (NaN if it failed);
        - ``rel_gap``: ``(objective - best) / max(1, |best|)``, ``best`` the lowest
          objective among the rows;
        - ``max_abs_diff``: ``max |solution - fast solution|``;
        - ``min_entry``, ``max_abs_diag``, ``feasibility`` (see the module docstring);
        - ``status``: fast and first-order: ``"converged"`` or ``"not converged"`` with
          the certificate;
          CVXPY: the solver status (``"optimal"``) or the error message (``"refused:
          ..."`` when the statement would need more than half the available memory,
          see :mod:`amtl_cvx.problems.memory`); ``"n/a"``.

    Raises
    ------
    ValueError
        If ``instance`` is not a :class:`StepInstance`, a solver name is unknown or
        ``tol`` is not positive.
    """
    import cvxpy as cp

    from amtl_cvx.problems.exact import ExactSolveError, available_solvers
    from amtl_cvx.problems.memory import ExactMemoryError

    if not isinstance(instance, StepInstance):
        raise ValueError(f"instance must be a StepInstance, got {type(instance).__name__}")
    tol = check_scalar(tol, "tol", strict=True)
    if solvers is None:
        solvers = CVXPY_SOLVERS
    if isinstance(solvers, str):
        solvers = [solvers]
    solvers = [str(s).upper() for s in solvers]
    for s in solvers:
        if s not in CVXPY_SOLVERS:
            raise ValueError(f"solvers must name solvers among {CVXPY_SOLVERS}, got {s!r}")
    installed = set(available_solvers())
    inst = instance

    solutions: list[Any] = []
    rows: list[dict[str, Any]] = []

    def add(backend: str, elapsed: float, solution: Any, status: str) -> None:
        rows.append({"step": inst.step, "loss": inst.loss, "backend": backend, "time": elapsed, "status": status})
        solutions.append(solution)

    elapsed, (fast_solution, res) = timed(solve_fast, inst, inst.step, tol)
    add("fast", elapsed, fast_solution, certificate_status(res))
    if first_order:
        elapsed, (fo_solution, fo_res) = timed(solve_fast, inst, inst.step, tol, first_order=True)
        add("first-order", elapsed, fo_solution, certificate_status(fo_res))

    for solver in solvers:
        backend = f"cvxpy-{solver}"
        if not _applies(inst, solver):
            add(backend, _NAN, None, "n/a")
            continue
        if solver not in installed:
            add(backend, _NAN, None, "n/a (not installed)")
            continue
        t0 = time.perf_counter()
        try:
            solution, result = _cvxpy_solve(inst, solver)
        except (ExactSolveError, cp.error.SolverError) as exc:
            add(backend, time.perf_counter() - t0, None, str(exc))
            continue
        except ExactMemoryError as exc:
            add(backend, time.perf_counter() - t0, None, f"refused: {exc}")
            continue
        add(backend, time.perf_counter() - t0, solution, result.stats.status)

    fast_flat = flat(fast_solution)
    for row, solution in zip(rows, solutions):
        if solution is None:
            row.update(objective=_NAN, max_abs_diff=_NAN, min_entry=_NAN, max_abs_diag=_NAN, feasibility="-")
            continue
        min_entry, max_diag, feas = feasibility(inst, inst.step, solution)
        row.update(
            objective=step_objective(inst, inst.step, solution),
            max_abs_diff=float(np.max(np.abs(flat(solution) - fast_flat))) if fast_flat.size else 0.0,
            min_entry=min_entry,
            max_abs_diag=max_diag,
            feasibility=feas,
        )
    finite = [r["objective"] for r in rows if math.isfinite(r["objective"])]
    best = min(finite) if finite else _NAN
    for row in rows:
        row["rel_gap"] = (row["objective"] - best) / max(1.0, abs(best)) if finite else _NAN
    return [{key: row[key] for key in VERIFY_COLUMNS} for row in rows]


def run_verification(
    dataset: MultiTaskDataset | MultiTaskData,
    *,
    steps: Sequence[str] = STEPS,
    lam: float = 1.0,
    mu: float = 0.1,
    ridge: float = 0.0,
    loss: str | None = None,
    solvers: Sequence[str] | None = None,
    tol: float = 1e-10,
    progress: Callable[[str], None] | None = None,
    first_order: bool = False,
) -> list[dict[str, Any]]:
    """Build and verify one instance per step of ``steps`` (see :func:`make_instance`).

    Parameters
    ----------
    dataset : MultiTaskDataset or MultiTaskData
    steps : sequence of {"bstep", "wstep", "curriculum"}, default all three
    lam, mu, ridge : float
    loss : {"squared", "logistic"}, optional
        Default: the data set's loss.
    solvers : sequence of str, optional
        CVXPY solvers (default OSQP, CLARABEL, ECOS).
    tol : float, default=1e-10
        Fast solvers' certificate tolerance.
    progress : callable, optional
        Called with one status line per step.
    first_order : bool, default=False
        Also verify the first-order solvers (a ``"first-order"`` row per step).

    Returns
    -------
    list of dict
        The rows of :func:`verify_instance` for every step, in order.
    """
    if isinstance(steps, str):
        steps = [steps]
    steps = [_check_step(s) for s in steps]
    if not steps:
        raise ValueError("steps must name at least one step")
    rows: list[dict[str, Any]] = []
    for step in steps:
        if progress is not None:
            progress(f"verifying the {step}")
        inst = make_instance(dataset, step, lam=lam, mu=mu, ridge=ridge, loss=loss)
        rows.extend(verify_instance(inst, solvers=solvers, tol=tol, first_order=first_order))
    return rows


_VERIFY_FORMAT = table_columns(*VERIFY_COLUMNS)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Render verification rows (from :func:`verify_instance`) as a plain-text table.

    Parameters
    ----------
    rows : sequence of dict

    Returns
    -------
    str
        Header, rule and one line per row; missing or NaN values print as ``-``.
    """
    if isinstance(rows, dict):
        raise ValueError("rows must be a sequence of row dicts, got a single dict")
    return render_table(list(rows), _VERIFY_FORMAT)


def failed_checks(rows: Sequence[dict[str, Any]], gap_tol: float = 1e-7) -> list[str]:
    """The checks of verification rows that failed, one description each (empty: all passed).

    A fast (or first-order) row fails when it is not converged, its solution is not exactly feasible,
    or its objective is more than ``gap_tol`` (relative) above the best row's; a CVXPY
    row fails when its status is not ``"optimal"`` (``OPTIMAL_INACCURATE`` included) or
    its objective is more than ``gap_tol`` above the best. Rows that do not apply
    (``"n/a"``) are not checks.
    """
    failures = []
    for row in rows:
        status = str(row["status"])
        if status.startswith("n/a"):
            continue
        where = f"{row['step']} {row['backend']}"
        gap = row["rel_gap"]
        if row["backend"] in ("fast", "first-order"):
            if not status.startswith("converged"):
                failures.append(f"{where}: {status}")
            if row["feasibility"] == "violated":
                failures.append(f"{where}: solution not exactly feasible")
        elif status != "optimal":
            failures.append(f"{where}: status {status}")
            continue  # no solution, so no gap to report
        if not (gap <= gap_tol):
            failures.append(f"{where}: relative gap {gap:.1e} > {gap_tol:.0e}")
    return failures
