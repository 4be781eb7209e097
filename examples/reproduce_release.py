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
from amtl_cvx.algorithms import ConvergenceWarning
from amtl_cvx.estimators.metrics import one_vs_all_accuracy, task_rmse
from amtl_cvx.model_selection import grid_edges, select_amtl, select_baseline, select_single_task

LAMS = (0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
MUS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
SIGMAS = (0.5, 1.0)
#: The multi-task baselines of every section.
BASELINES = ("pooled", "mean_regularized", "l21", "trace_norm", "gomtl")
LABELS = {
    "pooled": "pooled (one model for all tasks)",
    "mean_regularized": "mean-regularised MTL",
    "l21": "l2,1 joint feature selection",
    "trace_norm": "trace norm (low rank)",
    "gomtl": "GO-MTL",
}
IMBALANCE_NOTE = """AMTL here uses the default `ridge = 0.1 lam` (and transfer ridge). With the paper's `ridge = 0` the 5-row
tasks fit their rows exactly, send to the others for free, `I - B` becomes singular and
their test RMSE explodes: docs/objective.md, "The default ridge", has the measurements
(the worst grid point 10x, 29x and 36x the best on files 1, 2 and 3 at `ridge = 0`, at
most 1.15x with the default ridge, 1.11x with both default ridges). The paper's imbalance experiment is not reproduced on these
files: pooled ridge, one model for all tasks, is the model to beat on them.
"""  # "with imbalance weighting": c_t = 1 / n_t**sigma, sigma chosen on validation


def _chosen(params: dict) -> str:
    return ", ".join(f"{k} = {v:.3g}" for k, v in params.items())


def _edge_note(name: str, sel) -> list[str]:
    edge = grid_edges(sel)
    return [f"{name}: {_chosen(edge)} is at an edge of its grid."] if edge else []


def _figures(name: str, fit, outdir: Path | None) -> list[str]:
    if outdir is None:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from amtl_cvx.tools.plotting import plot_objective_history, plot_transfer_matrix

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
    stl = select_single_task(ds)
    rows.append(("single-task ridge", stl.params, stl.val_error, task_rmse(stl.W, ds.test)))
    notes = _edge_note("single-task ridge", stl)
    for key in BASELINES:
        sel = select_baseline(ds, key)
        rows.append((LABELS[key], sel.params, sel.val_error, task_rmse(sel.W, ds.test)))
        notes += _edge_note(LABELS[key], sel)
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
        out.append(f"| {name} | {_chosen(params)} | {val:.4f} | {test.mean():.4f} ({test.std():.4f}) |")
    base = rows[0][3].mean()
    best = min(rows, key=lambda r: r[2])
    out += ["", "Change of the mean test RMSE against single-task ridge: " + "; ".join(
        f"{name}: {100 * (test.mean() / base - 1):+.1f}%" for name, _, _, test in rows[1:]) + ".", "",
        f"Validation picks: {best[0]}.", ""] + notes + [""]
    out += _figures("synthetic_dataset", fits["AMTL, Algorithm 1 (alternating)"], figdir)
    return out


def imbalanced(data_dir: Path, figdir: Path | None) -> list[str]:
    results: dict[str, list[tuple[float, float, float]]] = {}
    chosen: dict[str, list[str]] = {}
    notes: list[str] = []
    last_fit = None
    for k in (1, 2, 3):
        ds = load_release_mat(data_dir / f"synthetic_inbalance_{k}.mat")
        n = ds.train.n_samples
        small, large = n <= 5, n >= 500

        def record(name, params, W):
            e = task_rmse(W, ds.test)
            results.setdefault(name, []).append((e.mean(), e[small].mean(), e[large].mean()))
            chosen.setdefault(name, []).append(", ".join(f"{a}={b:g}" for a, b in params.items()))

        stl = select_single_task(ds)
        record("single-task ridge", stl.params, stl.W)
        for key in BASELINES:
            sel = select_baseline(ds, key)
            record(LABELS[key], sel.params, sel.W)
            notes += _edge_note(f"file {k}, {LABELS[key]}", sel)
            if not sel.W.any():
                notes.append(f"file {k}, {LABELS[key]}: validation chose W = 0 (predict 0).")
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
    out += ["", IMBALANCE_NOTE] + notes + [""]
    out += _figures("synthetic_inbalance_3", last_fit, figdir)
    return out


def usps(data_dir: Path, figdir: Path | None) -> list[str]:
    ds = load_release_mat(data_dir / "usps1.mat")
    lams = (0.001, 0.01, 0.1, 1.0)
    mus = (0.0, 0.1, 1.0)
    stl = select_single_task(ds)
    rows = [("single-task L2 logistic", stl)]
    rows += [(LABELS[key], select_baseline(ds, key)) for key in BASELINES]
    by_algorithm = {a: select_amtl(ds, lams, mus, algorithm=a) for a in ("alternating", "curriculum")}
    amtl = min(by_algorithm.values(), key=lambda sel: sel.val_error)  # what the command line saves
    rows += [(f"AMTL, Algorithm {1 if a == 'alternating' else 2} ({a})", sel) for a, sel in by_algorithm.items()]
    out = [
        "## usps1.mat (10 one-vs-all logistic tasks sharing 1000 training rows)",
        "",
        "Accuracy of the argmax over the ten task scores. The command line prints the same",
        "single-task and AMTL accuracies (AMTL: the algorithm validation picks):",
        f"`amtl-cvx fit {data_dir / 'usps1.mat'} --lam 0.001,0.01,0.1,1 --mu 0,0.1,1`.",
        "The pooled model is no model here:",
        "one `w` for ten one-vs-all tasks whose labels contradict each other.",
        "",
        "| model | chosen on validation | validation error (mean over tasks) | test accuracy |",
        "|---|---|---|---|",
    ]
    out += [f"| {name} | {_chosen(sel.params)} | {sel.val_error:.4f} | {one_vs_all_accuracy(sel.W, ds.test):.4f} |"
            for name, sel in rows]
    out += ["", f"Single-task {one_vs_all_accuracy(stl.W, ds.test):.4f}, AMTL "
                f"{one_vs_all_accuracy(amtl.W, ds.test):.4f}.", ""]
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
             f"once. AMTL grids: lam in {list(LAMS)}, mu in {list(MUS)} (USPS: smaller, see below),",
             "`ridge = 0.1 lam` and Algorithm 1's transfer ridge `0.1 lam mean_t ||w_t||^2` (the",
             "defaults, docs/objective.md); single-task ridge: lam in 1e-5..1e3, 25 values; the",
             "baselines on their own grids (`amtl_cvx.baselines.MULTITASK_BASELINES`).",
             "Fast backend; Algorithm 1's problem fitted by `fit_alternating`'s default method",
             "(L-BFGS over W with exact B-steps, warm-started along the grid path, stopping when",
             "the KKT certificate of the whole problem is at most 1e-6, at most 1000 iterations);",
             "Algorithm 2 by `fit_curriculum`.", ""]
    for name, run in (("synthetic", synthetic), ("imbalanced", imbalanced), ("usps", usps)):
        if args.only in (None, name):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                section = run(data_dir, figdir)
            # AMTL's own fits (the baselines' solvers warn with the same category)
            stopped = sum(issubclass(w.category, ConvergenceWarning)
                          and str(w.message).startswith("fit_alternating") for w in caught)
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
