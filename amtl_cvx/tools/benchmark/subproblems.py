"""The subproblem benchmark: the B-step and the squared-loss W-step, fast solvers against
CVXPY solvers, over a grid of task counts ``T`` and feature counts ``d``.

:func:`run_benchmark` returns rows in long format (one row per measurement, keys
:data:`BENCH_COLUMNS`); :func:`amtl_cvx.tools.benchmark.report.format_benchmark_table`
renders them. The timings use :mod:`amtl_cvx.tools.timing`, the solves
:mod:`amtl_cvx.tools.subproblems` (the same runners as the verification).
"""

from __future__ import annotations

import math
import time
from numbers import Real
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from amtl_cvx._validation import check_scalar
from amtl_cvx.problems.memory import available_memory as _available_memory
from amtl_cvx.tools.benchmark.instances import BenchInstance, check_int, check_ints, check_names, make_bench_instance
from amtl_cvx.tools.results import NAN, rel_gap, say
from amtl_cvx.tools.subproblems import build_statement, solve_fast, step_objective
from amtl_cvx.tools.timing import (
    certificate_status,
    format_seconds,
    memory_mark,
    memory_peak_since,
    predict_memory,
    time_interleaved,
    timed,
)
from amtl_cvx.tools.verification import CVXPY_SOLVERS

__all__ = [
    "BENCH_STEPS",
    "DEFAULT_T_VALUES",
    "DEFAULT_D_VALUES",
    "BENCH_SOLVERS",
    "BENCH_COLUMNS",
    "run_benchmark",
]

#: Subproblems timed by :func:`run_benchmark`.
BENCH_STEPS = ("bstep", "wstep")
#: Default task counts.
DEFAULT_T_VALUES = (10, 50, 100, 200, 500, 1000, 2000)
#: Default feature counts.
DEFAULT_D_VALUES = (20, 100)
#: CVXPY solvers timed by default, each named explicitly.
BENCH_SOLVERS = ("OSQP", "ECOS", "CLARABEL")
#: Keys of a :func:`run_benchmark` row.
BENCH_COLUMNS = (
    "step",
    "T",
    "d",
    "backend",
    "compile_time",
    "solve_time",
    "total_time",
    "wall_time",
    "peak_memory_mb",
    "ratio",
    "objective",
    "rel_gap",
    "status",
)


def run_benchmark(
    T_values: Iterable[int] = DEFAULT_T_VALUES,
    d_values: Iterable[int] = DEFAULT_D_VALUES,
    *,
    steps: Sequence[str] = BENCH_STEPS,
    solvers: Sequence[str] = BENCH_SOLVERS,
    time_limit: float = 30.0,
    memory_limit_gb: float | None = None,
    repeat: int = 3,
    lam: float = 1.0,
    mu: float = 0.1,
    n_samples: int = 30,
    random_state: int | None = 0,
    tol: float = 1e-10,
    progress: Callable[[str], None] | None = None,
    first_order: bool = False,
) -> list[dict[str, Any]]:
    """Time the B-step and the squared-loss W-step: fast solver vs CVXPY solvers.

    For every ``d`` and every ``T`` (both in increasing order) a planted problem is
    generated (:func:`make_bench_instance`; two parents per derived task, one when
    ``T < 6``) and, for each step, solved by

    - the fast solver (:func:`solvers.transfer.solve_transfer`,
      :func:`solvers.tasks.solve_tasks`), cold-started, once as a warm-up and then
      ``repeat`` times; the row holds the medians. For the W-step ``compile_time`` is the
      set-up of the per-task Gram matrices (:func:`solvers.tasks.precompute_grams`) and
      ``solve_time`` the solve; for the B-step ``compile_time`` is 0;
    - each CVXPY solver of ``solvers``, named explicitly, at the tight tolerances of
      :mod:`amtl_cvx.problems.exact`, once, on a freshly built statement: ``compile_time`` is the
      construction of the statement object plus setting its parameters plus CVXPY's
      compilation (``ExactResult.stats.compile_time``), ``solve_time`` the time reported
      by the solver (``stats.solve_time``), ``total_time`` their sum and ``wall_time``
      the wall clock of the whole call. Each solver first solves a tiny instance once,
      untimed, so that import and first-call costs are not charged to the first size.

    **Skip rules**, applied per step, ``d`` and CVXPY backend as ``T`` increases; a
    skipped backend is not run at that ``T`` nor at any larger ``T`` of the same step
    and ``d``, and its rows have status ``"skipped: <reason>"`` and NaN values.

    1. *Time*: once one solve takes longer than ``time_limit`` seconds of wall time
       (``wall_time > time_limit``, failed solves included), the backend is skipped at
       every larger ``T``. The solve that crosses the limit runs to its end (an
       in-process solve cannot be interrupted), so it may take much longer than
       ``time_limit``. With ``time_limit=0`` every CVXPY backend runs at the smallest
       ``T`` only.
    2. *Memory*: the peak growth of the process's resident memory during each solve is
       recorded (``peak_memory_mb``; Linux only, elsewhere NaN and this rule is off).
       Before a larger ``T`` it is predicted as ``m_prev * (T / T_prev)**k``, with ``k``
       the growth exponent measured between the two previous sizes but at least
       :data:`amtl_cvx.tools.timing.MEMORY_EXPONENT_FLOOR` (3); if the prediction exceeds
       ``memory_limit_gb``, the backend is skipped (its smallest ``T`` always runs). This guards the process against
       the out-of-memory killer: CVXPY's cone form for ECOS grows like ``T**3`` to
       ``T**4`` (measured, ``d = 20``: the B-step took 5.3 GB at ``T = 200``, the W-step
       2.3 GB at ``T = 50``) while solving in well under ``time_limit``.

    Parameters
    ----------
    T_values : iterable of int, default (10, 50, 100, 200, 500, 1000, 2000)
        Task counts (``>= 2``).
    d_values : iterable of int, default (20, 100)
        Feature counts (``>= 1``).
    steps : sequence of {"bstep", "wstep"}, default both
    solvers : sequence of {"OSQP", "ECOS", "CLARABEL"}, default all three
        A solver not installed gives rows with status ``"n/a (not installed)"``.
    time_limit : float, default=30.0
        Seconds; see the skip rules. ``>= 0``; ``float("inf")`` never skips.
    memory_limit_gb : float, optional
        Gigabytes; see the skip rules. Default: half the memory available when the
        benchmark starts. ``float("inf")`` disables the memory rule.
    repeat : int, default=3
        Timed runs of the fast solver (after one warm-up); the median is reported.
    lam : float, default=1.0
    mu : float, default=0.1
    n_samples : int, default=30
        Training rows per task.
    random_state : int or None, default=0
        Seed of the generated problems.
    tol : float, default=1e-10
        Fast solvers' certificate tolerance.
    progress : callable, optional
        Called with one status line per measurement.
    first_order : bool, default=False
        Also time the first-order B-step
        (:func:`solvers.first_order.solve_transfer_first_order`, same ``tol``): one more
        B-step row per ``T`` with backend ``"fast-first-order"`` (its ``ratio`` is to
        the active-set ``"fast"`` time, its ``rel_gap`` to the active-set objective).

    Returns
    -------
    list of dict
        One row per (step, T, d, backend), keys :data:`BENCH_COLUMNS`: ``backend`` is
        ``"fast"`` or ``"cvxpy-<SOLVER>"``; times in seconds; ``peak_memory_mb`` (see
        the skip rules; for the fast solver, during its warm-up run);
        ``ratio = total_time / total_time of fast`` (1 for the fast row); ``objective``
        is the numpy objective (:func:`amtl_cvx.problems.objective.bstep_objective` /
        :func:`~amtl_cvx.problems.objective.wstep_objective`) at the backend's solution;
        ``rel_gap = (objective - objective_fast) / max(1, |objective_fast|)``;
        ``status`` the fast solver's convergence, the CVXPY status (``"optimal"``),
        ``"failed: <message>"``, ``"skipped: <reason>"`` or ``"n/a (not installed)"``.

    Raises
    ------
    ValueError
        On a bad argument (the message names it).
    """
    from amtl_cvx.problems.exact import available_solvers

    T_values = check_ints(T_values, "T_values", 2)
    d_values = check_ints(d_values, "d_values", 1)
    steps = check_names(steps, "steps", BENCH_STEPS)
    solvers = check_names(solvers, "solvers", CVXPY_SOLVERS, upper=True)
    if isinstance(time_limit, bool) or not isinstance(time_limit, Real) or math.isnan(time_limit) or time_limit < 0:
        raise ValueError(f"time_limit must be a number >= 0, got {time_limit!r}")
    if memory_limit_gb is None:
        memory_limit = 0.5 * _available_memory()
    elif (
        isinstance(memory_limit_gb, bool) or not isinstance(memory_limit_gb, Real)
        or math.isnan(memory_limit_gb) or memory_limit_gb <= 0
    ):
        raise ValueError(f"memory_limit_gb must be a number > 0 or None, got {memory_limit_gb!r}")
    else:
        memory_limit = float(memory_limit_gb) * 1e9
    repeat = check_int(repeat, "repeat", 1)
    lam = check_scalar(lam, "lam", strict=True)
    mu = check_scalar(mu, "mu")
    tol = check_scalar(tol, "tol", strict=True)
    if progress is not None and not callable(progress):
        raise ValueError("progress must be a callable taking one string, or None")
    installed = set(available_solvers())
    runnable = [s for s in solvers if s in installed]
    if runnable:
        say(progress, "warming up the CVXPY solvers")
        _warm_up_cvxpy(steps, runnable)

    run = _BenchRun(solvers, installed, time_limit, memory_limit, repeat, tol, first_order, progress)
    rows: list[dict[str, Any]] = []
    for d in d_values:
        for T in T_values:
            say(progress, f"T={T} d={d}: generating the instance")
            inst = make_bench_instance(
                T, d, lam=lam, mu=mu, n_samples=n_samples, random_state=random_state, tol=tol
            )
            for step in steps:
                rows.extend(run.step_rows(inst, step))
    return rows


class _BenchRun:
    """The settings of one :func:`run_benchmark` call and the state of its skip rules."""

    def __init__(self, solvers: Sequence[str], installed: set[str], time_limit: float, memory_limit: float,
                 repeat: int, tol: float, first_order: bool, progress: Callable[[str], None] | None) -> None:
        self.solvers, self.installed, self.repeat, self.tol = solvers, installed, repeat, tol
        self.time_limit, self.memory_limit = time_limit, memory_limit
        self.first_order, self.progress = first_order, progress
        # (step, d, solver) -> reason it is skipped at larger T
        self.skipped: dict[tuple[str, int, str], str] = {}
        # (step, d, solver) -> [(T, peak memory in bytes), ...]
        self.memory: dict[tuple[str, int, str], list[tuple[int, float]]] = {}

    def step_rows(self, inst: BenchInstance, step: str) -> list[dict[str, Any]]:
        """Time ``step`` of ``inst`` with every backend: one row per backend."""
        T, d, tol = inst.T, inst.d, self.tol
        # the first-order B-step's repetitions alternate with the fast solver's (a drift
        # of the machine's speed then leaves their ratio alone)
        kinds = [False, True] if self.first_order and step == "bstep" else [False]
        timed_runs = _time_fast(inst, step, self.repeat, tol, kinds)
        fast = timed_runs[0]
        obj_fast = step_objective(inst, step, fast["solution"])
        ref = fast["total_time"]
        measured = [("fast", fast)]
        say(self.progress, f"{step} T={T} d={d} fast: {ref:.3g} s ({fast['status']})")
        if len(timed_runs) > 1:
            fo = timed_runs[1]
            measured.append(("fast-first-order", fo))
            say(self.progress, f"{step} T={T} d={d} fast-first-order: {fo['total_time']:.3g} s ({fo['status']})")
        for solver in self.solvers:
            backend = f"cvxpy-{solver}"
            out = self._cvxpy(inst, step, solver)
            say(self.progress, f"{step} T={T} d={d} {backend}: {format_seconds(out['total_time'])} ({out['status']})")
            measured.append((backend, out))
        rows = []
        for backend, out in measured:
            obj = step_objective(inst, step, out["solution"])
            rows.append({
                "step": step,
                "T": T,
                "d": d,
                "backend": backend,
                "compile_time": out["compile_time"],
                "solve_time": out["solve_time"],
                "total_time": out["total_time"],
                "wall_time": out["wall_time"],
                "peak_memory_mb": out["peak_memory"] / 1e6,
                "ratio": out["total_time"] / ref if ref > 0 else NAN,
                "objective": obj,
                "rel_gap": rel_gap(obj, obj_fast),
                "status": out["status"],
            })
        return rows

    def _cvxpy(self, inst: BenchInstance, step: str, solver: str) -> dict[str, Any]:
        """One CVXPY measurement, or an empty one when a skip rule applies."""
        T, key = inst.T, (step, inst.d, solver)
        predicted = predict_memory(self.memory.get(key, []), T)
        if solver not in self.installed:
            return _empty("n/a (not installed)")
        if key in self.skipped:
            return _empty(f"skipped: {self.skipped[key]}")
        if predicted > self.memory_limit:
            T_prev, m_prev = self.memory[key][-1]
            self.skipped[key] = (
                f"predicted memory {predicted / 1e9:.3g} GB > memory limit "
                f"{self.memory_limit / 1e9:.3g} GB at T={T} ({m_prev / 1e9:.3g} GB at T={T_prev})"
            )
            return _empty(f"skipped: {self.skipped[key]}")
        out = _time_cvxpy(inst, step, solver)
        self.memory.setdefault(key, []).append((T, out["peak_memory"]))
        if out["wall_time"] > self.time_limit:
            self.skipped[key] = (
                f"cvxpy-{solver} took {out['wall_time']:.3g} s > time_limit {self.time_limit:g} s at T={T}"
            )
        return out


def _empty(status: str) -> dict[str, Any]:
    return {
        "compile_time": NAN, "solve_time": NAN, "total_time": NAN, "wall_time": NAN,
        "peak_memory": NAN, "solution": None, "status": status,
    }


# --------------------------------------------------------------------------- timing


def _time_fast(inst: BenchInstance, step: str, repeat: int, tol: float,
               first_order: Sequence[bool] = (False,)) -> list[dict[str, Any]]:
    """For each flag of ``first_order``, the fast solver (``False``) or, for the B-step,
    :func:`solvers.first_order.solve_transfer_first_order` (``True``): one warm-up each,
    then the medians of ``repeat`` timed runs, the runs of the solvers alternating
    (:func:`~amtl_cvx.tools.timing.time_interleaved`)."""
    import solvers.tasks as fast_tasks

    def runner(fo: bool) -> Callable[[], tuple[float, float, Any]]:
        def run() -> tuple[float, float, Any]:
            if step == "bstep":
                seconds, out = timed(solve_fast, inst, step, tol, first_order=fo)
                return 0.0, seconds, out
            t0 = time.perf_counter()
            grams = fast_tasks.precompute_grams(inst.data.Xs, inst.data.ys)
            t1 = time.perf_counter()
            seconds, out = timed(solve_fast, inst, step, tol, grams=grams)
            return t1 - t0, seconds, out

        return run

    outs = []
    for out in time_interleaved([runner(fo) for fo in first_order], repeat):
        solution, res = out.pop("result")
        outs.append({**out, "solution": solution, "status": certificate_status(res, iterations=True)})
    return outs


def _time_cvxpy(inst: BenchInstance, step: str, solver: str) -> dict[str, Any]:
    """Build, compile and solve the statement once with ``solver``."""
    import cvxpy as cp

    from amtl_cvx.problems.exact import ExactSolveError

    mark = memory_mark()
    t0 = time.perf_counter()
    try:
        problem = build_statement(inst, step)
        t1 = time.perf_counter()
        result = problem.solve(solver)
    except (ExactSolveError, cp.error.SolverError, MemoryError) as exc:
        message = str(exc) or type(exc).__name__
        wall = time.perf_counter() - t0
        return {
            "compile_time": NAN, "solve_time": NAN, "total_time": NAN,
            "wall_time": wall, "peak_memory": memory_peak_since(mark), "solution": None,
            "status": f"failed: {message}",
        }
    wall = time.perf_counter() - t0
    compile_time = (t1 - t0) + result.stats.compile_time
    return {
        "compile_time": compile_time,
        "solve_time": result.stats.solve_time,
        "total_time": compile_time + result.stats.solve_time,
        "wall_time": wall,
        "peak_memory": memory_peak_since(mark),
        "solution": np.asarray(result.solution, dtype=np.float64),
        "status": result.stats.status,
    }


def _warm_up_cvxpy(steps: Sequence[str], solvers: Sequence[str]) -> None:
    """Solve a tiny instance once per step and solver: first-call costs (imports, caches)
    are then not charged to the first timed size."""
    inst = make_bench_instance(3, 2)
    for step in steps:
        for solver in solvers:
            _time_cvxpy(inst, step, solver)
