"""``amtl-cvx verify`` (one subproblem, the fast solvers against every CVXPY backend) and
``amtl-cvx bench`` (their timings)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from amtl_cvx._argtypes import int_at_least, ints
from amtl_cvx.tools.cli._base import _Formatter

__all__ = ["add_verify_parser", "add_bench_parser"]


def _verify(args) -> int:
    from amtl_cvx.data import make_classification_tasks, make_regression_tasks
    from amtl_cvx.data import load_release_mat
    from amtl_cvx.tools.verification import failed_checks, format_table, run_verification

    if args.path:
        dataset = load_release_mat(args.path)
        where = args.path
    else:
        make = make_regression_tasks if args.loss == "squared" else make_classification_tasks
        dataset = make(n_tasks=args.tasks, n_features=args.features, random_state=args.seed)
        where = f"generated {args.loss} problem, T = {args.tasks}, d = {args.features}, seed {args.seed}"
    steps = args.step if args.step != "all" else ("bstep", "wstep", "curriculum")
    if isinstance(steps, str):
        steps = (steps,)
    print(f"{where}; lam = {args.lam}, mu = {args.mu}, ridge = {args.ridge}")
    first_order = args.backend == "first-order"
    rows = run_verification(dataset, steps=steps, lam=args.lam, mu=args.mu, ridge=args.ridge,
                            first_order=first_order,
                            progress=(lambda msg: print(msg, file=sys.stderr)) if args.progress else None)
    print(format_table(rows))
    failures = failed_checks(rows)
    if failures:
        print(f"verdict: {len(failures)} check(s) failed: " + "; ".join(failures))
        return 1
    fast = "fast and first-order" if first_order else "fast"
    print(f"verdict: all {sum(not str(r['status']).startswith('n/a') for r in rows)} solves passed "
          f"({fast}: converged and exactly feasible; CVXPY: optimal; every gap <= 1e-7)")
    return 0


def _bench(args) -> int:
    from amtl_cvx.tools.benchmark import (
        format_benchmark_table,
        format_fit_table,
        run_benchmark,
        run_fit_benchmark,
        write_csv,
        write_json,
    )

    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    rows = []
    if not args.fit_only:
        rows = run_benchmark(args.tasks, args.features, steps=args.steps, solvers=args.solvers,
                             time_limit=args.time_limit, repeat=args.repeat, progress=say,
                             first_order=args.backend == "first-order")
        print(format_benchmark_table(rows))
    fit_rows = []
    if args.fit or args.fit_only:
        fit_rows = run_fit_benchmark(args.mat, n_tasks=args.fit_tasks, solver=args.fit_solver,
                                     max_iter=args.fit_max_iter, max_iter_cvxpy=args.fit_max_iter_cvxpy,
                                     progress=say)
        print(format_fit_table(fit_rows))
    out = Path(args.output)
    if rows:
        print(f"rows written to {write_csv(rows, out.with_suffix('.csv'))} and {write_json(rows, out.with_suffix('.json'))}")
    if fit_rows:
        stem = out.with_name(out.stem + "_fit")
        print(f"fit rows written to {write_csv(fit_rows, stem.with_suffix('.csv'))} and "
              f"{write_json(fit_rows, stem.with_suffix('.json'))}")
    return 0


def add_verify_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``verify`` command to the sub-parsers ``sub``."""
    verify = sub.add_parser("verify", formatter_class=_Formatter,
                          help="fast (and first-order) solvers vs every CVXPY backend on one subproblem")
    verify.add_argument("path", nargs="?", default=None, help="a release .mat file (default: generated)")
    verify.add_argument("--step", choices=("bstep", "wstep", "curriculum", "all"), default="all",
                        help="the subproblem(s) to solve")
    verify.add_argument("--loss", choices=("squared", "logistic"), default="squared",
                        help="loss of the generated problem")
    verify.add_argument("--tasks", type=int_at_least(2), default=30, help="tasks of the generated problem")
    verify.add_argument("--features", type=int_at_least(1), default=10, help="features of the generated problem")
    verify.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the generated problem")
    verify.add_argument("--lam", type=float, default=1.0, help="coupling weight lam")
    verify.add_argument("--mu", type=float, default=0.1, help="weight mu of the outgoing-edge penalty")
    verify.add_argument("--ridge", type=float, default=0.0, help="ridge * ||W||_F^2")
    verify.add_argument("--backend", choices=("fast", "first-order"), default="fast",
                        help="the solvers held to CVXPY: the fast ones, or the fast and the "
                             "first-order ones")
    verify.add_argument("--progress", action="store_true", help="print a line per solve to stderr")
    verify.set_defaults(func=_verify)


def add_bench_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``bench`` command to the sub-parsers ``sub``."""
    bench = sub.add_parser("bench", formatter_class=_Formatter,
                          help="time the fast solvers against CVXPY (OSQP, ECOS, Clarabel)")
    bench.add_argument("--tasks", type=ints, default=[10, 50, 100, 200, 500, 1000, 2000],
                       help="T values, comma-separated")
    bench.add_argument("--features", type=ints, default=[20, 100], help="d values, comma-separated")
    bench.add_argument("--steps", nargs="+", choices=("bstep", "wstep"), default=["bstep", "wstep"],
                       help="the subproblems to time")
    bench.add_argument("--solvers", nargs="+", choices=("OSQP", "ECOS", "CLARABEL"),
                       default=["OSQP", "ECOS", "CLARABEL"], help="the CVXPY solvers to time")
    bench.add_argument("--time-limit", type=float, default=30.0,
                       help="skip a CVXPY backend at larger T once one solve exceeds this (s)")
    bench.add_argument("--repeat", type=int, default=3, help="fast-solver repetitions (median)")
    bench.add_argument("--backend", choices=("fast", "first-order"), default="fast",
                       help="the custom solvers timed against CVXPY: the fast ones, or also the "
                            "first-order B-step (docs/first_order.md)")
    bench.add_argument("--fit", action="store_true", help="also time full AMTL fits (Algorithm 1)")
    bench.add_argument("--fit-only", action="store_true", help="only the full-fit benchmark")
    bench.add_argument("--mat", default=None, help="synthetic_dataset.mat for the full-fit benchmark")
    bench.add_argument("--fit-tasks", type=int, default=200, help="tasks of the generated fit problem")
    bench.add_argument("--fit-solver", default=None, help="CVXPY solver of the full-fit benchmark")
    bench.add_argument("--fit-max-iter", type=int, default=1000, help="iteration cap of the timed fits")
    bench.add_argument("--fit-max-iter-cvxpy", type=int, default=None,
                       help="cap the CVXPY fit's alternations (its time per alternation is reported)")
    bench.add_argument("--output", "-o", default="amtl_bench",
                       help="stem of the CSV and JSON files written")
    bench.set_defaults(func=_bench)
