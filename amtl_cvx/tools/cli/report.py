"""What ``amtl-cvx demo`` and ``amtl-cvx fit`` print and draw: the report of the models
chosen on validation, the strongest edges, the figures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from amtl_cvx.tools.cli.grid import _curriculum_selection

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
    from amtl_cvx.estimators.metrics import one_vs_all_accuracy, task_errors
    from amtl_cvx.model_selection import grid_edges

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

    from amtl_cvx.tools.plotting import plot_objective_history, plot_transfer_matrix

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

