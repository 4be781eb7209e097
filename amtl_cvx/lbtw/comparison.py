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
:meth:`amtl_cvx.data.pcba.PCBAData.to_multitask`). Stacking 128 such copies of 1024-bit rows
would take gigabytes, so by default AMTL and its single-task reference see the
fingerprints projected on their top ``amtl_components`` principal components (fitted on
the training split, whitened), plus a bias column; the networks see all bits.
``amtl_components=None`` uses the raw bits.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Sequence

import numpy as np

from amtl_cvx._progress import progress_bar
from amtl_cvx.data import MultiTaskDataset
from amtl_cvx.lbtw.linear_methods import _amtl_methods, fingerprint_pca
from amtl_cvx.lbtw.methods import _WEIGHTING, METHODS, PRESETS
from amtl_cvx.lbtw.network import MultiTaskNetwork
from amtl_cvx.lbtw.results import Comparison, MethodResult, _mean
from amtl_cvx.lbtw.scores import task_scores
from amtl_cvx.lbtw.single_task_networks import SingleTaskNetworks

__all__ = ["fine_tune", "compare", "compare_pcba", "compare_usps"]

logger = logging.getLogger(__name__)


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


# compare() keeps its keyword parameters: the network settings of the LBTW release it mirrors
# (json/LBTW.json) and the grids of the linear side, each overridable from `amtl-cvx compare`.
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
    """:func:`compare` on :class:`amtl_cvx.data.pcba.PCBAData` (see the module docstring for AMTL's view).

    Parameters
    ----------
    data : PCBAData
    amtl_components : int or None, default=64
        Principal components AMTL (and single-task logistic regression) see; ``None``
        gives them the raw bits.
    **kwargs
        Passed to :func:`compare`.
    """
    from amtl_cvx.data.pcba import PCBAData

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

