"""B-step solvers side by side: active set, first-order (coordinate descent), FISTA, CVXPY.

Every method pays the same gradient cost: a gradient of ``lam ||W - W B||^2 + p'B 1``
is ``2 lam W'(W B - W) + p 1'``, formed as ``W'(W Y)`` (``O(d T^2)`` for all columns;
no ``T x T x T`` product and no ``T x T`` Gram matrix).  Methods:

- ``active``: :func:`solvers.transfer.solve_transfer` (working set + batched
  active-set core), ``tol = 1e-10``;
- ``first_order``: :func:`solvers.first_order.solve_transfer_first_order` (working-set
  coordinate descent with Anderson extrapolation, then a solve on the identified
  support), ``tol = 1e-10``;
- ``fista``: projected FISTA on all columns at once with the per-column gradient
  restart of O'Donoghue & Candes, step ``1 / (2 lam ||W||_2^2)``, stopped when its
  objective is within ``--gap`` (relative) of the active-set optimum or at
  ``--fista-budget`` seconds;
- ``cvxpy``: CVXPY + Clarabel (compile + solve), only for ``T <= --cvxpy-max-T``.

Instances (``d = --features``): ``planted`` (20% source tasks, the others nonnegative
combinations of 2-3 sources plus noise, prices ``0.1 (1 + noise)``) and ``dense``
(Gaussian ``W``, prices ``0.1 U(0.5, 1.5)``: dense random, no planted graph).

Each (instance, T, method) runs in its own subprocess, which reports its time and its
peak resident memory (``ru_maxrss``).  The tables in ``docs/first_order.md`` come from::

    OMP_NUM_THREADS=1 nice -n 5 python examples/bstep_fista_comparison.py \\
        --tasks 10000 --kinds dense,planted --methods first_order,active
    OMP_NUM_THREADS=1 nice -n 5 python examples/bstep_fista_comparison.py \\
        --tasks 100,500,2000 --kinds planted,dense --fista-budget 60
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np

from amtl_cvx._argtypes import ints

METHODS = ("active", "first_order", "fista", "cvxpy")


def make_instance(kind: str, T: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """The seeded ``(W, p, lam)`` of an instance family (see the module docstring)."""
    rng = np.random.default_rng(seed)
    if kind == "dense":
        return rng.standard_normal((d, T)), 0.1 * rng.uniform(0.5, 1.5, T), 1.0
    n_src = max(1, int(0.2 * T))
    W = np.zeros((d, T))
    W[:, :n_src] = rng.standard_normal((d, n_src))
    noise = np.zeros(T)
    for t in range(n_src, T):
        src = rng.choice(n_src, size=min(int(rng.integers(2, 4)), n_src), replace=False)
        W[:, t] = W[:, src] @ rng.uniform(0.3, 1.0, size=src.size)
        noise[t] = 0.1 * rng.uniform()
        W[:, t] += noise[t] * rng.standard_normal(d)
    perm = rng.permutation(T)
    return W[:, perm], 0.1 * (1.0 + noise[perm]), 1.0


def instance_from_args(description: str, argv: list[str] | None, tasks: int,
                       extra: Any = None) -> tuple[Any, np.ndarray, np.ndarray, float]:
    """The diagnostics' command line (``--tasks``, ``--features``, ``--kind``, and what
    ``extra(parser)`` adds) and the instance it names: ``(args, W, p, lam)``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tasks", type=int, default=tasks)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--kind", choices=("dense", "planted"), default="dense")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    return (args, *make_instance(args.kind, args.tasks, args.features))


def objective_dense(W: np.ndarray, B: np.ndarray, p: np.ndarray, lam: float) -> float:
    R = W - W @ B
    return float(lam * np.einsum("ij,ij->", R, R) + p @ B.sum(axis=1))


def fista(W, p, lam, f_star, gap, budget):
    """Projected FISTA with per-column gradient restarts, gradients as ``W'(W Y)``.

    Returns (iterations, seconds, objective).
    """
    T = W.shape[1]
    step = 1.0 / (2.0 * lam * np.linalg.norm(W, 2) ** 2)
    X = np.zeros((T, T))
    Y = X.copy()
    t_k = np.ones(T)
    f = np.inf
    start = time.perf_counter()
    k = 0
    diag = np.arange(T)
    while True:
        k += 1
        grad = (2.0 * lam) * (W.T @ (W @ Y - W))
        grad += p[:, None]
        X_new = np.maximum(Y - step * grad, 0.0)
        X_new[diag, diag] = 0.0
        restart = np.einsum("ij,ij->j", grad, X_new - X) > 0
        t_new = np.where(restart, 1.0, 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t_k**2)))
        beta = np.where(restart, 0.0, (t_k - 1.0) / t_new)
        Y = X_new + beta * (X_new - X)
        X, t_k = X_new, t_new
        if k % 10 == 0:
            f = objective_dense(W, X, p, lam)
            if (f - f_star) / max(1.0, abs(f_star)) <= gap or time.perf_counter() - start > budget:
                return k, time.perf_counter() - start, f


def run_one(kind: str, T: int, d: int, method: str, gap: float, budget: float) -> dict:
    """One cell, in this process; returns the row (time, objective, certificate, memory)."""
    from solvers.first_order import solve_transfer_first_order, transfer_kkt_residual_compact
    from solvers.transfer import solve_transfer

    W, p, lam = make_instance(kind, T, d)
    row = {"kind": kind, "T": T, "d": d, "method": method}
    t0 = time.perf_counter()
    if method == "active":
        res = solve_transfer(W, p, lam)
        row.update(objective=res.objective, certificate=res.certificate, iters=res.n_iter)
    elif method == "first_order":
        res = solve_transfer_first_order(W, p, lam)
        row.update(objective=res.objective, certificate=res.certificate, iters=res.n_iter)
    elif method == "fista":
        f_star = solve_transfer(W, p, lam).objective
        t0 = time.perf_counter()
        it, _, f = fista(W, p, lam, f_star, gap, budget)
        row.update(objective=f, certificate=float("nan"), iters=it, f_star=f_star)
    elif method == "cvxpy":
        import cvxpy as cp

        B = cp.Variable((T, T), nonneg=True)
        prob = cp.Problem(cp.Minimize(lam * cp.sum_squares(W - W @ B) + p @ cp.sum(B, axis=1)),
                          [cp.diag(B) == 0])
        prob.solve(solver=cp.CLARABEL)
        Bv = np.maximum(B.value, 0.0)
        np.fill_diagonal(Bv, 0.0)
        row.update(objective=objective_dense(W, Bv, p, lam), status=prob.status,
                   certificate=transfer_kkt_residual_compact(W, Bv, p, lam), iters=-1)
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    row["seconds"] = time.perf_counter() - t0
    row["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=ints, default=[100, 500])
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--kinds", default="planted,dense")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--gap", type=float, default=1e-7)
    parser.add_argument("--fista-budget", type=float, default=300.0)
    parser.add_argument("--fista-max-T", type=int, default=2000)
    parser.add_argument("--cvxpy-max-T", type=int, default=500)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    kinds = args.kinds.split(",")
    methods = args.methods.split(",")
    if args.one:  # child process: one cell, one JSON line
        row = run_one(kinds[0], args.tasks[0], args.features, methods[0], args.gap, args.fista_budget)
        print(json.dumps(row))
        return 0
    print(f"{'kind':>8} {'T':>6} {'method':>12} {'time':>9} {'peak MB':>8} {'rel. obj. diff':>14} "
          f"{'cert':>9} {'iters':>7}")
    for kind in kinds:
        for T in args.tasks:
            rows = []
            for method in methods:
                if (method == "cvxpy" and T > args.cvxpy_max_T) or (method == "fista" and T > args.fista_max_T):
                    continue
                cmd = [sys.executable, __file__, "--one", "--kinds", kind, "--tasks", str(T),
                       "--features", str(args.features), "--methods", method, "--gap", str(args.gap),
                       "--fista-budget", str(args.fista_budget)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            best = min(r["objective"] for r in rows)
            for r in rows:
                rel = (r["objective"] - best) / max(1.0, abs(best))
                print(f"{kind:>8} {T:>6} {r['method']:>12} {r['seconds']:>8.2f}s {r['peak_mb']:>8.0f} "
                      f"{rel:>14.1e} {r['certificate']:>9.1e} {r['iters']:>7}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
