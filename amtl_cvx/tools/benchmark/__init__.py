r"""Timing benchmark: the fast solvers against CVXPY (OSQP, ECOS, Clarabel), in one process.

Two benchmarks, both returning rows in long format (one row per measurement, benchopt
style) that :func:`write_csv` / :func:`write_json` store and :func:`format_benchmark_table`
/ :func:`format_fit_table` render as plain text (through pandas):

- :func:`run_benchmark` times single subproblems: the B-step and the squared-loss
  W-step, over a grid of task counts ``T`` and feature counts ``d``, on generated
  planted problems (:func:`amtl_cvx.make_regression_tasks`, 30 training rows per task).
  ``W`` for the B-step are single-task ridge fits (penalty ``lam``), the prices
  ``p = mu L(W)``; ``B`` for the W-step is the fast B-step solution at that ``W`` and the
  weights ``a = 1 + mu B.sum(1)`` (``c = 1``, ``ridge = 0``).
- :func:`run_fit_benchmark` times whole fits (:func:`amtl_cvx.fit_alternating` to
  convergence) with backend ``"fast"`` and ``"cvxpy"``.

Every objective is evaluated with the numpy definitions of :mod:`amtl_cvx.problems.objective` at
the returned solution; ``rel_gap = (obj_backend - obj_fast) / max(1, |obj_fast|)``.
Library code prints nothing: pass ``progress`` (for example ``print``) to see status
lines.

Modules: :mod:`~amtl_cvx.tools.benchmark.instances` (the generated problems),
:mod:`~amtl_cvx.tools.benchmark.subproblems` (:func:`run_benchmark`),
:mod:`~amtl_cvx.tools.benchmark.fits` (:func:`run_fit_benchmark`),
:mod:`~amtl_cvx.tools.benchmark.report` (the tables); the timing, the solves and the
files are shared with the verification (:mod:`amtl_cvx.tools.timing`,
:mod:`amtl_cvx.tools.subproblems`, :mod:`amtl_cvx.tools.results`).
"""

from amtl_cvx.tools.benchmark.fits import FIT_COLUMNS, run_fit_benchmark
from amtl_cvx.tools.benchmark.instances import BenchInstance, make_bench_instance
from amtl_cvx.tools.benchmark.report import format_benchmark_table, format_fit_table
from amtl_cvx.tools.benchmark.subproblems import (
    BENCH_COLUMNS,
    BENCH_SOLVERS,
    BENCH_STEPS,
    DEFAULT_D_VALUES,
    DEFAULT_T_VALUES,
    run_benchmark,
)
from amtl_cvx.tools.results import write_csv, write_json
from amtl_cvx.tools.timing import MEMORY_EXPONENT_FLOOR

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
