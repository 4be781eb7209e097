"""Figures of a fitted AMTL model: the transfer matrix and the objective over iterations.

Each function takes an optional matplotlib ``ax`` and returns the ``ax`` it drew on
(a new figure's axes when none is given), so figures compose. matplotlib is the
optional extra ``amtl-cvx[plot]``; it is imported only when a function is called.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from amtl_cvx._validation import check_array

__all__ = ["plot_transfer_matrix", "plot_objective_history"]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    return ax


def _transfer_and_names(model: Any, task_names):
    if hasattr(model, "transfer_matrix_"):  # a fitted estimator
        B = model.transfer_matrix_
        if task_names is None:
            task_names = [str(t) for t in model.tasks_]
    elif hasattr(model, "B") and hasattr(model, "W"):  # an AMTLFit
        B = model.B
    else:
        B = model
    B = check_array(B, "model", ndim=2)
    if B.shape[0] != B.shape[1]:
        raise ValueError(f"model: the transfer matrix must be square, got shape {B.shape}")
    if task_names is not None and len(task_names) != B.shape[0]:
        raise ValueError(f"task_names has {len(task_names)} names for {B.shape[0]} tasks")
    return B, task_names


def plot_transfer_matrix(
    model: Any,
    ax=None,
    *,
    task_names: Sequence[str] | None = None,
    cmap: str = "Blues",
    colorbar: bool = True,
    annotate: bool = False,
    fmt: str = ".2f",
):
    """Heatmap of the learned transfer matrix ``B``.

    Row s is what task s sends, column t what task t receives (``w_t ~ W b_t``), so
    ``B[s, t] > 0`` is transfer s -> t.

    Parameters
    ----------
    model : fitted estimator, AMTLFit or array_like (T, T)
        An estimator of :mod:`amtl_cvx.estimators` (``transfer_matrix_``), an
        :class:`~amtl_cvx.algorithms.AMTLFit` (``B``) or the matrix itself.
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new figure.
    task_names : sequence of str, optional
        Tick labels (default: the estimator's ``tasks_``, or 0..T-1).
    cmap : str, default="Blues"
    colorbar : bool, default=True
    annotate : bool, default=False
        Write each nonzero entry in its cell.
    fmt : str, default=".2f"
        Format of the annotations.

    Returns
    -------
    matplotlib.axes.Axes
    """
    B, names = _transfer_and_names(model, task_names)
    ax = _axes(ax)
    T = B.shape[0]
    im = ax.imshow(B, cmap=cmap, vmin=0.0, vmax=max(float(B.max()), 1e-12), interpolation="nearest")
    ticks = np.arange(T)
    labels = [str(t) for t in ticks] if names is None else [str(n) for n in names]
    ax.set_xticks(ticks, labels=labels)
    ax.set_yticks(ticks, labels=labels)
    ax.set_xlabel("receiving task t")
    ax.set_ylabel("sending task s")
    ax.set_title("transfer matrix B (s -> t)")
    if annotate:
        for s, t in zip(*np.nonzero(B)):
            ax.text(t, s, format(B[s, t], fmt), ha="center", va="center", fontsize="small")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label="B[s, t]")
    return ax


def plot_objective_history(
    model: Any,
    ax=None,
    *,
    label: str | None = None,
    log_gap: bool = False,
    marker: str = "o",
):
    """The objective ``F(W, B)`` over the alternations (or curriculum steps).

    Parameters
    ----------
    model : fitted estimator, AMTLFit or array_like (n,)
        An estimator (``objective_history_``), an :class:`~amtl_cvx.algorithms.AMTLFit`
        (``objective_history``) or the history itself.
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new figure.
    label : str, optional
        Legend label of the line.
    log_gap : bool, default=False
        Plot ``F - min F`` on a log scale (the points at the minimum are left out)
        instead of ``F``.
    marker : str, default="o"

    Returns
    -------
    matplotlib.axes.Axes
    """
    if hasattr(model, "objective_history_"):
        history = model.objective_history_
        is_curriculum = getattr(model, "algorithm", "alternating") == "curriculum"
    elif hasattr(model, "objective_history"):
        history = model.objective_history
        is_curriculum = len(getattr(model, "order", ())) > 0
    else:
        history, is_curriculum = model, False
    history = check_array(history, "model", ndim=1)
    if history.size == 0:
        raise ValueError("model: the objective history is empty")
    ax = _axes(ax)
    x = np.arange(1, history.size + 1) if is_curriculum else np.arange(history.size)
    if log_gap:
        gap = history - history.min()
        keep = gap > 0
        ax.plot(x[keep], gap[keep], marker=marker, label=label)
        ax.set_yscale("log")
        ax.set_ylabel("F(W, B) - min F")
    else:
        ax.plot(x, history, marker=marker, label=label)
        ax.set_ylabel("objective F(W, B)")
    ax.set_xlabel("curriculum step" if is_curriculum else "alternation (0: single-task start)")
    ax.set_title("AMTL objective")
    if label is not None:
        ax.legend()
    return ax
