"""One AMTL subproblem solved by each backend, shared by the benchmark and the verification.

A subproblem is a step (``"bstep"``, ``"wstep"`` or ``"curriculum"``, see
``docs/objective.md``) of an *instance*: an object with the attributes of
:class:`amtl_cvx.tools.verification.StepInstance` that the step uses (``data``, ``loss``,
``lam``, ``ridge``, ``W``; B-step ``penalty``; W-step ``B``, ``weights``; curriculum
``task``, ``learned``, ``q``; ``n_tasks``, ``n_features``). For each step:

- :func:`solve_fast`: the fast solver of the ``solvers`` package, or its first-order solver;
- :func:`build_statement` / :func:`solve_cvxpy`: the CVXPY statement
  (:mod:`amtl_cvx.problems`) solved by one named solver;
- :func:`step_objective`: the one numpy definition of the step's objective
  (:mod:`amtl_cvx.problems.objective`) at a solution;
- :func:`feasibility`: the constrained variable's minimum entry, largest ``|diagonal|``
  entry and verdict.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from amtl_cvx.problems.objective import bstep_objective, curriculum_objective, wstep_objective
from amtl_cvx.tools.results import NAN

__all__ = ["solve_fast", "build_statement", "solve_cvxpy", "step_objective", "feasibility", "flat"]


def _curriculum_solution(inst: Any, res: Any) -> tuple[Any, Any]:
    w, b_S = res.solution
    b = np.zeros(inst.n_tasks)
    b[np.flatnonzero(inst.learned)] = b_S
    return (np.asarray(w, dtype=np.float64), b), res


def solve_fast(inst: Any, step: str, tol: float, *, first_order: bool = False, grams: Any = None) -> tuple[Any, Any]:
    """Run the step's fast (or, with ``first_order``, first-order) solver on ``inst``.

    ``grams`` (W-step, fast solver only): the precomputed per-task Gram matrices
    (:func:`solvers.tasks.precompute_grams`). Returns ``(solution in the original
    layout, SolverResult)``; the curriculum solution is ``(w, b)`` with ``b`` of length T.
    """
    if step == "bstep":
        if first_order:
            from solvers.first_order import solve_transfer_first_order

            res = solve_transfer_first_order(inst.W, inst.penalty, inst.lam, tol=tol, sparse_output=False)
        else:
            import solvers.transfer as fast_transfer

            res = fast_transfer.solve_transfer(inst.W, inst.penalty, inst.lam, tol=tol)
        return np.asarray(res.solution, dtype=np.float64), res
    if step == "wstep":
        if first_order:
            from solvers.first_order_tasks import solve_tasks_first_order as solve
            options: dict[str, Any] = {}
        else:
            import solvers.tasks as fast_tasks

            solve = fast_tasks.solve_tasks
            options = {} if grams is None else {"grams": grams}
        res = solve(inst.data.Xs, inst.data.ys, inst.B, inst.lam,
                    loss=inst.loss, weights=inst.weights, ridge=inst.ridge, tol=tol, **options)
        return np.asarray(res.solution, dtype=np.float64), res
    if first_order:
        from solvers.first_order_curriculum import solve_curriculum_step_first_order as solve
    else:
        import solvers.curriculum as fast_curriculum

        solve = fast_curriculum.solve_curriculum_step
    idx = np.flatnonzero(inst.learned)
    res = solve(inst.data.Xs[inst.task], inst.data.ys[inst.task], inst.W[:, idx], inst.q[idx], inst.lam,
                loss=inst.loss, ridge=inst.ridge, tol=tol)
    return _curriculum_solution(inst, res)


def build_statement(inst: Any, step: str) -> Any:
    """The step's CVXPY statement (:mod:`amtl_cvx.problems`) built and set for ``inst``."""
    from amtl_cvx.problems import CurriculumStepProblem, TasksProblem, TransferProblem

    if step == "bstep":
        return TransferProblem(inst.n_features, inst.n_tasks).set(inst.W, inst.penalty, inst.lam)
    if step == "wstep":
        return TasksProblem(inst.data, inst.loss).set(inst.B, inst.lam, inst.weights, inst.ridge)
    t = inst.task
    problem = CurriculumStepProblem(inst.data.Xs[t], inst.data.ys[t], inst.n_tasks, t, inst.loss)
    return problem.set(inst.W, inst.learned, inst.q, inst.lam, inst.ridge)


def solve_cvxpy(inst: Any, step: str, solver: str) -> tuple[Any, Any]:
    """Build the statement and solve it with ``solver``; return ``(solution, ExactResult)``."""
    result = build_statement(inst, step).solve(solver)
    return result.solution, result


def step_objective(inst: Any, step: str, solution: Any) -> float:
    """The numpy objective of ``step`` at ``solution`` (original units); NaN for None."""
    if solution is None:
        return NAN
    if step == "bstep":
        return bstep_objective(inst.W, solution, inst.penalty, inst.lam)
    if step == "wstep":
        return wstep_objective(
            solution, inst.B, inst.data, lam=inst.lam, weights=inst.weights,
            loss=inst.loss, ridge=inst.ridge,
        )
    w, b = solution
    idx = np.flatnonzero(inst.learned)
    t = inst.task
    return curriculum_objective(
        inst.data.Xs[t], inst.data.ys[t], w, b[idx], inst.W[:, idx], inst.q[idx],
        lam=inst.lam, loss=inst.loss, ridge=inst.ridge,
    )


def feasibility(inst: Any, step: str, solution: Any) -> tuple[float, float, str]:
    """``(min entry, max |diag|, verdict)`` of the constrained variable.

    B-step: ``"exact"`` when ``min(B) >= 0`` and ``diag(B) == 0`` exactly; curriculum:
    ``"exact"`` when ``b >= 0`` on the learned set and zero outside it; W-step: ``"n/a"``.
    """
    if step == "bstep":
        B = solution
        min_entry = float(B.min())
        max_diag = float(np.max(np.abs(np.diag(B))))
        exact = min_entry >= 0 and np.all(np.diag(B) == 0)
        return min_entry, max_diag, "exact" if exact else "violated"
    if step == "wstep":
        return NAN, NAN, "n/a"
    _, b = solution
    inside = b[inst.learned]
    min_entry = float(inside.min()) if inside.size else 0.0
    exact = min_entry >= 0 and np.all(b[~inst.learned] == 0)
    return min_entry, NAN, "exact" if exact else "violated"


def flat(solution: Any) -> np.ndarray:
    """A solution (an array or a tuple of arrays) as one flat float array."""
    if isinstance(solution, tuple):
        return np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in solution])
    return np.ravel(np.asarray(solution, dtype=np.float64))
