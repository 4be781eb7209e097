"""The ``amtl-cvx compare`` command: its parser and its run (tables printed, plots saved)."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from amtl_cvx._argtypes import floats, ints
from amtl_cvx.lbtw import comparison as _comparison
from amtl_cvx.lbtw.comparison import compare_pcba, compare_usps
from amtl_cvx.lbtw.methods import METHODS, PRESETS
from amtl_cvx.lbtw.report import format_comparison, plot_negative_transfer

__all__ = ["add_compare_parser", "run_compare_cli"]


def _methods(text: str) -> list[str]:
    vals = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in vals if v not in METHODS]
    if bad or not vals:
        raise argparse.ArgumentTypeError(f"unknown method(s) {bad}; choose from {', '.join(METHODS)}")
    return vals


def _default_usps() -> Path:
    root = Path(os.environ.get("AMTL_DATA_DIR", Path.cwd().parent / "shared" / "data"))
    return root / "usps1.mat"


def add_compare_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``compare`` command to an ``argparse`` subparsers object; return its parser."""
    p = subparsers.add_parser(
        "compare", help="AMTL vs multi-task networks (equal, LBTW, GradNorm, RMTL, fine-tuning) and single-task models",
        description=_comparison.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=("pcba", "usps", "all"), default=None,
                   help="the release's usps1.mat (quick, the default), generated PCBA-like data (minutes), or both")
    p.add_argument("--preset", choices=tuple(PRESETS), default="light",
                   help="network settings: 'light' (this package's quick setting, default) or 'release' "
                        "(the LBTW release's: 2000-2000 units, batch norm, batch 1024, 100 epochs, ...)")
    p.add_argument("--pcba-dir", default=None,
                   help="read PCBA-layout fold files from this directory instead of generating them")
    p.add_argument("--workdir", default=None, help="where to write the generated fold files (default: a temp dir)")
    p.add_argument("--rows", type=int, default=20000, help="molecules of the generated data (default 20000)")
    p.add_argument("--tasks", type=int, default=128, help="tasks of the generated data (default 128)")
    p.add_argument("--bits", type=int, default=1024, help="fingerprint bits of the generated data")
    p.add_argument("--folds", type=int, default=5, help="folds of the generated data (train = all but the last 2)")
    p.add_argument("--usps", default=None, help="path of usps1.mat (default $AMTL_DATA_DIR or ../shared/data)")
    p.add_argument("--methods", type=_methods, default=None,
                   help=f"comma-separated subset of {','.join(METHODS)} (default: the preset's; "
                        f"'light' leaves out finetune)")
    p.add_argument("--hidden", type=ints, default=None, help="shared layer sizes (default: the preset's)")
    p.add_argument("--dropout", type=float, default=None, help="default: the preset's")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the preset's)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    p.add_argument("--epochs", type=int, default=None,
                   help="maximum epochs, early stopping on validation PR-AUC (default: the preset's)")
    p.add_argument("--patience", type=int, default=None, help="default: the preset's")
    p.add_argument("--weight-decay", type=float, default=None, help="default: the preset's")
    p.add_argument("--loss-normalization", choices=("labelled", "batch"), default=None,
                   help="divide each task's batch loss by its labelled rows or by the batch size "
                        "(the release's); default: the preset's")
    p.add_argument("--cosine-focus", type=int, default=8,
                   help="PCBA: number of focused tasks of RMTL (cosine) and fine-tuning (one network, "
                        "or pre-training and fine-tuning, each; USPS: all)")
    p.add_argument("--cosine-bias", action="store_true",
                   help="RMTL: compare head gradients with the bias (the release leaves it out)")
    p.add_argument("--stl-tasks", choices=("all", "focus"), default=None,
                   help="PCBA: single-task networks for all tasks or only the focused ones "
                        "(default: all with the light preset, focus with the release preset)")
    p.add_argument("--jobs", type=int, default=-1,
                   help="single-task networks trained at once, in worker processes (-1: one per "
                        "core; 1: one at a time in this process)")
    p.add_argument("--amtl-components", type=int, default=64,
                   help="PCBA: principal components AMTL sees (0 = all bits; memory grows with T x rows x bits)")
    p.add_argument("--amtl-max-iter", type=int, default=3, help="AMTL alternations")
    p.add_argument("--lam", type=floats, default=None, help="lam grid of single-task logistic regression")
    p.add_argument("--mu", type=floats, default=None, help="mu grid of AMTL")
    p.add_argument("--ridge", type=float, default=1e-4, help="AMTL ridge")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default=None,
                   help="plot file prefix (default ./compare_<dataset>.png); 'none' to skip")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    p.set_defaults(func=run_compare_cli)
    return p


_LONG_RUN_HINT = ("the PCBA-like comparison (20,000 molecules x 128 tasks) takes minutes: "
                  "amtl-cvx compare --dataset pcba --progress (light preset); "
                  "the release's network: amtl-cvx compare --dataset pcba --preset release --epochs 3 --progress "
                  "(see docs/lbtw.md for times)")


def run_compare_cli(args: argparse.Namespace) -> int:
    """Run ``amtl-cvx compare`` with parsed arguments; print the tables, save the plots."""
    dataset = args.dataset or "usps"
    common = dict(methods=args.methods, preset=args.preset, hidden=args.hidden, dropout=args.dropout,
                  learning_rate=args.lr, batch_size=args.batch_size, max_epochs=args.epochs,
                  patience=args.patience, weight_decay=args.weight_decay,
                  loss_normalization=args.loss_normalization, cosine_bias=args.cosine_bias,
                  amtl_max_iter=args.amtl_max_iter, ridge=args.ridge, random_state=args.seed,
                  progress=args.progress, n_jobs=args.jobs,
                  log=lambda msg: print(f"  {msg}", flush=True))
    if args.lam:
        common["lams"] = tuple(args.lam)
    if args.mu:
        common["mus"] = tuple(args.mu)
    comps = []
    if dataset in ("pcba", "all") and not args.pcba_dir and args.amtl_components > args.bits:
        raise ValueError(f"--amtl-components ({args.amtl_components}) must be at most --bits "
                         f"({args.bits}), or 0 for all bits")
    if args.dataset is None:
        print(f"running the quick comparison (USPS); {_LONG_RUN_HINT}")
    print(f"network preset {args.preset!r}: " + ", ".join(
        f"{k}={v}" for k, v in PRESETS[args.preset]["network"].items() if k != "dtype"))
    if dataset in ("pcba", "all"):
        from amtl_cvx.data.pcba import load_pcba_folds, make_pcba_like, write_pcba_folds

        t0 = time.perf_counter()
        tmp = None
        if args.pcba_dir:
            files = args.pcba_dir
            print(f"PCBA-layout files from {files}")
        else:
            if args.workdir:
                files = Path(args.workdir)
            else:
                tmp = tempfile.TemporaryDirectory(prefix="amtl_pcba_")
                files = Path(tmp.name)
            Xg, Yg, info = make_pcba_like(args.rows, args.tasks, args.bits, random_state=args.seed,
                                          n_groups=min(8, args.tasks // 4), group_size=min(12, max(1, args.tasks // 4)))
            write_pcba_folds(files, Xg, Yg, n_folds=args.folds)
            print(f"generated PCBA-like data: {args.rows} molecules, {args.tasks} tasks, {args.bits} bits, "
                  f"{np.nanmean(Yg):.1%} positives, {np.mean(np.isnan(Yg)):.0%} labels missing; "
                  f"{args.folds} fold files in {files}")
        try:
            data = load_pcba_folds(files, n_bits=None)
        finally:
            if tmp is not None:
                tmp.cleanup()
        print(f"train {data.X_train.shape[0]}, validation {data.X_val.shape[0]}, test {data.X_test.shape[0]} rows")
        focus = sorted(set(np.linspace(0, data.n_tasks - 1, min(args.cosine_focus, data.n_tasks)).astype(int).tolist()))
        stl_mode = args.stl_tasks or ("focus" if args.preset == "release" else "all")
        comp = compare_pcba(data, amtl_components=args.amtl_components or None, cosine_focus=focus,
                            stl_tasks=focus if stl_mode == "focus" else None, **common)
        comps.append((comp, time.perf_counter() - t0))
    if dataset in ("usps", "all"):
        from amtl_cvx.data import load_release_mat

        path = Path(args.usps) if args.usps else _default_usps()
        if not path.is_file():
            if args.dataset == "usps" or args.usps:
                raise ValueError(f"usps file {str(path)!r} not found (use --usps)")
            print(f"skipping USPS: {path} not found (use --usps)")
        else:
            t0 = time.perf_counter()
            ds = load_release_mat(path)
            print(f"\nUSPS: {path}, {ds.train.n_tasks} one-vs-all tasks, {ds.train.Xs[0].shape[0]} training rows")
            comp = compare_usps(ds, **common)
            comps.append((comp, time.perf_counter() - t0))
    for comp, seconds in comps:
        print()
        print(format_comparison(comp))
        print(f"({comp.name}: {seconds:.1f} s in all)")
        if args.plot is None or args.plot.lower() != "none":
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            out = Path(f"{args.plot}_{comp.name}.png") if args.plot else Path.cwd() / f"compare_{comp.name}.png"
            ax = plot_negative_transfer(comp)
            ax.figure.tight_layout()
            ax.figure.savefig(out, dpi=130)
            plt.close(ax.figure)
            print(f"saved the negative-transfer plot to {out}")
    if args.dataset is None:
        print(f"\nnext: {_LONG_RUN_HINT}")
    return 0
