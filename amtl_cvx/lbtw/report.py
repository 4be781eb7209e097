"""Reports of the LBTW comparison: the table of mean test scores and the negative-transfer plot."""

from __future__ import annotations

import numpy as np

from amtl_cvx.lbtw.methods import METHODS
from amtl_cvx.lbtw.results import Comparison, _mean
from amtl_cvx.lbtw.scores import EF_FRACTIONS, ef_key

__all__ = ["format_comparison", "plot_negative_transfer"]


def format_comparison(comp: Comparison) -> str:
    """A plain-text table of mean test scores over tasks and negative transfer.

    Columns: PR-AUC, ROC-AUC, the enrichment factor at the release's fractions
    (:data:`amtl_cvx.lbtw.scores.EF_FRACTIONS`; ``EF1%`` is the top 1 % of the
    rows), one-vs-all accuracy when known, tasks with negative transfer, wall time and
    time per network epoch.
    """
    has_acc = any("ova_accuracy" in r.extra for r in comp.results.values())
    efs = [f for f in EF_FRACTIONS if any(ef_key(f) in r.scores for r in comp.results.values())]
    head = f"{'method':<34} {'PR-AUC':>7} {'ROC-AUC':>7}"
    head += "".join(f" {'EF' + format(100 * f, 'g') + '%':>7}" for f in efs)
    head += (f" {'OvA acc':>7}" if has_acc else "")
    head += f" {'neg. transfer':>14} {'vs':<21} {'time':>7} {'s/epoch':>7}"
    lines = [f"{comp.name}: mean test scores over tasks; negative transfer = tasks whose "
             f"test {comp.metric} is below the single-task reference's", head, "-" * len(head)]
    for key, r in comp.results.items():
        trained = r.params.get("focus", r.params.get("tasks"))
        label = r.label + (f" [{len(trained)} tasks]" if trained is not None
                           and len(trained) < len(r.scores["pr_auc"]) else "")
        row = f"{label:<34} {_mean(r.scores['pr_auc']):7.4f} {_mean(r.scores['roc_auc']):7.4f}"
        for f in efs:
            v = r.scores.get(ef_key(f))
            row += f" {_mean(v):7.2f}" if v is not None else f" {'-':>7}"
        if has_acc:
            acc = r.extra.get("ova_accuracy")
            row += f" {acc:7.4f}" if acc is not None else f" {'-':>7}"
        if r.reference is not None and r.reference in comp.results:
            nt = comp.negative_transfer(key)
            row += f" {nt['n_negative']:>6d} of {nt['n_compared']:<4d} {METHODS[r.reference][0]:<21}"
        else:
            row += f" {'-':>14} {'':<21}"
        row += f" {r.seconds:6.1f}s"
        ep = r.params.get("epochs_run")
        row += f" {r.seconds / ep:7.2f}" if ep else f" {'-':>7}"
        lines.append(row)
    return "\n".join(lines)


def plot_negative_transfer(comp: Comparison, *, metric: str | None = None, ax=None, random_state: int = 0):
    """Per-task difference to single-task learning, one column of points per method.

    In the style of the LBTW paper's figure: each point is a task, its height the
    multi-task score minus the single-task score; points below the zero line (red) are
    tasks with negative transfer, counted above each column.

    Parameters
    ----------
    comp : Comparison
    metric : str, optional
        Default ``comp.metric``.
    ax : matplotlib Axes, optional
        Drawn into (a new figure's axes if omitted).
    random_state : int
        Seed of the horizontal jitter.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    metric = metric or comp.metric
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 + 1.3 * len(comp.results), 4.2))
    rng = np.random.default_rng(random_state)
    keys = [k for k, r in comp.results.items() if r.reference is not None and r.reference in comp.results]
    for i, key in enumerate(keys):
        nt = comp.negative_transfer(key, metric)
        d = nt["difference"]
        ok = ~np.isnan(d)
        x = i + rng.uniform(-0.25, 0.25, size=int(ok.sum()))
        y = d[ok]
        ax.scatter(x, y, s=10, c=np.where(y < 0, "tab:red", "tab:blue"), alpha=0.7, linewidths=0)
        ax.text(i, 1.02, f"{nt['n_negative']}/{nt['n_compared']}", transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=8)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([comp.results[k].label for k in keys], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"{metric}: multi-task - single-task")
    ax.set_title(f"{comp.name}: per-task difference to single-task learning", fontsize=9, pad=14)
    ax.set_xlim(-0.6, len(keys) - 0.4)
    return ax
