"""Issue 13 target: the W-step on the release data, first-order vs solve_tasks, same tol.

Every W-step met along ``fit_alternating(method="alternating", max_iter=20)`` (fast
backend, default ridge) on the release regression files is recorded, then solved by
``solvers.tasks.solve_tasks`` and ``solvers.first_order_tasks.solve_tasks_first_order``
with the same tol (1e-9, the backends' default), the same cached Gram matrices and the
same warm start. Times: median over 7 interleaved repetitions of the mean time per
W-step. Gaps: relative objective gap of the first-order solution against CVXPY
(Clarabel, ``TasksProblem``) and against solve_tasks, largest over the W-steps.

    OMP_NUM_THREADS=1 python examples/wstep_first_order.py [DATA_DIR]    # default ../shared/data
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

import amtl_cvx.algorithms.alternating as fitmod
from amtl_cvx import fit_alternating, load_release_mat
from amtl_cvx.algorithms import ConvergenceWarning
from amtl_cvx.algorithms.backends import FastBackend
from amtl_cvx.problems.objective import wstep_objective
from amtl_cvx.problems import TasksProblem
from solvers.first_order_tasks import solve_tasks_first_order
from solvers.tasks import precompute_grams, solve_tasks

DATA = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data"
TOL = 1e-9
REPEAT = 7


def record(data, lam, mu):
    calls = []

    class Rec(FastBackend):
        def tasks(self, B, lam_, weights, ridge, W0=None):
            W = super().tasks(B, lam_, weights, ridge, W0)
            calls.append((B.copy(), lam_, weights.copy(), ridge, None if W0 is None else W0.copy()))
            return W

    real = fitmod.make_backend
    fitmod.make_backend = lambda backend, d, loss, solver=None, tol=1e-9, **kw: Rec(d, loss, tol)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit_alternating(data, lam=lam, mu=mu, max_iter=20, method="alternating")
    finally:
        fitmod.make_backend = real
    return calls


def main() -> None:
    print("file                    lam   mu  W-steps  solve_tasks [ms]  first-order [ms]  ratio  iters/step"
          "  gap vs CVXPY  gap vs solve_tasks  all converged")
    for name in ("synthetic_dataset", "synthetic_inbalance_1", "synthetic_inbalance_2", "synthetic_inbalance_3"):
        data = load_release_mat(DATA / f"{name}.mat").train
        grams = precompute_grams(data.Xs, data.ys)
        for lam, mu in ((10.0, 0.1), (1.0, 1.0), (0.1, 0.1)):
            calls = record(data, lam, mu)
            times = {"fast": [], "fo": []}
            for _ in range(REPEAT):
                for key, fn in (("fast", solve_tasks), ("fo", solve_tasks_first_order)):
                    t0 = time.perf_counter()
                    out = [fn(data.Xs, data.ys, B, la, weights=a, ridge=r, W0=W0, tol=TOL, grams=grams)
                           for B, la, a, r, W0 in calls]
                    times[key].append((time.perf_counter() - t0) / len(calls))
                    if key == "fast":
                        fast_out = out
                    else:
                        fo_out = out
            problem = TasksProblem(data, "squared")
            gap_cvx = gap_fast = -np.inf
            for (B, la, a, r, _), fo, fa in zip(calls, fo_out, fast_out):
                exact = problem.set(B, la, a, r).solve("CLARABEL").solution
                f_ex = wstep_objective(exact, B, data, lam=la, weights=a, ridge=r)
                f_fo = wstep_objective(fo.solution, B, data, lam=la, weights=a, ridge=r)
                gap_cvx = max(gap_cvx, (f_fo - f_ex) / max(1.0, abs(f_ex)))
                gap_fast = max(gap_fast, (fo.objective - fa.objective) / max(1.0, abs(fa.objective)))
            tf, to = np.median(times["fast"]) * 1e3, np.median(times["fo"]) * 1e3
            iters = np.mean([r.n_iter for r in fo_out])
            print(f"{name:22s} {lam:5g} {mu:4g} {len(calls):8d} {tf:17.2f} {to:17.2f} {to / tf:6.2f} {iters:11.1f}"
                  f"  {gap_cvx:12.1e}  {gap_fast:18.1e}  {all(r.converged for r in fo_out)}")


if __name__ == "__main__":
    main()
