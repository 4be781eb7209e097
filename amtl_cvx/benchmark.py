r"""Timing benchmark: the fast solvers against CVXPY (OSQP, ECOS, Clarabel), in one process.

Two benchmarks, both returning rows in long format (one row per measurement, benchopt
style) that :func:`write_csv` / :func:`write_json` store and :func:`format_benchmark_table`
/ :func:`format_fit_table` render as plain text:

- :func:`run_benchmark` times single subproblems: the B-step and the squared-loss
  W-step, over a grid of task counts ``T`` and feature counts ``d``, on generated
  planted problems (:func:`amtl_cvx.make_regression_tasks`, 30 training rows per task).
  ``W`` for the B-step are single-task ridge fits (penalty ``lam``), the prices
  ``p = mu L(W)``; ``B`` for the W-step is the fast B-step solution at that ``W`` and the
  weights ``a = 1 + mu B.sum(1)`` (``c = 1``, ``ridge = 0``).
- :func:`run_fit_benchmark` times whole fits (:func:`amtl_cvx.fit_alternating` to
  convergence) with backend ``"fast"`` and ``"cvxpy"``.

Every objective is evaluated with the numpy definitions of :mod:`amtl_cvx.objective` at
the returned solution; ``rel_gap = (obj_backend - obj_fast) / max(1, |obj_fast|)``.
Library code prints nothing: pass ``progress`` (for example ``print``) to see status
lines.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
import time
import warnings
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from amtl_cvx._validation import check_scalar
from amtl_cvx.objective import bstep_objective, loss_weights, task_losses, wstep_objective
from amtl_cvx.problems.memory import available_memory as _available_memory
from amtl_cvx.verification import CVXPY_SOLVERS, render_table

__all__ = [
    "BENCH_STEPS",
    "DEFAULT_T_VALUES",
    "DEFAULT_D_VALUES",
    "BENCH_SOLVERS",
    "BENCH_COLUMNS",
    "FIT_COLUMNS",
    "MEMORY_EXPONENT_FLOOR",
    "BenchInstance",
    "make_bench_instance",
    "run_benchmark",
    "run_fit_benchmark",
    "write_csv",
    "write_json",
    "format_benchmark_table",
    "format_fit_table",
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
#: Keys of a :func:`run_fit_benchmark` row.
FIT_COLUMNS = (
    "problem",
    "T",
    "d",
    "lam",
    "mu",
    "ridge",
    "transfer_ridge",
    "backend",
    "method",
    "time",
    "n_iter",
    "time_per_iter",
    "converged",
    "objective",
    "rel_gap",
    "status",
)

_NAN = float("nan")
_STEP_NAMES = {"bstep": "B-step", "wstep": "W-step (squared loss)"}


def _say(progress: Callable[[str], None] | None, message: str) -> None:
    if progress is not None:
        progress(message)


def _rel_gap(obj: float, ref: float) -> float:
    if not (math.isfinite(obj) and math.isfinite(ref)):
        return _NAN
    return (obj - ref) / max(1.0, abs(ref))


# --------------------------------------------------------------------------- instances


@dataclass(frozen=True)
class BenchInstance:
    """A generated planted problem with the data of its B-step and W-step.

    Attributes
    ----------
    T, d : int
    data : MultiTaskData
        Training split (``n_samples`` rows per task).
    lam, mu : float
    W : numpy.ndarray, shape (d, T)
        Single-task ridge fits (penalty ``lam``): the B-step's fixed ``W``.
    penalty : numpy.ndarray, shape (T,)
        B-step prices ``p = mu * L(W)``.
    B : numpy.ndarray, shape (T, T)
        The fast B-step solution at ``W``: the W-step's fixed ``B``.
    weights : numpy.ndarray, shape (T,)
        W-step loss weights ``a = 1 + mu * B.sum(1)``.
    """

    T: int
    d: int
    data: Any
    lam: float
    mu: float
    W: np.ndarray
    penalty: np.ndarray
    B: np.ndarray
    weights: np.ndarray


def make_bench_instance(
    T: int,
    d: int,
    *,
    lam: float = 1.0,
    mu: float = 0.1,
    n_samples: int = 30,
    random_state: int | None = 0,
    tol: float = 1e-10,
) -> BenchInstance:
    """Generate the planted problem of size ``(T, d)`` and its step data.

    Parameters
    ----------
    T : int
        Number of tasks (``>= 2``).
    d : int
        Number of features (``>= 1``).
    lam : float, default=1.0
    mu : float, default=0.1
    n_samples : int, default=30
        Training rows per task.
    random_state : int or None, default=0
    tol : float, default=1e-10
        Tolerance of the fast B-step that provides ``B``.

    Returns
    -------
    BenchInstance
    """
    from amtl_cvx.baselines import fit_single_task
    from amtl_cvx.generators import make_regression_tasks
    import solvers.transfer as fast_transfer

    T = _check_int(T, "T", 2)
    d = _check_int(d, "d", 1)
    n_samples = _check_int(n_samples, "n_samples", 1)
    lam = check_scalar(lam, "lam", strict=True)
    mu = check_scalar(mu, "mu")
    ds = make_regression_tasks(
        n_tasks=T, n_features=d, n_samples=n_samples, n_val=1, n_test=1,
        n_parents=min(2, max(1, T // 3)), random_state=random_state,
    )
    data = ds.train
    W = fit_single_task(data, lam, "squared")
    penalty = mu * task_losses(W, data, "squared")
    B = np.asarray(fast_transfer.solve_transfer(W, penalty, lam, tol=tol).solution, dtype=np.float64)
    weights = loss_weights(B, np.ones(T), mu)
    return BenchInstance(T, d, data, lam, mu, W, penalty, B, weights)


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (Integral, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_ints(values: Any, name: str, minimum: int) -> list[int]:
    if isinstance(values, (Integral, np.integer)) and not isinstance(values, bool):
        values = [values]
    try:
        values = list(values)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of integers, got {values!r}") from None
    if not values:
        raise ValueError(f"{name} must hold at least one value")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (Integral, np.integer)) or v < minimum:
            raise ValueError(f"{name} must hold integers >= {minimum}, got {v!r}")
        out.append(int(v))
    return sorted(set(out))


def _check_names(values: Any, name: str, allowed: Sequence[str], upper: bool = False) -> list[str]:
    if isinstance(values, str):
        values = [values]
    try:
        values = [str(v).upper() if upper else str(v) for v in values]
    except TypeError:
        raise ValueError(f"{name} must be a sequence of names among {tuple(allowed)}") from None
    for v in values:
        if v not in allowed:
            raise ValueError(f"{name} must name values among {tuple(allowed)}, got {v!r}")
    if not values:
        raise ValueError(f"{name} must name at least one of {tuple(allowed)}")
    return list(dict.fromkeys(values))


# --------------------------------------------------------------------------- memory


def _proc_status_bytes(key: str) -> int | None:
    """``VmRSS`` / ``VmHWM`` of this process from ``/proc/self/status`` (Linux), in bytes."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _memory_mark() -> int | None:
    """Reset the process's peak resident set (Linux ``clear_refs``); return the current one.

    ``None`` when the platform does not support it (the memory rule is then inactive).
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return None
    return _proc_status_bytes("VmRSS")


def _memory_peak_since(mark: int | None) -> float:
    """Peak resident-set growth (bytes) since :func:`_memory_mark`, NaN if unknown."""
    if mark is None:
        return _NAN
    peak = _proc_status_bytes("VmHWM")
    return _NAN if peak is None else float(max(0, peak - mark))


#: Smallest growth exponent ``k`` assumed when predicting memory ``~ T**k``.
MEMORY_EXPONENT_FLOOR = 3.0
_MEMORY_FIT_FLOOR = 50e6  # measurements below this are too noisy to fit an exponent


def _predict_memory(history: list[tuple[int, float]], T: int) -> float:
    """Predict peak memory at ``T`` from ``[(T_i, memory_i), ...]`` (increasing T_i)."""
    known = [(t, m) for t, m in history if math.isfinite(m)]
    if not known:
        return _NAN
    T1, m1 = known[-1]
    k = MEMORY_EXPONENT_FLOOR
    if len(known) >= 2:
        T0, m0 = known[-2]
        if m0 >= _MEMORY_FIT_FLOOR and m1 >= _MEMORY_FIT_FLOOR and T1 > T0:
            k = max(k, math.log(m1 / m0) / math.log(T1 / T0))
    return max(m1, _MEMORY_FIT_FLOOR) * (T / T1) ** k


# --------------------------------------------------------------------------- timing


def _time_fast(inst: BenchInstance, step: str, repeat: int, tol: float, first_order: bool = False) -> dict[str, Any]:
    """One warm-up, then the median of ``repeat`` timed runs of the fast solver (for the
    B-step with ``first_order``: :func:`solvers.first_order.solve_transfer_first_order`)."""
    import solvers.first_order as fast_first_order
    import solvers.tasks as fast_tasks
    import solvers.transfer as fast_transfer

    data = inst.data

    def run() -> tuple[float, float, Any]:
        if step == "bstep":
            t0 = time.perf_counter()
            if first_order:
                res = fast_first_order.solve_transfer_first_order(
                    inst.W, inst.penalty, inst.lam, tol=tol, sparse_output=False
                )
            else:
                res = fast_transfer.solve_transfer(inst.W, inst.penalty, inst.lam, tol=tol)
            return 0.0, time.perf_counter() - t0, res
        t0 = time.perf_counter()
        grams = fast_tasks.precompute_grams(data.Xs, data.ys)
        t1 = time.perf_counter()
        res = fast_tasks.solve_tasks(
            data.Xs, data.ys, inst.B, inst.lam, loss="squared", weights=inst.weights, tol=tol, grams=grams
        )
        return t1 - t0, time.perf_counter() - t1, res

    mark = _memory_mark()
    run()  # warm-up
    memory = _memory_peak_since(mark)
    compile_times, solve_times, totals = [], [], []
    res = None
    for _ in range(repeat):
        c, s, res = run()
        compile_times.append(c)
        solve_times.append(s)
        totals.append(c + s)
    verdict = "converged" if res.converged else "not converged"
    return {
        "compile_time": statistics.median(compile_times),
        "solve_time": statistics.median(solve_times),
        "total_time": statistics.median(totals),
        "wall_time": statistics.median(totals),
        "peak_memory": memory,
        "solution": np.asarray(res.solution, dtype=np.float64),
        "status": f"{verdict} (certificate {res.certificate:.1e}, {res.n_iter} iterations)",
    }


def _time_cvxpy(inst: BenchInstance, step: str, solver: str) -> dict[str, Any]:
    """Build, compile and solve the statement once with ``solver``."""
    import cvxpy as cp

    from amtl_cvx.exact import ExactSolveError
    from amtl_cvx.problems import TasksProblem, TransferProblem

    mark = _memory_mark()
    t0 = time.perf_counter()
    try:
        if step == "bstep":
            problem = TransferProblem(inst.d, inst.T)
            t1 = time.perf_counter()
            problem.set(inst.W, inst.penalty, inst.lam)
        else:
            problem = TasksProblem(inst.data, "squared")
            t1 = time.perf_counter()
            problem.set(inst.B, inst.lam, inst.weights)
        t2 = time.perf_counter()
        result = problem.solve(solver)
    except (ExactSolveError, cp.error.SolverError, MemoryError) as exc:
        message = str(exc) or type(exc).__name__
        wall = time.perf_counter() - t0
        return {
            "compile_time": _NAN, "solve_time": _NAN, "total_time": _NAN,
            "wall_time": wall, "peak_memory": _memory_peak_since(mark), "solution": None,
            "status": f"failed: {message}",
        }
    wall = time.perf_counter() - t0
    compile_time = (t1 - t0) + (t2 - t1) + result.stats.compile_time
    return {
        "compile_time": compile_time,
        "solve_time": result.stats.solve_time,
        "total_time": compile_time + result.stats.solve_time,
        "wall_time": wall,
        "peak_memory": _memory_peak_since(mark),
        "solution": np.asarray(result.solution, dtype=np.float64),
        "status": result.stats.status,
    }


def _objective(inst: BenchInstance, step: str, solution: np.ndarray | None) -> float:
    if solution is None:
        return _NAN
    if step == "bstep":
        return bstep_objective(inst.W, solution, inst.penalty, inst.lam)
    return wstep_objective(solution, inst.B, inst.data, lam=inst.lam, weights=inst.weights, loss="squared")


def _warm_up_cvxpy(steps: Sequence[str], solvers: Sequence[str]) -> None:
    """Solve a tiny instance once per step and solver: first-call costs (imports, caches)
    are then not charged to the first timed size."""
    inst = make_bench_instance(3, 2)
    for step in steps:
        for solver in solvers:
            _time_cvxpy(inst, step, solver)


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
      :mod:`amtl_cvx.exact`, once, on a freshly built statement: ``compile_time`` is the
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
       :data:`MEMORY_EXPONENT_FLOOR` (3); if the prediction exceeds
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
        is the numpy objective (:func:`amtl_cvx.objective.bstep_objective` /
        :func:`~amtl_cvx.objective.wstep_objective`) at the backend's solution;
        ``rel_gap = (objective - objective_fast) / max(1, |objective_fast|)``;
        ``status`` the fast solver's convergence, the CVXPY status (``"optimal"``),
        ``"failed: <message>"``, ``"skipped: <reason>"`` or ``"n/a (not installed)"``.

    Raises
    ------
    ValueError
        On a bad argument (the message names it).
    """
    from amtl_cvx.exact import available_solvers

    T_values = _check_ints(T_values, "T_values", 2)
    d_values = _check_ints(d_values, "d_values", 1)
    steps = _check_names(steps, "steps", BENCH_STEPS)
    solvers = _check_names(solvers, "solvers", CVXPY_SOLVERS, upper=True)
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
    repeat = _check_int(repeat, "repeat", 1)
    lam = check_scalar(lam, "lam", strict=True)
    mu = check_scalar(mu, "mu")
    tol = check_scalar(tol, "tol", strict=True)
    if progress is not None and not callable(progress):
        raise ValueError("progress must be a callable taking one string, or None")
    installed = set(available_solvers())
    runnable = [s for s in solvers if s in installed]
    if runnable:
        _say(progress, "warming up the CVXPY solvers")
        _warm_up_cvxpy(steps, runnable)

    rows: list[dict[str, Any]] = []
    # (step, d, solver) -> reason it is skipped at larger T
    skipped: dict[tuple[str, int, str], str] = {}
    # (step, d, solver) -> [(T, peak memory in bytes), ...]
    memory: dict[tuple[str, int, str], list[tuple[int, float]]] = {}
    for d in d_values:
        for T in T_values:
            _say(progress, f"T={T} d={d}: generating the instance")
            inst = make_bench_instance(
                T, d, lam=lam, mu=mu, n_samples=n_samples, random_state=random_state, tol=tol
            )
            for step in steps:
                fast = _time_fast(inst, step, repeat, tol)
                obj_fast = _objective(inst, step, fast["solution"])
                ref = fast["total_time"]
                measured = [("fast", fast)]
                _say(progress, f"{step} T={T} d={d} fast: {ref:.3g} s ({fast['status']})")
                if first_order and step == "bstep":
                    fo = _time_fast(inst, step, repeat, tol, first_order=True)
                    measured.append(("fast-first-order", fo))
                    _say(progress, f"{step} T={T} d={d} fast-first-order: {fo['total_time']:.3g} s "
                                   f"({fo['status']})")
                for solver in solvers:
                    backend = f"cvxpy-{solver}"
                    key = (step, d, solver)
                    predicted = _predict_memory(memory.get(key, []), T)
                    if solver not in installed:
                        out = _empty("n/a (not installed)")
                    elif key in skipped:
                        out = _empty(f"skipped: {skipped[key]}")
                    elif predicted > memory_limit:
                        T_prev, m_prev = memory[key][-1]
                        skipped[key] = (
                            f"predicted memory {predicted / 1e9:.3g} GB > memory limit "
                            f"{memory_limit / 1e9:.3g} GB at T={T} ({m_prev / 1e9:.3g} GB at T={T_prev})"
                        )
                        out = _empty(f"skipped: {skipped[key]}")
                    else:
                        out = _time_cvxpy(inst, step, solver)
                        memory.setdefault(key, []).append((T, out["peak_memory"]))
                        if out["wall_time"] > time_limit:
                            skipped[key] = (
                                f"{backend} took {out['wall_time']:.3g} s > time_limit "
                                f"{time_limit:g} s at T={T}"
                            )
                    _say(progress, f"{step} T={T} d={d} {backend}: {_fmt_s(out['total_time'])} ({out['status']})")
                    measured.append((backend, out))
                for backend, out in measured:
                    obj = _objective(inst, step, out["solution"])
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
                        "ratio": out["total_time"] / ref if ref > 0 else _NAN,
                        "objective": obj,
                        "rel_gap": _rel_gap(obj, obj_fast),
                        "status": out["status"],
                    })
    return rows


def _empty(status: str) -> dict[str, Any]:
    return {
        "compile_time": _NAN, "solve_time": _NAN, "total_time": _NAN, "wall_time": _NAN,
        "peak_memory": _NAN, "solution": None, "status": status,
    }


def _fmt_s(seconds: float) -> str:
    return "-" if not math.isfinite(seconds) else f"{seconds:.3g} s"


# --------------------------------------------------------------------------- full fits


def run_fit_benchmark(
    mat_path: str | os.PathLike | None = None,
    *,
    n_tasks: int = 200,
    n_features: int = 20,
    n_samples: int = 30,
    lam_release: float = 10.0,
    lam_generated: float = 1.0,
    mu: float = 0.1,
    max_iter: int = 1000,
    tol: float = 1e-6,
    solver: str | None = None,
    max_iter_cvxpy: int | None = None,
    repeat: int = 3,
    random_state: int | None = 0,
    include_generated: bool = True,
    include_tabular: bool = True,
    tabular_tasks: int = 140,
    ridge_tabular: float = 0.1,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Time whole AMTL fits (Algorithm 1 to convergence): backend "fast" vs "cvxpy".

    Problems:

    (a) the release's ``synthetic_dataset.mat`` at ``mat_path`` (loaded with
        :func:`amtl_cvx.load_release_mat`, bias column appended), ``lam = lam_release``
        (10), ``mu``; skipped when ``mat_path`` is None;
    (b) a generated planted problem (:func:`amtl_cvx.make_regression_tasks`) with
        ``n_tasks`` (200) tasks, ``n_features`` features and ``n_samples`` rows per task,
        ``lam = lam_generated`` (1), ``mu``; skipped when ``include_generated`` is False;
    (c) a real-data-like problem (:func:`amtl_cvx.make_tabular_tasks`: ``tabular_tasks``
        (140) tasks, one-hot groups collinear with the bias, integer features in the
        tens, many tasks with fewer rows than features), ``lam = lam_generated``,
        ``mu``, ``ridge = ridge_tabular`` (0.1: at ``ridge = 0`` this problem has no
        minimiser, see docs/algorithms.md) and the default transfer ridge (``"auto"``:
        without it ``B`` is unbounded on such data); fast backend only (the CVXPY statements at
        140 tasks and 28 features need more memory than a small machine has);
        skipped when ``include_tabular`` is False.

    Each is fitted by :func:`amtl_cvx.fit_alternating` (squared loss; (a) and (b) with the
    paper's objective, ``ridge = transfer_ridge = 0``;
    ``max_iter``, ``tol``) from the same single-task start three times: by alternation
    with both backends (fast and CVXPY subproblems, the same algorithm), and by the fast
    backend's L-BFGS method (``method="lbfgs"``). ``rel_gap`` is relative to the fast
    alternation. ``converged`` is the KKT certificate test of ``fit_alternating``.

    Cost (measured on 2 cores, ``tol = 1e-6``, :func:`~amtl_cvx.fit_alternating`'s
    default extrapolation): the fast backend converges in 89 alternations on the release
    data and in 463 (about 2 minutes) on the default 200-task problem, so the default
    ``max_iter`` (1000) reaches convergence. The CVXPY fit of the 200-task problem (a
    40,000-variable B-step QP per alternation) is far slower: about 90 s per alternation
    with the automatic solver ladder (OSQP stalls on these B-steps before Clarabel takes
    over), i.e. hours to convergence, and about 5 s with ``solver="CLARABEL"``. Lower
    ``max_iter`` or ``n_tasks`` for a quick run: ``converged`` tells whether the stopping
    test was met and ``time_per_iter`` compares the backends' cost per alternation
    either way.

    Parameters
    ----------
    mat_path : str or path-like, optional
        Path of ``synthetic_dataset.mat`` (or another regression file of the release).
    n_tasks, n_features, n_samples : int
        Size of the generated problem.
    lam_release, lam_generated, mu : float
    max_iter : int, default=1000
    tol : float, default=1e-6
        Tolerance on the fits' KKT certificate.
    solver : str, optional
        CVXPY solver for the ``"cvxpy"`` backend (default: the automatic ladder).
    random_state : int or None, default=0
    repeat : int, default=3
        The fast fit is run once as a warm-up and then ``repeat`` times; its median
        time is reported (the CVXPY fit, much slower, is run once).
    max_iter_cvxpy : int, optional
        Cap on the CVXPY backend's alternations (default ``max_iter``). A capped run is
        not to convergence: compare its ``time_per_iter`` (and its objective after
        as many alternations), not its total time.
    include_generated : bool, default=True
    include_tabular : bool, default=True
    tabular_tasks : int, default=140
    ridge_tabular : float, default=0.1
    progress : callable, optional
        Called with one status line per fit.

    Returns
    -------
    list of dict
        One row per (problem, backend, method), keys :data:`FIT_COLUMNS`: ``time`` (wall
        seconds of the fit, including the single-task start), ``n_iter`` (alternations
        or L-BFGS iterations),
        ``time_per_iter`` (``time / n_iter``), ``converged``, ``objective``
        (final ``F(W, B)``, numpy), ``rel_gap = (objective - objective_fast) /
        max(1, |objective_fast|)`` and ``status`` (``"ok"``, the number of
        convergence warnings of the fast solvers, or ``"failed: <message>"``).

    Raises
    ------
    ValueError
        On a bad argument (the message names it).
    """
    from amtl_cvx.generators import make_regression_tasks, make_tabular_tasks
    from amtl_cvx.loaders import load_release_mat

    n_tasks = _check_int(n_tasks, "n_tasks", 2)
    tabular_tasks = _check_int(tabular_tasks, "tabular_tasks", 2)
    ridge_tabular = check_scalar(ridge_tabular, "ridge_tabular")
    n_features = _check_int(n_features, "n_features", 1)
    n_samples = _check_int(n_samples, "n_samples", 1)
    lam_release = check_scalar(lam_release, "lam_release", strict=True)
    lam_generated = check_scalar(lam_generated, "lam_generated", strict=True)
    mu = check_scalar(mu, "mu")
    max_iter = _check_int(max_iter, "max_iter", 1)
    tol = check_scalar(tol, "tol")
    if solver is not None:
        solver = _check_names(solver, "solver", CVXPY_SOLVERS, upper=True)[0]
    if max_iter_cvxpy is not None:
        max_iter_cvxpy = _check_int(max_iter_cvxpy, "max_iter_cvxpy", 1)
    repeat = _check_int(repeat, "repeat", 1)

    both = (("fast", "alternating"), ("cvxpy", "alternating"), ("fast", "lbfgs"))
    problems: list[tuple[str, Any, float, float, Any, tuple]] = []
    if mat_path is not None:
        path = Path(mat_path)
        if not path.is_file():
            raise ValueError(f"mat_path {str(path)!r} is not a file")
        dataset = load_release_mat(path)
        if dataset.loss != "squared":
            raise ValueError(f"mat_path must hold a regression data set, {path.name} is {dataset.loss}")
        problems.append((path.stem, dataset.train, lam_release, 0.0, 0.0, both))
    if include_generated:
        ds = make_regression_tasks(
            n_tasks=n_tasks, n_features=n_features, n_samples=n_samples, n_val=1, n_test=1,
            n_parents=min(2, max(1, n_tasks // 3)), random_state=random_state,
        )
        problems.append((ds.name, ds.train, lam_generated, 0.0, 0.0, both))
    if include_tabular:
        tab = make_tabular_tasks(n_tasks=tabular_tasks, random_state=random_state)
        problems.append((tab.name, tab.train, lam_generated, ridge_tabular, "auto",
                         (("fast", "alternating"), ("fast", "lbfgs"))))

    rows: list[dict[str, Any]] = []
    for name, data, lam, ridge, transfer_ridge, methods in problems:
        obj_fast = _NAN
        for backend, method in methods:
            _say(progress, f"fit {name} (T={data.n_tasks}, d={data.n_features}) backend {backend}, {method}")
            cap = max_iter if backend == "fast" or max_iter_cvxpy is None else max_iter_cvxpy
            args = (data, name, lam, mu, ridge, transfer_ridge, backend, solver if backend == "cvxpy" else None,
                    cap, tol, method)
            row = _time_fit(*args)
            if backend == "fast" and repeat > 1:
                # like the subproblems: the first run was the warm-up, report the median
                runs = [_time_fit(*args) for _ in range(repeat)]
                row = sorted(runs, key=lambda r: r["time"])[len(runs) // 2]
            if backend == "fast" and method == "alternating":
                obj_fast = row["objective"]
            row["rel_gap"] = _rel_gap(row["objective"], obj_fast)
            _say(progress, f"fit {name} backend {backend}, {method}: {_fmt_s(row['time'])}, "
                           f"{row['n_iter']} iterations, F = {row['objective']:.10g} ({row['status']})")
            rows.append({key: row[key] for key in FIT_COLUMNS})
    return rows


def _time_fit(data, name, lam, mu, ridge, transfer_ridge, backend, solver, max_iter, tol, method) -> dict[str, Any]:
    from amtl_cvx.backends import ConvergenceWarning
    from amtl_cvx.exact import ExactSolveError
    from amtl_cvx.fit import fit_alternating

    row: dict[str, Any] = {
        "problem": name, "T": data.n_tasks, "d": data.n_features, "lam": lam, "mu": mu, "ridge": ridge,
        "backend": backend if solver is None else f"{backend}-{solver}", "method": method,
    }
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            fit = fit_alternating(
                data, lam=lam, mu=mu, loss="squared", ridge=ridge, max_iter=max_iter, tol=tol,
                backend=backend, solver=solver, method=method, transfer_ridge=transfer_ridge,
            )
        except ExactSolveError as exc:
            row.update(time=time.perf_counter() - t0, n_iter=0, time_per_iter=_NAN, converged=False,
                       objective=_NAN, status=f"failed: {exc}", transfer_ridge=_NAN)
            return row
    elapsed = time.perf_counter() - t0
    n_warn = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    row.update(
        time=elapsed, n_iter=fit.n_iter, time_per_iter=elapsed / max(1, fit.n_iter),
        converged=bool(fit.converged), objective=float(fit.objective), transfer_ridge=fit.transfer_ridge,
        status="ok" if n_warn == 0 else f"{n_warn} solver convergence warnings",
    )
    return row


# --------------------------------------------------------------------------- output


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    cols: dict[str, None] = {}
    for row in rows:
        for key in row:
            cols.setdefault(key, None)
    return list(cols)


def _check_rows(rows: Any) -> list[dict[str, Any]]:
    if isinstance(rows, dict) or not isinstance(rows, Iterable):
        raise ValueError("rows must be a sequence of row dicts")
    rows = list(rows)
    if not all(isinstance(r, dict) for r in rows):
        raise ValueError("rows must be a sequence of row dicts")
    return rows


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write rows to a CSV file (one column per key, in order of first appearance).

    Floats are written with full precision (``repr``); NaN as ``nan``, None as empty.

    Parameters
    ----------
    rows : sequence of dict
    path : str or path-like

    Returns
    -------
    pathlib.Path
        The file written.
    """
    rows = _check_rows(rows)
    path = Path(path)
    cols = _columns(rows)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols)
        writer.writeheader()
        for row in rows:
            out = {}
            for k in cols:
                v = _plain(row.get(k))
                out[k] = "" if v is None else (repr(v) if isinstance(v, float) else v)
            writer.writerow(out)
    return path


def write_json(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write rows to a JSON file: a list of objects; NaN and infinities become ``null``.

    Parameters
    ----------
    rows : sequence of dict
    path : str or path-like

    Returns
    -------
    pathlib.Path
        The file written.
    """
    rows = _check_rows(rows)
    path = Path(path)

    def clean(v: Any) -> Any:
        v = _plain(v)
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    payload = [{k: clean(v) for k, v in row.items()} for row in rows]
    with path.open("w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=1, allow_nan=False)
        fh.write("\n")
    return path


def _cell(row: dict[str, Any] | None, fast: bool) -> str:
    if row is None:
        return ""
    status = str(row.get("status", ""))
    if status.startswith("skipped"):
        return "skipped"
    if status.startswith("n/a"):
        return "n/a"
    total = row.get("total_time", _NAN)
    if not isinstance(total, (int, float)) or not math.isfinite(total):
        return "failed"
    if fast:
        return f"{total:.3g} s"
    return f"{total:.3g} s ({row.get('ratio', _NAN):.3g}x)"


def format_benchmark_table(rows: Sequence[dict[str, Any]]) -> str:
    """Plain-text summary of :func:`run_benchmark` rows, one block per step and ``d``.

    Each line is one ``T``: the fast solver's total time, then for every CVXPY backend
    its total time (compile + solve) and the ratio to the fast time, ``skipped``,
    ``failed`` or ``n/a``; the last column is the largest ``|rel_gap|`` among the CVXPY
    backends that returned a solution.

    Parameters
    ----------
    rows : sequence of dict

    Returns
    -------
    str
    """
    rows = _check_rows(rows)
    blocks = []
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["step"], int(row["d"])), []).append(row)
    for (step, d), group in groups.items():
        backends = list(dict.fromkeys(r["backend"] for r in group))
        if "fast" in backends:
            backends.remove("fast")
            backends.insert(0, "fast")
        table_rows = []
        for T in sorted({int(r["T"]) for r in group}):
            by_backend = {r["backend"]: r for r in group if int(r["T"]) == T}
            line: dict[str, Any] = {"T": T}
            gaps = []
            for b in backends:
                line[b] = _cell(by_backend.get(b), b == "fast")
                g = by_backend.get(b, {}).get("rel_gap", _NAN)
                if b != "fast" and isinstance(g, (int, float)) and math.isfinite(g):
                    gaps.append(abs(g))
            line["gap"] = max(gaps) if gaps else _NAN
            table_rows.append(line)
        columns = [("T", "T", "d")] + [(b, b, "") for b in backends] + [("gap", "max |rel gap|", ".1e")]
        title = f"{_STEP_NAMES.get(step, step)}, d = {d}: total time (compile + solve), ratio to fast"
        blocks.append(title + "\n" + render_table(table_rows, columns))
    return "\n\n".join(blocks)


_FIT_FORMAT = (
    ("problem", "problem", ""),
    ("T", "T", "d"),
    ("d", "d", "d"),
    ("lam", "lam", "g"),
    ("mu", "mu", "g"),
    ("ridge", "ridge", "g"),
    ("transfer_ridge", "transfer ridge", ".3g"),
    ("backend", "backend", ""),
    ("method", "method", ""),
    ("time", "time [s]", ".3g"),
    ("n_iter", "iterations", "d"),
    ("time_per_iter", "s / iteration", ".3g"),
    ("converged", "converged", ""),
    ("objective", "objective", ".12g"),
    ("rel_gap", "rel gap", ".1e"),
    ("status", "status", ""),
)


def format_fit_table(rows: Sequence[dict[str, Any]]) -> str:
    """Plain-text table of :func:`run_fit_benchmark` rows.

    Parameters
    ----------
    rows : sequence of dict

    Returns
    -------
    str
    """
    return render_table(_check_rows(rows), _FIT_FORMAT)
