"""``amtl-cvx demo`` (single-task vs AMTL on a generated planted-graph problem) and
``amtl-cvx fit`` (AMTL on a ``.mat`` file in the original release's layout)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from amtl_cvx._argtypes import int_at_least
from amtl_cvx.tools.cli._base import _Formatter
from amtl_cvx.tools.cli.grid import _GRIDS, _add_fit_options, _curriculum_selection, _select
from amtl_cvx.tools.cli.report import _LABELS, _edges, _plot_dir, _report, _write_plots

__all__ = ["add_demo_parser", "add_fit_parser"]


def _demo(args) -> int:
    from amtl_cvx.data import make_regression_tasks

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
    from amtl_cvx.data import load_release_mat
    from amtl_cvx.estimators.persistence import save_model

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



def add_demo_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` command to the sub-parsers ``sub``."""
    demo = sub.add_parser("demo", formatter_class=_Formatter,
                          help="single-task vs AMTL on a generated planted-graph problem")
    demo.add_argument("--tasks", type=int_at_least(3), default=12,
                      help="tasks (a third of them are sources; at least 3)")
    demo.add_argument("--features", type=int_at_least(1), default=20, help="features per task")
    demo.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the generated problem")
    demo.add_argument("--edges", type=int_at_least(1), default=10, help="how many strongest edges to list")
    _add_fit_options(demo, "demo")
    demo.set_defaults(func=_demo)


def add_fit_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``fit`` command to the sub-parsers ``sub``."""
    fit = sub.add_parser("fit", formatter_class=_Formatter,
                          help="fit AMTL on a .mat file in the original release's layout")
    fit.add_argument("path", help="a .mat file (synthetic_dataset.mat, usps1.mat, ...)")
    fit.add_argument("--output", "-o", default=None,
                     help="where to save W and B (.npz); default ./<name>_amtl.npz")
    fit.add_argument("--no-bias", action="store_true", help="do not append a bias column")
    _add_fit_options(fit, "fit")
    fit.set_defaults(func=_fit)
