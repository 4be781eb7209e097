"""Accelerated projected gradient (FISTA with adaptive restart) against the B-step's
active-set method, on the benchmark's B-step instances.

Why ``solvers.transfer`` is an active-set method and not a FISTA-type one: this script
runs FISTA (all T columns at once, dense ``H = 2 lam W'W``, step ``1 / ||H||_2``, the
gradient restart test of O'Donoghue & Candes applied per column) until its objective is
within ``--gap`` (relative) of the active-set optimum, and prints the iterations and
time it took, when its support first matched the optimum's, and the active-set time.

    python examples/bstep_fista_comparison.py --tasks 100,500

Numbers are in ``docs/algorithms.md``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from amtl_cvx._argtypes import ints
from amtl_cvx.benchmark import make_bench_instance
from solvers.transfer import solve_transfer, transfer_objective


def fista(W, p, lam, f_star, support, gap, max_iter):
    """Projected FISTA with per-column gradient restarts; stops at ``gap`` or ``max_iter``.

    Returns (iterations, seconds, objective, the first iteration (checked every 10) at
    which the iterate had the optimal support ``support``, or None).
    """
    T = W.shape[1]
    H = (2.0 * lam) * (W.T @ W)
    C = H - p[:, None]  # column t: c_t = 2 lam W'w_t - p
    step = 1.0 / np.linalg.eigvalsh(H)[-1]
    off = ~np.eye(T, dtype=bool)
    X = np.zeros((T, T))
    Y = X.copy()
    t_k = np.ones(T)
    support_at = None
    f = np.inf
    start = time.perf_counter()
    for k in range(1, max_iter + 1):
        grad = H @ Y - C
        X_new = np.maximum(Y - step * grad, 0.0) * off
        restart = np.einsum("ij,ij->j", grad, X_new - X) > 0
        t_new = np.where(restart, 1.0, 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t_k**2)))
        beta = np.where(restart, 0.0, (t_k - 1.0) / t_new)
        Y = X_new + beta * (X_new - X)
        X, t_k = X_new, t_new
        if k % 10 == 0:
            if support_at is None and np.array_equal(X > 0, support):
                support_at = k
            f = transfer_objective(W, X, p, lam)
            if (f - f_star) / max(1.0, abs(f_star)) <= gap:
                return k, time.perf_counter() - start, f, support_at
    return max_iter, time.perf_counter() - start, f, support_at


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=ints, default=[100, 500])
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--gap", type=float, default=1e-7)
    parser.add_argument("--max-iter", type=int, default=20000)
    args = parser.parse_args(argv)
    print(f"{'T':>5} {'active set':>11} {'FISTA iters':>12} {'FISTA time':>11} "
          f"{'ratio':>7} {'rel gap':>9} {'support found at':>17}")
    for T in args.tasks:
        inst = make_bench_instance(T, args.features)
        W, p, lam = inst.W, inst.penalty, inst.lam
        solve_transfer(W, p, lam, tol=1e-9)  # warm-up
        t0 = time.perf_counter()
        exact = solve_transfer(W, p, lam, tol=1e-9)
        t_as = time.perf_counter() - t0
        it, t_f, f, sup = fista(
            W, p, lam, exact.objective, exact.solution > 0, args.gap, args.max_iter
        )
        rel = (f - exact.objective) / max(1.0, abs(exact.objective))
        print(f"{T:>5} {t_as:>10.4f}s {it:>12} {t_f:>10.3f}s {t_f / t_as:>6.0f}x {rel:>9.1e} "
              f"{str(sup) if sup else 'never':>17}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
