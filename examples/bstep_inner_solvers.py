"""The first-order B-step's two inner methods on its working sets, side by side.

Issue 13 names two candidates for the B-step: working-set coordinate descent with
Anderson extrapolation and FISTA with adaptive restart and a working set. Both are in
the solver (``solvers.bstep.coordinate_descent._cd`` and ``solvers.bstep.fista._fista``;
the module constant ``solvers.bstep.coordinate_descent._INNER`` picks one, FISTA by
default), everything else equal (pricing, working sets, the hand-over test, the exact
support solve). This script times both on the instances of
``examples/bstep_fista_comparison.py``; both must reach the same objective and
certificate (exit status 1 otherwise).

    OMP_NUM_THREADS=1 python examples/bstep_inner_solvers.py [--tasks 500,2000] [--repeat 3]

Times are medians over ``--repeat`` alternating runs in one process.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bstep_fista_comparison import make_instance  # noqa: E402

import solvers.bstep.coordinate_descent as cdm  # noqa: E402
from solvers.first_order import solve_transfer_first_order  # noqa: E402


def _time(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="500,2000")
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--kinds", default="planted,dense")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    inner = cdm._INNER
    print("kind      T   coordinate descent [s] (epochs)   FISTA [s] (iterations)   FISTA / CD   "
          "objective gap   certificates")
    worst = 0.0
    for kind in args.kinds.split(","):
        for T in (int(v) for v in args.tasks.split(",")):
            W, p, lam = make_instance(kind, T, args.features)
            times: dict[str, list[float]] = {"cd": [], "fista": []}
            res = {}
            for _ in range(args.repeat):
                for name in ("cd", "fista"):
                    cdm._INNER = name
                    try:
                        sec, res[name] = _time(lambda: solve_transfer_first_order(W, p, lam, tol=1e-10))
                    finally:
                        cdm._INNER = inner
                    times[name].append(sec)
            r_cd, r_fi = res["cd"], res["fista"]
            gap = (r_fi.objective - r_cd.objective) / max(abs(r_cd.objective), 1e-300)
            worst = max(worst, abs(gap))
            m_cd, m_fi = np.median(times["cd"]), np.median(times["fista"])
            print(f"{kind:8s} {T:5d} {m_cd:12.3f} ({r_cd.n_iter:4d}) {m_fi:22.3f} ({r_fi.n_iter:5d})"
                  f" {m_fi / m_cd:14.2f} {gap:15.1e}   {r_cd.certificate:.1e} / {r_fi.certificate:.1e}")
            if not (r_cd.converged and r_fi.converged):
                print("  not converged")
                return 1
    return 0 if worst <= 1e-9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
