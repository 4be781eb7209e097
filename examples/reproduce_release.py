"""Reproduce the original AMTL experiments on the release data, honestly.

Usage::

    python examples/reproduce_release.py ../shared/data [--out docs/results.md] [--figures docs/figures]

For every data set, every hyperparameter is chosen on the validation split only; the
test split is used once, for the numbers reported. Writes a Markdown report and, per
data set, a heatmap of the learned transfer matrix and the objective over alternations.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from amtl_cvx import load_release_mat
from amtl_cvx.backends import ConvergenceWarning
from amtl_cvx.metrics import one_vs_all_accuracy, task_rmse
from amtl_cvx.selection import select_amtl, select_single_task

LAMS = (0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
MUS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
SIGMAS = (0.5, 1.0)
IMBALANCE_NOTE = """With `ridge = 0` (the default), most AMTL grid fits on these files stop at `max_iter`
(the count is below): the 5-row tasks fit their rows exactly, send to the others for
free, and `I - B` drifts towards singular while their `||w_t||` grows, so the problem
has no minimiser (docs/algorithms.md, "When there is no minimiser"). The table shows
the outcome: the 5-row tasks' test RMSE is far above single-task ridge's, the 500-row
tasks' slightly below it. `ridge > 0` is the remedy; the package does not yet choose a
default that rules this out. The paper's imbalance experiment is not reproduced on
these files.
"""  # "with imbalance weighting": c_t = 1 / n_t**sigma, sigma chosen on validation


def _figures(name: str, fit, outdir: Path | None) -> list[str]:
    if outdir is None:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from amtl_cvx.plotting import plot_objective_history, plot_transfer_matrix

    outdir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    plot_transfer_matrix(fit.B, ax=axes[0])
    axes[0].set_title(f"{name}: learned B (row s sends to column t)")
    plot_objective_history(fit.objective_history, ax=axes[1])
    axes[1].set_title(f"{name}: objective over alternations")
    fig.tight_layout()
    path = outdir / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [f"![{name}](figures/{path.name})"]


def synthetic(data_dir: Path, figdir: Path | None) -> list[str]:
    ds = load_release_mat(data_dir / "synthetic_dataset.mat")
    rows = []
    stl = select_single_task(ds, LAMS)
    rows.append(("single-task ridge", stl.params, stl.val_error, task_rmse(stl.W, ds.test)))
    fits = {}
    for name, algorithm, mus in (
        ("AMTL, Algorithm 1 (alternating)", "alternating", MUS),
        ("AMTL, Algorithm 2 (curriculum)", "curriculum", MUS),
        ("AMTL without loss weighting (mu = 0)", "alternating", (0.0,)),
    ):
        sel = select_amtl(ds, LAMS, mus, algorithm=algorithm)
        fits[name] = sel.fit
        rows.append((name, sel.params, sel.val_error, task_rmse(sel.W, ds.test)))
    out = [
        "## synthetic_dataset.mat (12 tasks, 30 training rows each)",
        "",
        "| model | chosen on validation | validation RMSE | test RMSE, mean over tasks (sd) |",
        "|---|---|---|---|",
    ]
    for name, params, val, test in rows:
        chosen = ", ".join(f"{k} = {v:g}" for k, v in params.items())
        out.append(f"| {name} | {chosen} | {val:.4f} | {test.mean():.4f} ({test.std():.4f}) |")
    base = rows[0][3].mean()
    out += ["", "Change of the mean test RMSE against single-task ridge: " + "; ".join(
        f"{name}: {100 * (test.mean() / base - 1):+.1f}%" for name, _, _, test in rows[1:]) + ".", ""]
    out += _figures("synthetic_dataset", fits["AMTL, Algorithm 1 (alternating)"], figdir)
    return out


def imbalanced(data_dir: Path, figdir: Path | None) -> list[str]:
    results: dict[str, list[tuple[float, float, float]]] = {}
    chosen: dict[str, list[str]] = {}
    last_fit = None
    for k in (1, 2, 3):
        ds = load_release_mat(data_dir / f"synthetic_inbalance_{k}.mat")
        n = ds.train.n_samples
        small, large = n <= 5, n >= 500

        def record(name, params, W):
            e = task_rmse(W, ds.test)
            results.setdefault(name, []).append((e.mean(), e[small].mean(), e[large].mean()))
            chosen.setdefault(name, []).append(", ".join(f"{a}={b:g}" for a, b in params.items()))

        stl = select_single_task(ds, LAMS)
        record("single-task ridge", stl.params, stl.W)
        plain = select_amtl(ds, LAMS, MUS)
        record("AMTL, c_t = 1 (no imbalance weighting)", plain.params, plain.W)
        best = None
        for sigma in SIGMAS:
            sel = select_amtl(ds, LAMS, MUS, sigma=sigma)
            if best is None or sel.val_error < best[0].val_error:
                best = (sel, sigma)
        sel, sigma = best
        record("AMTL, c_t = 1 / n_t^sigma (sigma on validation)", {**sel.params, "sigma": sigma}, sel.W)
        last_fit = sel.fit
    out = [
        "## synthetic_inbalance_{1,2,3}.mat (500 or 5 training rows per task)",
        "",
        "Mean (sd) over the three files of the mean test RMSE over all tasks, the six 5-row",
        "tasks and the six 500-row tasks.",
        "",
        "| model | all tasks | 5-row tasks | 500-row tasks | chosen on validation (files 1, 2, 3) |",
        "|---|---|---|---|---|",
    ]
    for name, vals in results.items():
        v = np.array(vals)
        cells = [f"{v[:, i].mean():.4f} ({v[:, i].std():.4f})" for i in range(3)]
        out.append(f"| {name} | " + " | ".join(cells) + " | " + "; ".join(chosen[name]) + " |")
    out += ["", IMBALANCE_NOTE]
    out += _figures("synthetic_inbalance_3", last_fit, figdir)
    return out


def usps(data_dir: Path, figdir: Path | None) -> list[str]:
    ds = load_release_mat(data_dir / "usps1.mat")
    lams = (0.001, 0.01, 0.1, 1.0)
    mus = (0.0, 0.1, 1.0)
    stl = select_single_task(ds, lams)
    amtl = select_amtl(ds, lams, mus, ridge=1e-4)
    out = [
        "## usps1.mat (10 one-vs-all logistic tasks sharing 1000 training rows)",
        "",
        "Accuracy of the argmax over the ten task scores; `ridge = 1e-4` keeps every",
        "logistic W-step strongly convex (see docs/objective.md). The command line gives the",
        f"same two models: `amtl-cvx fit {data_dir / 'usps1.mat'} --lam 0.001,0.01,0.1,1 --mu 0,0.1,1",
        "--ridge 1e-4` (its own default grids and `ridge = 0` give other numbers).",
        "",
        "| model | chosen on validation | validation error (mean over tasks) | test accuracy |",
        "|---|---|---|---|",
        f"| single-task L2 logistic | lam = {stl.params['lam']:g} | {stl.val_error:.4f} | {one_vs_all_accuracy(stl.W, ds.test):.4f} |",
        f"| AMTL (logistic) | lam = {amtl.params['lam']:g}, mu = {amtl.params['mu']:g} | {amtl.val_error:.4f} | {one_vs_all_accuracy(amtl.W, ds.test):.4f} |",
        "",
    ]
    out += _figures("usps1", amtl.fit, figdir)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", help="folder with the release's .mat files")
    parser.add_argument("--out", default=None, help="write the Markdown report here")
    parser.add_argument("--figures", default=None, help="folder for the PNG figures")
    parser.add_argument("--only", choices=("synthetic", "imbalanced", "usps"), default=None)
    args = parser.parse_args()
    data_dir = Path(args.data_dir)
    figdir = Path(args.figures) if args.figures else None
    t0 = time.perf_counter()
    parts = ["# Results on the original release's data", "",
             "Every hyperparameter is chosen on the validation split; the test split is used",
             f"once. Grids: lam in {list(LAMS)}, mu in {list(MUS)} (USPS: smaller, see below);",
             "fast backend; Algorithm 1's problem fitted by `fit_alternating`'s default method",
             "(L-BFGS over W with exact B-steps, warm-started along the grid path, stopping when",
             "the KKT certificate of the whole problem is at most 1e-6, at most 1000 iterations);",
             "Algorithm 2 by `fit_curriculum`.", ""]
    for name, run in (("synthetic", synthetic), ("imbalanced", imbalanced), ("usps", usps)):
        if args.only in (None, name):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                section = run(data_dir, figdir)
            stopped = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
            parts += section + ["", f"AMTL grid fits of this section that stopped at `max_iter` before the "
                                    f"KKT certificate reached 1e-6 (each warned): {stopped}.", ""]
    parts.append(f"Produced by `python examples/reproduce_release.py {args.data_dir}"
                 f"{' --out ' + args.out if args.out else ''}{' --figures ' + args.figures if args.figures else ''}`"
                 f" in {time.perf_counter() - t0:.0f} s.")
    text = "\n".join(parts)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
