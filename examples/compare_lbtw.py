"""AMTL vs multi-task networks with loss-balanced task weighting (LBTW), on the same data.

Usage::

    python examples/compare_lbtw.py [--rows 20000] [--tasks 128] [--usps ../shared/data/usps1.mat]
                                    [--out compare] [--quick] [--preset light|release] [--epochs N]

1. Generates PCBA-like data (binary fingerprints, rare positives, missing labels, groups of
   related tasks and unrelated ones), writes it as gzip-compressed fold files in the LBTW
   release's layout and loads them back with :func:`amtl_cvx.data.pcba.load_pcba_folds`.
2. Runs single-task networks, the shared-bottom network with equal, LBTW (alpha 0.1, 0.5),
   GradNorm (alpha 0.1, 0.5) and RMTL (cosine) weighting, fine-tuning (with
   ``--preset release``), single-task logistic regression and AMTL; prints mean test
   PR-AUC / ROC-AUC / enrichment factors and the number of tasks with negative transfer,
   and saves the per-task difference plot (``<out>_pcba.png``). ``--preset release``
   uses the LBTW release's network and training settings (docs/lbtw.md); with it,
   single-task networks are trained for the focused tasks only.
3. The same on the release's USPS data when the file is there (``<out>_usps1.png``).

The same run from the command line: ``amtl-cvx compare --dataset all --progress``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from amtl_cvx.lbtw.comparison import compare_pcba, compare_usps
from amtl_cvx.lbtw.report import format_comparison, plot_negative_transfer
from amtl_cvx.data import load_release_mat
from amtl_cvx.data.pcba import load_pcba_folds, make_pcba_like, write_pcba_folds


def _save(comp, out: str) -> None:
    ax = plot_negative_transfer(comp)
    ax.figure.tight_layout()
    path = Path(f"{out}_{comp.name}.png")
    ax.figure.savefig(path, dpi=130)
    plt.close(ax.figure)
    print(f"saved {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--tasks", type=int, default=128)
    parser.add_argument("--usps", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "usps1.mat"))
    parser.add_argument("--out", default="compare", help="prefix of the plot files")
    parser.add_argument("--quick", action="store_true", help="small networks, few epochs (a smoke run)")
    parser.add_argument("--preset", choices=("light", "release"), default="light")
    parser.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="  %(message)s")
    settings = dict(random_state=args.seed, progress=True, preset=args.preset)
    if args.epochs:
        settings["max_epochs"] = args.epochs
    if args.quick:
        settings.update(hidden=(32, 16), max_epochs=5, patience=2)

    t0 = time.perf_counter()
    X, Y, info = make_pcba_like(args.rows, args.tasks, random_state=args.seed,
                                n_groups=min(8, args.tasks // 4), group_size=min(12, max(1, args.tasks // 4)))
    with tempfile.TemporaryDirectory() as tmp:
        write_pcba_folds(tmp, X, Y, n_folds=5)
        data = load_pcba_folds(tmp)
    print(f"PCBA-like data: {args.rows} molecules x {args.tasks} tasks, "
          f"{(info['group'] >= 0).sum()} tasks in related groups, {(info['group'] < 0).sum()} unrelated")
    focus = sorted(set(np.linspace(0, data.n_tasks - 1, min(8, data.n_tasks)).astype(int).tolist()))
    comp = compare_pcba(data, cosine_focus=focus, stl_tasks=focus if args.preset == "release" else None,
                        **settings)
    print(format_comparison(comp))
    print(f"({time.perf_counter() - t0:.0f} s)")
    _save(comp, args.out)

    if Path(args.usps).is_file():
        t0 = time.perf_counter()
        comp = compare_usps(load_release_mat(args.usps), **settings)
        print()
        print(format_comparison(comp))
        print(f"({time.perf_counter() - t0:.0f} s)")
        _save(comp, args.out)
    else:
        print(f"USPS skipped: {args.usps} not found")


if __name__ == "__main__":
    main()
