r"""AMTL against multi-task networks with task weighting (LBTW and others), on the same data.

The yardstick for negative transfer in multi-task networks is Loss-Balanced Task
Weighting (Liu, Liang & Gitter, AAAI 2019): per task, the multi-task score minus the
single-task score; a task *loses* (negative transfer) when the difference is below 0.

Methods (keys of :data:`METHODS`) and the single-task reference each is compared with
(the LBTW release, ``README.md``, runs single-task, multi-task, fine-tuning, GradNorm
alpha 0.1 and 0.5, RMTL and LBTW alpha 0.1 and 0.5):

==============  ===================================================  =================
key             method                                               reference
==============  ===================================================  =================
stl_net         one network per task (same architecture)             -
equal           shared-bottom network, equal task weights            stl_net
lbtw0.1         ... with LBTW, alpha = 0.1                           stl_net
lbtw0.5         ... with LBTW, alpha = 0.5                           stl_net
gradnorm0.1     ... with GradNorm, alpha = 0.1 (this package's       stl_net
                implementation: the release has no GradNorm code)
gradnorm0.5     ... with GradNorm, alpha = 0.5                       stl_net
cosine          RMTL: cosine weighting toward a focused task, one    stl_net
                network per focused task, scored on that task only
finetune        fine-tuning: pre-train on the other tasks, then      stl_net
                train the focused task from the pre-trained shared
                layers (one pair per focused task)
stl_logistic    L2-logistic regression per task (AMTL at B = 0)      -
amtl            AMTL, Algorithm 1, logistic loss (fast backend)      stl_logistic
==============  ===================================================  =================

Network settings come from a preset (:data:`PRESETS`): ``"light"`` (the default, this
package's quick setting: 256-64 units, no batch normalisation, batch 128, at most 60
epochs) or ``"release"`` (the LBTW release's network, optimiser, batch, epochs, patience
and loss normalisation). Every test score is reported with PR-AUC, ROC-AUC and the
enrichment factor at the release's fractions 2 %, 1 %, 0.15 % and 0.1 %.

Hyperparameters are chosen on the validation split only (the networks early-stop on
its mean PR-AUC; ``lam`` of single-task logistic regression and ``mu`` of AMTL are
chosen on its mean PR-AUC); the test split is used once, for the reported numbers.

AMTL's data. AMTL needs a label for every row of a task: on PCBA-style data with missing
labels, task t uses only its labelled rows (``X_t`` = those rows, labels in {-1, +1};
:meth:`amtl_cvx.pcba.PCBAData.to_multitask`). Stacking 128 such copies of 1024-bit rows
would take gigabytes, so by default AMTL and its single-task reference see the
fingerprints projected on their top ``amtl_components`` principal components (fitted on
the training split, whitened), plus a bias column; the networks see all bits.
``amtl_components=None`` uses the raw bits.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from amtl_cvx._argtypes import floats, ints
from amtl_cvx._progress import progress_bar
from amtl_cvx.baselines.network import EF_FRACTIONS, MultiTaskNetwork, SingleTaskNetworks, ef_key, task_scores
from amtl_cvx.data import MultiTaskDataset

__all__ = [
    "METHODS",
    "PRESETS",
    "DEFAULT_METHODS",
    "fine_tune",
    "MethodResult",
    "Comparison",
    "negative_transfer",
    "compare",
    "compare_pcba",
    "compare_usps",
    "fingerprint_pca",
    "plot_negative_transfer",
    "format_comparison",
    "add_compare_parser",
]

logger = logging.getLogger(__name__)

#: Method key -> (label, reference key or None).
METHODS: dict[str, tuple[str, str | None]] = {
    "stl_net": ("single-task network", None),
    "equal": ("MTL network, equal weights", "stl_net"),
    "lbtw0.1": ("LBTW alpha=0.1", "stl_net"),
    "lbtw0.5": ("LBTW alpha=0.5", "stl_net"),
    "gradnorm0.1": ("GradNorm alpha=0.1", "stl_net"),
    "gradnorm0.5": ("GradNorm alpha=0.5", "stl_net"),
    "cosine": ("RMTL (cosine, focused)", "stl_net"),
    "finetune": ("fine-tuning (focused)", "stl_net"),
    "stl_logistic": ("single-task logistic", None),
    "amtl": ("AMTL (logistic)", "stl_logistic"),
}
_WEIGHTING = {
    "equal": ("equal", {}),
    "lbtw0.1": ("lbtw", {"alpha": 0.1}),
    "lbtw0.5": ("lbtw", {"alpha": 0.5}),
    "gradnorm0.1": ("gradnorm", {"alpha": 0.1}),
    "gradnorm0.5": ("gradnorm", {"alpha": 0.5}),
}

#: Network settings of the two presets and the methods each runs by default.
#: ``"light"``: this package's quick setting (not the release's). ``"release"``: the LBTW
#: release's (``json/LBTW.json``, ``pcba_model.py``): two shared layers of 2000 units,
#: ReLU then sigmoid (its ``"activations"``), dropout 0.25 before each activation,
#: batch normalisation of the last shared layer (eps 2e-5, PyTorch momentum 0.9), heads
#: initialised as ``weights_init``, Adam lr 3e-3 with weight decay 5e-4 on every
#: parameter, batches of 1024, 100 epochs, patience 200, each task's masked
#: cross-entropy divided by the batch size.
PRESETS: dict[str, dict[str, Any]] = {
    "light": {
        "network": dict(hidden=(256, 64), activation="relu", dropout=0.2, learning_rate=1e-3, batch_size=128,
                        max_epochs=60, patience=5, weight_decay=0.0, loss_normalization="labelled",
                        dtype=np.float32),
        "methods": ("stl_net", "equal", "lbtw0.1", "lbtw0.5", "gradnorm0.1", "gradnorm0.5", "cosine",
                    "stl_logistic", "amtl"),
    },
    "release": {
        "network": dict(hidden=(2000, 2000), activation=("relu", "sigmoid"), dropout=0.25,
                        dropout_position="before", batch_norm=True, bn_momentum=0.9, bn_eps=2e-5,
                        init="release", learning_rate=3e-3, batch_size=1024, max_epochs=100, patience=200,
                        weight_decay=5e-4, decay_all=True, loss_normalization="batch", dtype=np.float32),
        "methods": tuple(METHODS),
    },
}
DEFAULT_METHODS = PRESETS["light"]["methods"]


@dataclass
class MethodResult:
    """Test scores of one method.

    Attributes
    ----------
    key, label : str
    reference : str or None
        Key of the single-task method it is compared with.
    scores : dict of numpy.ndarray
        Per-task test metrics (``"pr_auc"``, ``"roc_auc"``, ...; NaN where undefined or
        not evaluated).
    seconds : float
        Wall time of fitting (including its validation-based choices).
    params : dict
        Chosen hyperparameters and notes.
    extra : dict
        Scalar test metrics (e.g. ``"ova_accuracy"`` on USPS).
    """

    key: str
    label: str
    reference: str | None
    scores: dict
    seconds: float
    params: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


@dataclass
class Comparison:
    """All methods on one data set.

    Attributes
    ----------
    name : str
    task_names : tuple of str
    results : dict of MethodResult
        By method key, in the order run.
    metric : str
        The metric negative transfer is measured on (``"pr_auc"``).
    """

    name: str
    task_names: tuple
    results: dict
    metric: str = "pr_auc"

    def negative_transfer(self, key: str, metric: str | None = None) -> dict[str, Any]:
        """:func:`negative_transfer` of method ``key`` against its reference."""
        res = self.results[key]
        if res.reference is None or res.reference not in self.results:
            raise ValueError(f"method {key!r} has no single-task reference in this comparison")
        metric = metric or self.metric
        return negative_transfer(res.scores[metric], self.results[res.reference].scores[metric],
                                 higher_is_better=metric != "rmse")


def negative_transfer(
    multi: np.ndarray, single: np.ndarray, *, higher_is_better: bool = True
) -> dict[str, Any]:
    """Per-task multi-task score minus single-task score, and the tasks that lose.

    Parameters
    ----------
    multi, single : array_like, shape (T,)
        Per-task scores; tasks where either is NaN are not compared.
    higher_is_better : bool, default=True
        False for errors (RMSE): the difference is then ``single - multi`` so that a
        negative difference always means the multi-task model is worse.

    Returns
    -------
    dict
        ``"difference"`` (T,) (NaN where not compared), ``"negative"`` indices of tasks
        with a difference < 0, ``"n_negative"``, ``"n_compared"``.
    """
    multi = np.asarray(multi, dtype=np.float64)
    single = np.asarray(single, dtype=np.float64)
    if multi.shape != single.shape or multi.ndim != 1:
        raise ValueError(f"multi and single must be vectors of the same length, got {multi.shape} and {single.shape}")
    diff = multi - single if higher_is_better else single - multi
    ok = ~np.isnan(diff)
    neg = np.flatnonzero(ok & (np.where(ok, diff, 0.0) < 0))
    return {"difference": diff, "negative": neg, "n_negative": int(neg.size), "n_compared": int(ok.sum())}


# --------------------------------------------------------------------------- AMTL side
def fingerprint_pca(X_train: np.ndarray, n_components: int) -> Callable[[np.ndarray], np.ndarray]:
    """A whitened projection on the top ``n_components`` principal components of ``X_train``."""
    X = np.asarray(X_train, dtype=np.float64)
    if isinstance(n_components, bool) or int(n_components) != n_components or not 1 <= n_components <= X.shape[1]:
        raise ValueError(f"n_components must be an integer in 1..{X.shape[1]}, got {n_components!r}")
    mean = X.mean(axis=0)
    C = (X - mean).T @ (X - mean) / max(1, X.shape[0] - 1)
    vals, vecs = np.linalg.eigh(C)
    top = np.argsort(vals)[::-1][: int(n_components)]
    P = vecs[:, top] / np.sqrt(np.maximum(vals[top], 1e-12))

    def transform(Z: np.ndarray) -> np.ndarray:
        return (np.asarray(Z, dtype=np.float64) - mean) @ P

    return transform


def _linear_scores(W: np.ndarray, ds_split, T: int, Y: np.ndarray) -> np.ndarray:
    """Sigmoid scores of ``X_t w_t`` placed in an (n, T) array at task t's labelled rows."""
    P = np.zeros(Y.shape)
    for t in range(T):
        rows = np.flatnonzero(~np.isnan(Y[:, t]))
        z = ds_split.Xs[t] @ W[:, t]
        P[rows, t] = 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))
    return P


def _mean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def _amtl_methods(ds: MultiTaskDataset, Y: dict, lams, mus, ridge, max_iter, want, say) -> dict:
    from amtl_cvx.baselines.single_task import fit_single_task
    from amtl_cvx.fit import fit_alternating

    T = ds.train.n_tasks
    types = ("binary",) * T
    out = {}
    t0 = time.perf_counter()
    best = None
    for lam in lams:
        W = fit_single_task(ds.train, lam, "logistic")
        val = _mean(task_scores(Y["val"], _linear_scores(W, ds.val, T, Y["val"]), types)["pr_auc"])
        say(f"single-task logistic lam={lam:g}: val PR-AUC {val:.4f}")
        if best is None or val > best[0]:
            best = (val, lam, W)
    val, lam, W = best
    scores = task_scores(Y["test"], _linear_scores(W, ds.test, T, Y["test"]), types)
    out["stl_logistic"] = (scores, time.perf_counter() - t0, {"lam": lam, "val_pr_auc": val}, W)
    if "amtl" in want:
        t0 = time.perf_counter()
        best = None
        for mu in mus:
            fit = fit_alternating(ds.train, lam=lam, mu=mu, loss="logistic", ridge=ridge,
                                  max_iter=max_iter, backend="fast")
            v = _mean(task_scores(Y["val"], _linear_scores(fit.W, ds.val, T, Y["val"]), types)["pr_auc"])
            say(f"AMTL lam={lam:g} mu={mu:g}: val PR-AUC {v:.4f} ({fit.n_iter} alternations, "
                f"{int((fit.B > 0).sum())} edges)")
            if best is None or v > best[0]:
                best = (v, mu, fit)
        v, mu, fit = best
        scores = task_scores(Y["test"], _linear_scores(fit.W, ds.test, T, Y["test"]), types)
        out["amtl"] = (scores, time.perf_counter() - t0,
                       {"lam": lam, "mu": mu, "ridge": ridge, "max_iter": max_iter, "val_pr_auc": v,
                        "n_edges": int((fit.B > 0).sum())}, fit.W)
    return out


# --------------------------------------------------------------------------- driver
def _focused_rows(Y: np.ndarray, tasks: Sequence[int]) -> np.ndarray:
    """Rows with at least one label among ``tasks`` (the release drops the others)."""
    return np.flatnonzero((~np.isnan(Y[:, list(tasks)])).any(axis=1))


def fine_tune(
    X: dict[str, Any], Y: dict[str, np.ndarray], focus: int, *, random_state: int = 0,
    progress: bool = False, **net_params,
) -> tuple[MultiTaskNetwork, MultiTaskNetwork]:
    """The release's fine-tuning for one focused task (``pcba_run.py``, ``train_and_test_FineTuning``).

    1. Pre-train a multi-task network (equal weights) on every task but ``focus``, on the
       rows labelled for at least one of them, early-stopped on their mean validation
       PR-AUC.
    2. Build a one-task network for ``focus``, copy the pre-trained shared parameters
       into it (the head and the batch-normalisation running statistics start fresh:
       the release copies ``named_parameters`` whose name lacks ``'task'``), and train
       all of it on the rows labelled for ``focus``, early-stopped on its validation
       PR-AUC.

    Parameters
    ----------
    X, Y : dict
        Splits ``"train"``, ``"val"`` as in :func:`compare` (at least 2 tasks).
    focus : int
        The focused task.
    random_state : int
    progress : bool
    **net_params
        :class:`MultiTaskNetwork` settings (not ``weighting``).

    Returns
    -------
    (pre_trained, fine_tuned) : tuple of MultiTaskNetwork
    """
    T = Y["train"].shape[1]
    if T < 2:
        raise ValueError("fine-tuning needs at least 2 tasks (one to focus on, others to pre-train on)")
    if isinstance(focus, bool) or int(focus) != focus or not 0 <= focus < T:
        raise ValueError(f"focus must be a task index in 0..{T - 1}, got {focus!r}")
    focus = int(focus)
    others = [t for t in range(T) if t != focus]
    rows = _focused_rows(Y["train"], others)
    vrows = _focused_rows(Y["val"], others)
    pre = MultiTaskNetwork(weighting="equal", random_state=random_state, progress=progress, **net_params)
    pre.fit(X["train"][rows], Y["train"][rows][:, others], X["val"][vrows], Y["val"][vrows][:, others])
    rf = np.flatnonzero(~np.isnan(Y["train"][:, focus]))
    vf = np.flatnonzero(~np.isnan(Y["val"][:, focus]))
    if rf.size == 0:
        raise ValueError(f"task {focus} has no labelled training row")
    # its own seed: the fresh head (and, without init_shared, the shared layers) differ
    # from the pre-trained network's initialisation
    net = MultiTaskNetwork(weighting="equal", random_state=random_state + 1, progress=progress, **net_params)
    net.fit(X["train"][rf], Y["train"][rf, focus], X["val"][vf], Y["val"][vf, focus],
            init_shared=pre.shared_params())
    return pre, net


def _epochs(net: MultiTaskNetwork) -> int:
    return int(len(net.history_["train_loss"]))


def compare(
    X: dict[str, Any],
    Y: dict[str, np.ndarray],
    amtl_data: MultiTaskDataset | None,
    *,
    name: str = "data",
    task_names: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    preset: str = "light",
    hidden: Sequence[int] | None = None,
    activation: str | Sequence[str] | None = None,
    dropout: float | None = None,
    learning_rate: float | None = None,
    batch_size: int | None = None,
    max_epochs: int | None = None,
    patience: int | None = None,
    weight_decay: float | None = None,
    loss_normalization: str | None = None,
    cosine_focus: Sequence[int] | None = None,
    cosine_bias: bool = False,
    finetune_focus: Sequence[int] | None = None,
    stl_tasks: Sequence[int] | None = None,
    n_jobs: int | None = None,
    lams: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1),
    mus: Sequence[float] = (0.1, 1.0),
    ridge: float = 1e-4,
    amtl_max_iter: int = 3,
    random_state: int = 0,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> Comparison:
    """Run the chosen methods on one data set (binary tasks) and score them on its test split.

    Parameters
    ----------
    X : dict
        ``{"train": X, "val": X, "test": X}`` inputs of the networks (dense or sparse).
    Y : dict
        Labels of the same splits, (n, T) with 0/1 and NaN for missing.
    amtl_data : MultiTaskDataset or None
        AMTL's view of the same rows (logistic, labels {-1, +1}; task t's rows are the
        rows of ``Y[split][:, t]`` that are not NaN, in order). Needed for
        ``stl_logistic`` and ``amtl``.
    methods : sequence of str, optional
        Keys of :data:`METHODS`; the references they need are added. Default: the
        preset's ``"methods"``.
    preset : {"light", "release"}, default="light"
        Network settings of :data:`PRESETS`: ``"light"`` (small and quick) or
        ``"release"`` (the LBTW release's network, optimiser, batch, epochs, patience
        and loss normalisation).
    hidden, activation, dropout, learning_rate, batch_size, max_epochs, patience, weight_decay, loss_normalization
        Override the preset's setting (``None``: keep it); shared by every network.
    cosine_focus : sequence of int, optional
        Focused tasks of the cosine (RMTL) method (one network each; default the first
        ``min(T, 8)`` tasks).
    cosine_bias : bool, default=False
        RMTL compares head gradients with the bias (the release leaves it out).
    finetune_focus : sequence of int, optional
        Focused tasks of fine-tuning (a pre-training and a fine-tuning each; default
        ``cosine_focus``).
    stl_tasks : sequence of int, optional
        Tasks given a single-task network (default all); negative transfer is counted
        on these.
    n_jobs : int, optional
        Single-task networks trained at once in worker processes (``None``: one at a
        time; ``-1``: one per core; the scores do not depend on it).
    lams : sequence of float
        Grid of ``lam`` for single-task logistic regression (chosen on validation); AMTL
        uses the chosen ``lam``.
    mus : sequence of float
        Grid of AMTL's ``mu`` (chosen on validation).
    ridge : float
        AMTL's ``ridge`` (keeps every W-step strongly convex).
    amtl_max_iter : int
        Alternations of Algorithm 1.
    random_state : int
        Seed of every network (same initial weights across weightings).
    progress : bool
        Progress bars.
    log : callable, optional
        Called with a line of text after every step.

    Returns
    -------
    Comparison
        Each result's ``params["epochs_run"]`` is the number of epochs trained, summed
        over its networks (``seconds / epochs_run`` is the time per network epoch).
    """
    say = log or (lambda msg: logger.info(msg))
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {tuple(PRESETS)}, got {preset!r}")
    if methods is None:
        methods = PRESETS[preset]["methods"]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be keys of {tuple(METHODS)}, got {unknown or methods!r}")
    want = list(methods)
    for m in list(want):
        ref = METHODS[m][1]
        if ref is not None and ref not in want:
            want.insert(0, ref)
    want = [m for m in METHODS if m in want]
    if amtl_data is None and any(m in want for m in ("stl_logistic", "amtl")):
        raise ValueError("amtl_data is required for the methods stl_logistic and amtl")
    for split in ("train", "val", "test"):
        if split not in X or split not in Y:
            raise ValueError(f"X and Y must hold the split {split!r}")
    T = Y["train"].shape[1]
    names = tuple(task_names) if task_names is not None else tuple(f"task{t}" for t in range(T))
    types = ("binary",) * T

    def task_list(value, what: str, default: list[int]) -> list[int]:
        out = default if value is None else [int(t) for t in value]
        if any(t < 0 or t >= T for t in out):
            raise ValueError(f"{what} must hold task indices in 0..{T - 1}")
        return out

    focus = task_list(cosine_focus, "cosine_focus", list(range(min(T, 8))))
    ft_focus = task_list(finetune_focus, "finetune_focus", focus)
    stl = task_list(stl_tasks, "stl_tasks", list(range(T)))
    if "finetune" in want and T < 2:
        raise ValueError("the method finetune needs at least 2 tasks")
    net_params = dict(PRESETS[preset]["network"])
    overrides = dict(hidden=hidden, activation=activation, dropout=dropout, learning_rate=learning_rate,
                     batch_size=batch_size, max_epochs=max_epochs, patience=patience,
                     weight_decay=weight_decay, loss_normalization=loss_normalization)
    net_params.update({k: (tuple(v) if k == "hidden" else v) for k, v in overrides.items() if v is not None})
    MultiTaskNetwork(**net_params)  # validate the settings before any work
    results: dict[str, MethodResult] = {}
    amtl_done: dict = {}
    with progress_bar(progress, len(want), f"compare ({name}, {preset} preset)") as bar:
        for key in want:
            label, ref = METHODS[key]
            bar.set_postfix_str(label)
            t0 = time.perf_counter()
            params: dict = {}
            if key == "stl_net":
                model = SingleTaskNetworks(tasks=stl, random_state=random_state, progress=progress,
                                           n_jobs=n_jobs, **net_params)
                model.fit(X["train"], Y["train"], X["val"], Y["val"])
                scores = model.evaluate(X["test"], Y["test"])
                params["tasks"] = list(stl)
                params["epochs"] = [net.best_epoch_ + 1 for net in model.networks_.values()]
                params["epochs_run"] = sum(_epochs(net) for net in model.networks_.values())
                P_test = model.predict(X["test"])
            elif key in _WEIGHTING:
                wname, wparams = _WEIGHTING[key]
                net = MultiTaskNetwork(weighting=wname, weighting_params=wparams, random_state=random_state,
                                       progress=progress, **net_params)
                net.fit(X["train"], Y["train"], X["val"], Y["val"])
                P_test = net.predict(X["test"])
                scores = task_scores(Y["test"], P_test, types)
                params["best_epoch"] = net.best_epoch_ + 1
                params["epochs_run"] = _epochs(net)
            elif key in ("cosine", "finetune"):
                tasks = focus if key == "cosine" else ft_focus
                P_test = np.full(Y["test"].shape, np.nan)
                params["epochs_run"] = 0
                with progress_bar(progress, len(tasks), f"{key} focus tasks") as inner:
                    for f in tasks:
                        if key == "cosine":
                            net = MultiTaskNetwork(weighting="cosine",
                                                   weighting_params={"focus": f, "include_bias": cosine_bias},
                                                   random_state=random_state, **net_params)
                            # early stopping on the focused task's validation PR-AUC
                            yv = np.full(Y["val"].shape, np.nan)
                            yv[:, f] = Y["val"][:, f]
                            net.fit(X["train"], Y["train"], X["val"], yv)
                            P_test[:, f] = net.predict(X["test"])[:, f]
                            params["epochs_run"] += _epochs(net)
                        else:
                            pre, net = fine_tune(X, Y, f, random_state=random_state, **net_params)
                            P_test[:, f] = net.predict(X["test"])[:, 0]
                            params["epochs_run"] += _epochs(pre) + _epochs(net)
                        inner.update(1)
                Yt = np.where(np.isnan(P_test), np.nan, Y["test"])
                scores = task_scores(Yt, np.nan_to_num(P_test), types)
                params["focus"] = list(tasks)
            else:
                if not amtl_done:
                    amtl_done = _amtl_methods(amtl_data, Y, lams, mus, ridge, amtl_max_iter, want, say)
                scores, seconds, params, W = amtl_done[key]
                P_test = None
                t0 = time.perf_counter() - seconds  # report this method's own fitting time
            extra = {}
            if P_test is not None and not np.isnan(P_test).any() and not np.isnan(Y["test"]).any():
                extra["ova_accuracy"] = float(np.mean(np.argmax(P_test, 1) == np.argmax(Y["test"], 1)))
            elif key in ("stl_logistic", "amtl") and not np.isnan(Y["test"]).any():
                Z = np.column_stack([amtl_data.test.Xs[t] @ W[:, t] for t in range(T)])
                extra["ova_accuracy"] = float(np.mean(np.argmax(Z, 1) == np.argmax(Y["test"], 1)))
            res = MethodResult(key, label, ref, scores, time.perf_counter() - t0, params, extra)
            results[key] = res
            per_epoch = (f", {res.seconds / params['epochs_run']:.2f} s per network epoch"
                         if params.get("epochs_run") else "")
            say(f"{label}: test PR-AUC {_mean(scores['pr_auc']):.4f}, ROC-AUC {_mean(scores['roc_auc']):.4f}"
                f" ({res.seconds:.1f} s{per_epoch})")
            bar.update(1)
    return Comparison(name, names, results)


def compare_pcba(data, *, amtl_components: int | None = 64, **kwargs) -> Comparison:
    """:func:`compare` on :class:`amtl_cvx.pcba.PCBAData` (see the module docstring for AMTL's view).

    Parameters
    ----------
    data : PCBAData
    amtl_components : int or None, default=64
        Principal components AMTL (and single-task logistic regression) see; ``None``
        gives them the raw bits.
    **kwargs
        Passed to :func:`compare`.
    """
    from amtl_cvx.pcba import PCBAData

    if not isinstance(data, PCBAData):
        raise ValueError(f"data must be a PCBAData, got {type(data).__name__}")
    methods = kwargs.get("methods") or PRESETS.get(kwargs.get("preset", "light"), PRESETS["light"])["methods"]
    amtl_data = None
    if any(m in methods for m in ("stl_logistic", "amtl")):
        transform = None if amtl_components is None else fingerprint_pca(data.X_train, amtl_components)
        amtl_data = data.to_multitask(add_bias=True, transform=transform)
    X = {s: data.split(s)[0] for s in ("train", "val", "test")}
    Y = {s: data.split(s)[1] for s in ("train", "val", "test")}
    kwargs.setdefault("name", "pcba")
    return compare(X, Y, amtl_data, task_names=data.task_names, **kwargs)


def compare_usps(dataset: MultiTaskDataset, **kwargs) -> Comparison:
    """:func:`compare` on a one-vs-all data set whose tasks share rows (``usps1.mat``).

    The networks get the rows without the bias column (they have their own biases) and
    one 0/1 label per task; AMTL and single-task logistic regression get ``dataset``.
    """
    if not isinstance(dataset, MultiTaskDataset) or dataset.loss != "logistic":
        raise ValueError("dataset must be a logistic MultiTaskDataset (e.g. load_release_mat('usps1.mat'))")
    X, Y = {}, {}
    for s in ("train", "val", "test"):
        split = getattr(dataset, s)
        if any(not np.array_equal(split.Xs[0], Xt) for Xt in split.Xs[1:]):
            raise ValueError("dataset: the tasks must share the same rows")
        X0 = split.Xs[0][:, :-1] if split.add_bias else split.Xs[0]
        X[s] = X0
        Y[s] = (np.column_stack(split.ys) > 0).astype(np.float64)
    kwargs.setdefault("name", dataset.name or "usps")
    kwargs.setdefault("cosine_focus", list(range(dataset.train.n_tasks)))
    kwargs.setdefault("lams", (1e-4, 1e-3, 1e-2, 1e-1))
    return compare(X, Y, dataset, task_names=dataset.train.task_names, **kwargs)


# --------------------------------------------------------------------------- reporting
def format_comparison(comp: Comparison) -> str:
    """A plain-text table of mean test scores over tasks and negative transfer.

    Columns: PR-AUC, ROC-AUC, the enrichment factor at the release's fractions
    (:data:`amtl_cvx.baselines.network.EF_FRACTIONS`; ``EF1%`` is the top 1 % of the
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


# --------------------------------------------------------------------------- CLI


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
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
        from amtl_cvx.pcba import load_pcba_folds, make_pcba_like, write_pcba_folds

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
        from amtl_cvx.loaders import load_release_mat

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
