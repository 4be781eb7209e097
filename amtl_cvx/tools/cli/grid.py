"""The options and the model selection shared by ``amtl-cvx demo`` and ``amtl-cvx fit``:
the (lam, mu) grid, the baselines reported, and every model chosen on validation."""

from __future__ import annotations

import argparse
import sys
import warnings

from amtl_cvx._argtypes import floats, ridge_value

#: The (lam, mu) grid each command walks when --lam / --mu are not given.
_GRIDS = {
    "demo": ((0.03, 0.1, 0.3, 1.0), (0.0, 0.3, 1.0, 3.0)),
    "fit": ((0.1, 1.0, 10.0, 100.0), (0.0, 0.1, 1.0)),
}


#: Multi-task baselines each command reports by default (keys of
#: amtl_cvx.baselines.MULTITASK_BASELINES).
_BASELINES = {
    "demo": ("pooled",),
    # all of them: their default grids on the release files take seconds (docs/baselines.md)
    "fit": ("pooled", "mean_regularized", "l21", "trace_norm", "gomtl"),
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
    from amtl_cvx.algorithms import ConvergenceWarning
    from amtl_cvx.algorithms import SingularTransferWarning
    from amtl_cvx.model_selection import select_amtl

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
    from amtl_cvx.model_selection import select_baseline, select_single_task

    chosen = {"single": select_single_task(dataset)}
    for name in args.baselines:
        chosen[name] = select_baseline(dataset, name)
    algorithms = ("alternating", "curriculum") if args.algorithm == "both" else (args.algorithm,)
    for algorithm in algorithms:
        chosen[algorithm] = _select_amtl(dataset, args, algorithm, lams, mus)
    return chosen

