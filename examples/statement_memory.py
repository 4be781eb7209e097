"""Peak memory of one CVXPY statement: build, compile and solve, in this process.

Usage (from the repository root; one measurement per process, so run it once per case)::

    python examples/statement_memory.py STEP LOSS SOLVER FORM T D [ROWS_PER_TASK]

    python examples/statement_memory.py bstep squared ECOS dpp 140 28
    python examples/statement_memory.py wstep logistic CLARABEL constant 140 28

``STEP`` is bstep, wstep or curriculum; ``FORM`` is ``dpp`` (forced, whatever the memory
model says), ``constant`` (forced) or ``auto`` (the package's choice). The instance is
``amtl_cvx.tools.verification.make_instance`` on a planted problem (``make_regression_tasks`` or
``make_classification_tasks`` with ``D - 1`` features plus the bias, 30 rows per task by
default). Prints one JSON line: wall time, the peak growth of the resident set (Linux
``clear_refs`` / ``VmHWM``) and the status. These are the measurements behind
``amtl_cvx/problems/memory.py`` and the table in docs/algorithms.md. Run it with
``ulimit -v`` set (or in a container) before trying the DPP cone forms at T >= 60: they
ask for tens of gigabytes.
"""

from __future__ import annotations

import json
import math
import sys
import time

from amtl_cvx import make_classification_tasks, make_regression_tasks
from amtl_cvx.tools.timing import memory_mark as _memory_mark, memory_peak_since as _memory_peak_since
from amtl_cvx.problems import memory
from amtl_cvx.tools.verification import _cvxpy_solve, make_instance


def main(argv: list[str]) -> None:
    step, loss, solver, form, T, d = argv[:6]
    T, d = int(T), int(d)
    rows = int(argv[6]) if len(argv) > 6 else 30
    if form == "dpp":
        memory.DPP_BUDGET_BYTES = math.inf
        memory.available_memory = lambda: math.inf
    elif form == "constant":
        memory.DPP_BUDGET_BYTES = 0
    make = make_regression_tasks if loss == "squared" else make_classification_tasks
    dataset = make(n_tasks=T, n_features=d - 1, n_samples=rows, random_state=0)
    inst = make_instance(dataset, step, lam=1.0, mu=0.1)
    mark = _memory_mark()
    t0 = time.perf_counter()
    try:
        _, result = _cvxpy_solve(inst, solver)
        status = result.stats.status
    except Exception as exc:  # report, do not crash: the point is to measure
        status = f"{type(exc).__name__}: {str(exc)[:120]}"
    elapsed = time.perf_counter() - t0
    print(json.dumps({
        "step": step, "loss": loss, "solver": solver, "form": form, "T": T, "d": d, "rows": rows * T,
        "time_s": round(elapsed, 2), "peak_mb": round(_memory_peak_since(mark) / 2**20, 1), "status": status,
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
