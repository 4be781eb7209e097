"""The ``amtl-cvx`` command line.

``amtl-cvx demo``    fit single-task and AMTL models on a generated planted-graph problem.
``amtl-cvx fit``     fit AMTL on a ``.mat`` file in the original release's layout.
``amtl-cvx verify``  solve one subproblem with the fast (and first-order) solvers and every CVXPY backend.
``amtl-cvx bench``   time the fast solvers against the CVXPY backends.
``amtl-cvx compare`` AMTL vs single-task and multi-task networks (LBTW, GradNorm, ...).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from amtl_cvx._argtypes import floats, int_at_least, ints, ridge_value

__all__ = ["main"]


#: The (lam, mu) grid each command walks when --lam / --mu are not given.
_GRIDS = {
    "demo": ((0.03, 0.1, 0.3, 1.0), (0.0, 0.3, 1.0, 3.0)),
    "fit": ((0.1, 1.0, 10.0, 100.0), (0.0, 0.1, 1.0)),
}


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless it is None or a flag's boolean."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


#: Multi-task baselines each command reports by default (keys of
#: amtl_cvx.baselines.MULTITASK_BASELINES).
_BASELINES = {
    "demo": ("pooled",),
    # all of them: their default grids on the release files take seconds (docs/baselines.md)
    "fit": ("pooled", "mean_regularized", "l21", "trace_norm", "gomtl"),
}

#: Report labels of the models.
_LABELS = {
    "single": "single-task",
    "pooled": "pooled (one model)",
    "mean_regularized": "mean-regularised MTL",
    "l21": "l2,1 feature selection",
    "trace_norm": "trace norm (low rank)",
    "gomtl": "GO-MTL",
    "alternating": "AMTL, Algorithm 1",
    "curriculum": "AMTL, Algorithm 2",
}


#: ``--selection auto``: the greedy curriculum up to this many tasks (T (T + 1) / 2 = 2016
#: step solves per grid point), the static one above.
_GREEDY_MAX_TASKS = 63


def _curriculum_selection(args, n_tasks: int) -> str:
    if args.selection != "auto":
        return args.selection
    return "greedy" if n_tasks <= _GREEDY_MAX_TASKS else "static"


def _baseline_names(text: str) -> tuple[str, ...]:
    """``--baselines``: comma-separated baseline names, ``all`` or ``none``."""
    from amtl_cvx.baselines.multitask import MULTITASK_BASELINES

    if text == "none":
        return ()
    if text == "all":
        return tuple(MULTITASK_BASELINES)
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in names if v not in MULTITASK_BASELINES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected 'all', 'none' or names among {', '.join(MULTITASK_BASELINES)}, got {text!r}")
    return names


def _add_fit_options(p: argparse.ArgumentParser, command: str) -> None:
    lams, mus = (",".join(f"{v:g}" for v in grid) for grid in _GRIDS[command])
    p.add_argument("--lam", type=floats, default=None,
                   help=f"AMTL's lam value(s), comma-separated; several are chosen among on "
                        f"validation (default: {lams})")
    p.add_argument("--mu", type=floats, default=None, help=f"mu value(s), comma-separated (default: {mus})")
    p.add_argument("--algorithm", choices=("alternating", "curriculum", "both"),
                   default="both" if command == "fit" else "alternating",
                   help="Algorithm 1 (alternating), Algorithm 2 (curriculum) or both; the saved "
                        "model is the one validation picks among them")
    p.add_argument("--baselines", type=_baseline_names, default=_BASELINES[command],
                   metavar="NAMES",
                   help="multi-task baselines to report next to single-task and AMTL: 'all', "
                        "'none', or names among pooled, mean_regularized, l21, trace_norm, gomtl "
                        f"(default: {','.join(_BASELINES[command])})")
    p.add_argument("--backend", choices=("fast", "first-order", "cvxpy"), default="fast",
                   help="AMTL's subproblem solvers: the fast exact ones, the first-order ones "
                        "(docs/first_order.md) or CVXPY's exact statements (the baselines always "
                        "use their fast solvers)")
    p.add_argument("--solver", default=None, help="CVXPY solver (OSQP, CLARABEL, ECOS) for --backend cvxpy")
    p.add_argument("--ridge", type=ridge_value, default="auto",
                   help="AMTL's ridge * ||W||_F^2: a number, or auto = 0.1 * lam (keeps the problem "
                        "well posed when I - B is singular); 0 is the paper's objective")
    p.add_argument("--transfer-ridge", type=ridge_value, default="auto",
                   help="Algorithm 1's transfer_ridge * ||B||_F^2: a number, or auto = 0.1 * lam * "
                        "mean ||w_t||^2 of the single-task models (every B-step's minimiser unique, "
                        "B bounded); 0 with --ridge 0 is the paper's objective")
    p.add_argument("--sigma", type=float, default=0.0, help="imbalance exponent: c_t = s / n_t**sigma")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar over the grid (default: on when stderr is a terminal)")
    p.add_argument("--plot", metavar="DIR", default=None,
                   help="write transfer_matrix.png and objective_history.png of the chosen AMTL "
                        "model to DIR (created if missing; needs matplotlib)")
    p.add_argument("--selection", choices=("auto", "greedy", "static"), default="auto",
                   help="Algorithm 2's task order: greedy (the paper: at each step the remaining "
                        "task with the lowest loss, T (T + 1) / 2 step solves), static (ordered "
                        "once by single-task loss, T step solves), or auto: greedy up to "
                        f"{_GREEDY_MAX_TASKS} tasks, static above (greedy took 27 s per grid point "
                        "at 140 tasks)")
    p.add_argument("--no-warm-start", dest="warm_start", action="store_false",
                   help="fit every grid point from the single-task models (default: warm "
                        "start from the previous point along the path)")


def _select_amtl(dataset, args, algorithm, lams, mus):
    """AMTL on the (lam, mu) grid; the grid fits' warnings summarised in one line each."""
    from amtl_cvx._progress import progress_bar
    from amtl_cvx.backends import ConvergenceWarning
    from amtl_cvx.fit import SingularTransferWarning
    from amtl_cvx.selection import select_amtl

    show = sys.stderr.isatty() if args.progress is None else args.progress
    summarised = (ConvergenceWarning, SingularTransferWarning)
    flagged: dict[type, list[str]] = {cat: [] for cat in summarised}
    others: list[warnings.WarningMessage] = []

    def on_fit(bar, caught, params, err):
        # a fit's ConvergenceWarnings and SingularTransferWarnings become one entry of
        # the summaries below; other warnings are re-issued once the grid is done
        for cat in summarised:
            if any(issubclass(w.category, cat) for w in caught):
                flagged[cat].append(f"lam={params['lam']:g} mu={params['mu']:g}")
        others.extend(w for w in caught if not issubclass(w.category, summarised))
        caught.clear()
        bar.update(1)
        bar.set_postfix_str(f"lam={params['lam']:g} mu={params['mu']:g} val={err:.4g}")

    extra = ({"selection": _curriculum_selection(args, dataset.train.n_tasks)} if algorithm == "curriculum"
             else {"transfer_ridge": args.transfer_ridge})
    with progress_bar(show, len(lams) * len(mus), f"AMTL grid ({algorithm})") as bar, \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        amtl = select_amtl(
            dataset, lams, mus, algorithm=algorithm, backend=args.backend,
            solver=args.solver, ridge=args.ridge, sigma=args.sigma, warm_start=args.warm_start,
            on_fit=lambda params, err: on_fit(bar, caught, params, err), **extra,
        )
    for w in others:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    n = len(lams) * len(mus)
    unconverged, singular = flagged[ConvergenceWarning], flagged[SingularTransferWarning]
    if unconverged:
        remedy = ("with a ridge at 0 the problem may have no minimiser: use --ridge auto --transfer-ridge auto"
                  if args.ridge == 0 or args.transfer_ridge == 0
                  else "their models are the last iterates, not certified")
        print(f"\n{len(unconverged)} of {n} AMTL grid fits stopped at max_iter without the KKT "
              f"certificate ({', '.join(unconverged)}); {remedy} (docs/algorithms.md, 'When there "
              "is no minimiser')")
    if singular:
        print(f"\n{len(singular)} of {n} AMTL grid fits returned a numerically singular I - B "
              f"({', '.join(singular)}): tasks that fit their training rows exactly send for free; "
              + ("use --ridge auto" if args.ridge == 0 else "W stays bounded by the ridge, B is not identifiable"))
    return amtl


def _select(dataset, args, lams, mus):
    """Every model of the report, each with its hyperparameters chosen on validation:
    ``{key: Selected}`` in report order (single-task, baselines, AMTL)."""
    from amtl_cvx.selection import select_baseline, select_single_task

    chosen = {"single": select_single_task(dataset)}
    for name in args.baselines:
        chosen[name] = select_baseline(dataset, name)
    algorithms = ("alternating", "curriculum") if args.algorithm == "both" else (args.algorithm,)
    for algorithm in algorithms:
        chosen[algorithm] = _select_amtl(dataset, args, algorithm, lams, mus)
    return chosen


def _params_text(key: str, sel, ridge, selection: str, transfer_ridge="auto") -> str:
    text = ", ".join(f"{k}={v:g}" for k, v in sel.params.items())
    if sel.fit is not None:
        text += f", ridge={sel.fit.ridge:g}" + (" (auto)" if ridge == "auto" else "")
    if key == "alternating":
        text += f", transfer_ridge={sel.fit.transfer_ridge:.3g}" + (" (auto)" if transfer_ridge == "auto" else "")
    if key == "curriculum":
        text += f", {selection} selection"
    return text


def _amtl_keys(chosen) -> list[str]:
    return [k for k in ("alternating", "curriculum") if k in chosen]


def _report(dataset, chosen, args, roles=None) -> str:
    """Print the report; return the key of the AMTL model validation picks."""
    from amtl_cvx.metrics import one_vs_all_accuracy, task_errors
    from amtl_cvx.selection import grid_edges

    metric = "RMSE" if dataset.loss == "squared" else "error"
    test = {k: task_errors(sel.W, dataset.test, dataset.loss) for k, sel in chosen.items()}
    print(f"\nevery model's hyperparameters chosen on validation (mean over tasks of the {metric})")
    print(f"{'model':<24} {'validation':>10} {'test':>9} {'edges':>6}  hyperparameters")
    for key, sel in chosen.items():
        edges = f"{int(np.count_nonzero(sel.fit.B))}" if sel.fit is not None else ""
        print(f"{_LABELS[key]:<24} {sel.val_error:10.4f} {test[key].mean():9.4f} {edges:>6}  "
              + _params_text(key, sel, args.ridge, _curriculum_selection(args, dataset.train.n_tasks),
                             args.transfer_ridge))
    for key, sel in chosen.items():
        edge = grid_edges(sel)
        if sel.fit is not None and edge.get("mu") == 0.0:
            del edge["mu"]  # AMTL's mu = 0 is the end of mu's domain, not only of the grid
        if edge:
            print(f"note: {_LABELS[key]}'s {', '.join(f'{k}={v:g}' for k, v in edge.items())} is at an "
                  "edge of its grid; its optimum may lie outside it")
    best = min(chosen, key=lambda k: chosen[k].val_error)
    print(f"\nvalidation picks: {_LABELS[best]} (validation {metric} {chosen[best].val_error:.4f}, "
          f"test {metric} {test[best].mean():.4f})")
    amtl_keys = _amtl_keys(chosen)
    for key in amtl_keys:
        fit = chosen[key].fit
        if not np.any(fit.B):
            lam = chosen[key].params["lam"]
            print(f"{_LABELS[key]} chose B = 0: it is single-task at lam = {lam + fit.ridge:g} "
                  f"(lam {lam:g} + ridge {fit.ridge:g}), no transfer")
    pick = min(amtl_keys, key=lambda k: chosen[k].val_error)
    print(f"\nper-task test {metric}")
    print(f"{'task':>10} {'role':>8} {'single':>9} {'AMTL':>9}")
    e_stl, e_amtl = test["single"], test[pick]
    for t, name in enumerate(dataset.test.task_names):
        role = roles[t] if roles is not None else ""
        print(f"{name:>10} {role:>8} {e_stl[t]:9.4f} {e_amtl[t]:9.4f}")
    print(f"{'mean':>10} {'':>8} {e_stl.mean():9.4f} {e_amtl.mean():9.4f}")
    if dataset.loss == "logistic" and dataset.name.startswith("usps"):
        print(f"\none-vs-all test accuracy: single-task {one_vs_all_accuracy(chosen['single'].W, dataset.test):.4f}, "
              f"AMTL {one_vs_all_accuracy(chosen[pick].W, dataset.test):.4f}")
    return pick


def _plot_dir(args) -> Path | None:
    """``--plot DIR`` checked before any fitting."""
    if args.plot is None:
        return None
    out = Path(args.plot)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--plot must name a directory, {str(out)!r} is a file")
    if importlib.util.find_spec("matplotlib") is None:
        raise ValueError("--plot needs matplotlib: pip install 'amtl-cvx[plot]'")
    return out


def _write_plots(out: Path, fit, B_true: np.ndarray | None = None) -> None:
    """The transfer matrix (next to the planted one, if given) and the objective history."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from amtl_cvx.plotting import plot_objective_history, plot_transfer_matrix

    out.mkdir(parents=True, exist_ok=True)
    if B_true is None:
        fig, ax = plt.subplots(figsize=(6, 5))
        plot_transfer_matrix(fit, ax)
    else:
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
        plot_transfer_matrix(B_true, left).set_title("planted B (s -> t)")
        plot_transfer_matrix(fit, right).set_title("learned B (s -> t)")
    fig.savefig(out / "transfer_matrix.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    plot_objective_history(fit, ax)
    fig.savefig(out / "objective_history.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"figures written to {out / 'transfer_matrix.png'} and {out / 'objective_history.png'}")


def _edges(B: np.ndarray, k: int) -> list[tuple[int, int, float]]:
    flat = np.argsort(B, axis=None)[::-1][:k]
    return [(int(i), int(j), float(B[i, j])) for i, j in zip(*np.unravel_index(flat, B.shape)) if B[i, j] > 0]


def _demo(args) -> int:
    from amtl_cvx.generators import make_regression_tasks

    t0 = time.perf_counter()
    plots = _plot_dir(args)
    data = make_regression_tasks(n_tasks=args.tasks, n_features=args.features,
                                 n_parents=min(2, args.tasks // 3), random_state=args.seed)
    lams = args.lam or list(_GRIDS["demo"][0])
    mus = args.mu or list(_GRIDS["demo"][1])
    print(f"planted problem: {data.train}")
    print("sources (noise 0.1) send to derived tasks (noise 2.0); "
          f"grid lam={lams} mu={mus}, backend={args.backend}, algorithm={args.algorithm}")
    chosen = _select(data, args, lams, mus)
    roles = np.where(data.B_true.sum(axis=1) > 0, "source", "derived")
    amtl = chosen[_report(data, chosen, args, roles)]
    B, Bt = amtl.fit.B, data.B_true
    print("\nstrongest learned edges s -> t (B[s, t]) next to the planted ones")
    print(f"{'edge':>10} {'learned':>9} {'planted':>9}")
    for s, t, v in _edges(B, args.edges):
        print(f"{f'{s} -> {t}':>10} {v:9.3f} {Bt[s, t]:9.3f}")
    forward = B[Bt > 0].sum()
    backward = B.T[Bt > 0].sum()
    print(f"\nmass on planted edges: {forward:.3f} in the planted direction, {backward:.3f} reversed")
    if plots is not None:
        _write_plots(plots, amtl.fit, Bt)
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


def _fit(args) -> int:
    from amtl_cvx.estimators import estimator_from_fit
    from amtl_cvx.loaders import load_release_mat
    from amtl_cvx.persistence import save_model

    t0 = time.perf_counter()
    out = Path(args.output) if args.output else Path.cwd() / f"{Path(args.path).stem}_amtl.npz"
    if out.suffix != ".npz" or out.is_dir():
        raise ValueError(f"--output must name an .npz file, got {str(out)!r}")
    if not out.parent.is_dir():
        raise ValueError(f"--output: directory {str(out.parent)!r} does not exist")
    plots = _plot_dir(args)
    dataset = load_release_mat(args.path, add_bias=not args.no_bias)
    lams = args.lam or list(_GRIDS["fit"][0])
    mus = args.mu or list(_GRIDS["fit"][1])
    print(f"{args.path}: {dataset.train.n_tasks} tasks, {dataset.train.n_features} features "
          f"(bias {'appended' if dataset.train.add_bias else 'not appended'}), loss {dataset.loss}")
    chosen = _select(dataset, args, lams, mus)
    algorithm = _report(dataset, chosen, args)
    amtl = chosen[algorithm]
    model = estimator_from_fit(
        amtl.fit, dataset.train, loss=dataset.loss, lam=amtl.params["lam"], mu=amtl.params["mu"],
        ridge=args.ridge, sigma=args.sigma, algorithm=algorithm, backend=args.backend,
        solver=args.solver, selection=_curriculum_selection(args, dataset.train.n_tasks),
        transfer_ridge=args.transfer_ridge,
    )
    save_model(model, out)
    print(f"\nsaved the AMTL model validation picks ({_LABELS[algorithm]}; {type(model).__name__}, W {amtl.fit.W.shape}, B {amtl.fit.B.shape}) "
          f"to {out}; read it with amtl_cvx.load_model")
    if plots is not None:
        _write_plots(plots, amtl.fit)
    print(f"done in {time.perf_counter() - t0:.1f} s ({len(lams) * len(mus)} AMTL grid points)")
    return 0


def _verify(args) -> int:
    from amtl_cvx.generators import make_classification_tasks, make_regression_tasks
    from amtl_cvx.loaders import load_release_mat
    from amtl_cvx.verification import failed_checks, format_table, run_verification

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
    from amtl_cvx.benchmark import (
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
        rows = run_benchmark(args.tasks, args.features, steps=args.steps, time_limit=args.time_limit,
                             repeat=args.repeat, progress=say, first_order=args.backend == "first-order")
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


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (no usage block)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="amtl-cvx", description=__doc__.replace("``", ""),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log the algorithms' progress")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", formatter_class=_Formatter,
                          help="single-task vs AMTL on a generated planted-graph problem")
    demo.add_argument("--tasks", type=int_at_least(3), default=12,
                      help="tasks (a third of them are sources; at least 3)")
    demo.add_argument("--features", type=int_at_least(1), default=20, help="features per task")
    demo.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the generated problem")
    demo.add_argument("--edges", type=int_at_least(1), default=10, help="how many strongest edges to list")
    _add_fit_options(demo, "demo")
    demo.set_defaults(func=_demo)

    fit = sub.add_parser("fit", formatter_class=_Formatter,
                          help="fit AMTL on a .mat file in the original release's layout")
    fit.add_argument("path", help="a .mat file (synthetic_dataset.mat, usps1.mat, ...)")
    fit.add_argument("--output", "-o", default=None,
                     help="where to save W and B (.npz); default ./<name>_amtl.npz")
    fit.add_argument("--no-bias", action="store_true", help="do not append a bias column")
    _add_fit_options(fit, "fit")
    fit.set_defaults(func=_fit)

    from amtl_cvx.compare import add_compare_parser

    add_compare_parser(sub)

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

    bench = sub.add_parser("bench", formatter_class=_Formatter,
                          help="time the fast solvers against CVXPY (OSQP, ECOS, Clarabel)")
    bench.add_argument("--tasks", type=ints, default=[10, 50, 100, 200, 500, 1000, 2000],
                       help="T values, comma-separated")
    bench.add_argument("--features", type=ints, default=[20, 100], help="d values, comma-separated")
    bench.add_argument("--steps", nargs="+", choices=("bstep", "wstep"), default=["bstep", "wstep"],
                       help="the subproblems to time")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``amtl-cvx``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s")
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"amtl-cvx: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not isinstance(exc, _exact_errors()):
            raise
        print(f"amtl-cvx: error: {exc}", file=sys.stderr)
        return 1


def _exact_errors() -> tuple[type, ...]:
    """The exact layer's errors (a statement refused for memory, a solver that failed).

    Looked up among the imported modules: importing them would import CVXPY, and an
    error of theirs can only come from a run that imported them.
    """
    errors: list[type] = []
    for module, name in (("amtl_cvx.exact", "ExactSolveError"), ("amtl_cvx.problems.memory", "ExactMemoryError")):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
