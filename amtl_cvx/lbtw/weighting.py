r"""Task-weighting strategies for the multi-task network of :mod:`amtl_cvx.lbtw.network`.

At every mini-batch the network computes, for each task t, the loss ``L_t``: the sum of
its losses over the batch rows that carry a label for t, divided by the number of those
rows (``loss_normalization="labelled"``, the default) or by the number of rows of the
batch (``"batch"``, the LBTW release's normalisation: ``F.binary_cross_entropy`` with a
0/1 weight mask and mean reduction, ``pcba_model.py``); a task without labels in the
batch has ``L_t = 0`` and contributes nothing. The network asks the strategy for weights
``w_t`` and minimises ``sum_t w_t L_t``. The weights are treated as constants: no
gradient flows through them. Under ``"batch"`` a task's ``L_t`` scales with its label
fraction in the batch, so loss *ratios* (LBTW, GradNorm) are those of the release.

A strategy is a small object with three methods (see :class:`TaskWeighting`)::

    reset(n_tasks)        called once before training
    start_epoch(epoch)    called before the first batch of every epoch
    weights(stats)        -> (T,) weights for this batch, from a :class:`BatchStats`

and a class attribute ``requires`` naming the optional, more expensive, statistics it
needs (``"head_grads"``, ``"shared_grad_norms"``); the network computes only those.
A new strategy is a subclass with a ``weights`` method::

    class InverseLoss(TaskWeighting):
        name = "inverse"
        def weights(self, stats):
            w = np.where(stats.counts > 0, 1.0 / np.maximum(stats.losses, 1e-8), 0.0)
            return w * stats.losses.size / max(w.sum(), 1e-12)

Strategies
----------
``equal``
    ``w_t = 1`` (plain multi-task learning).
``lbtw`` (Liu, Liang & Gitter, AAAI 2019)
    ``w_t = (L_t(batch) / L_t(first batch of the current epoch)) ** alpha``, renormalised
    to sum to T. The reference loss of task t is its loss on the first batch of the epoch
    *that has a label for t* (on that batch the ratio is 1); a task without labels in the
    batch gets ratio 1 before renormalisation. The paper used ``alpha = 0.1`` and ``0.5``.
    The release (``pcba_run.py``, ``train_and_test_LBTW``) takes the reference on the
    first batch of every epoch (``if i == 0``) for all tasks at once: identical whenever
    that batch labels every task (with batches of 1024 rows, as in the release, almost
    always); where it does not, the release divides by a zero loss.
``gradnorm`` (Chen et al., ICML 2018)
    This package's own implementation: the LBTW release lists two GradNorm runs
    (``alpha = 0.1`` and ``0.5``, its ``README.md`` and ``image/pr.png``) but holds no
    GradNorm code. Learnable weights, started at 1. With ``g_t = ||dL_t / dW||_F``
    where ``W`` is the weight matrix of the **last shared layer** (bias excluded; with
    batch normalisation, the last shared parameters are its scale and shift), ``G_t = w_t g_t``,
    ``r_t = (L_t / L_t(0)) / mean_s (L_s / L_s(0))`` (``L_t(0)`` the task's loss on the
    first batch of training that labels it), the weights take one Adam step (rate
    ``lr``) on ``sum_t |G_t - mean(G) r_t ** alpha|`` with the target held constant,
    are clipped at ``min_weight`` and renormalised to sum to T. The batch is trained with
    the weights *before* this update. Tasks without labels in the batch are left out of
    the means and are not updated.
``cosine`` (RMTL, gradient-similarity weighting toward one focused task f)
    ``w_t = max(0, cos(g_f, g_t))`` where ``g_t`` is the gradient of ``L_t`` with
    respect to task t's **own head weight vector** (``h`` numbers; the bias is excluded,
    as in the release: ``auto.grad(loss_list[i], layer.weight)``, ``pcba_run.py``,
    ``train_and_test_RMTL``; ``include_bias=True`` appends the bias, ``h + 1``
    numbers). ``w_f = 1``. When the focused task has no label in the batch every other
    weight is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from amtl_cvx._validation import check_scalar

__all__ = [
    "BatchStats",
    "TaskWeighting",
    "EqualWeighting",
    "LBTWWeighting",
    "GradNormWeighting",
    "CosineWeighting",
    "WEIGHTINGS",
    "make_weighting",
]


@dataclass(frozen=True)
class BatchStats:
    """What the network tells a strategy about one mini-batch.

    Attributes
    ----------
    losses : numpy.ndarray, shape (T,)
        Mean loss of each task over its labelled rows of the batch (0 without labels).
    counts : numpy.ndarray of int, shape (T,)
        Labelled rows of each task in the batch.
    epoch : int
        Epoch index (0-based).
    step : int
        Batch index within the epoch (0-based).
    head_grads : numpy.ndarray or None, shape (T, h + 1)
        Row t: gradient of ``L_t`` w.r.t. task t's head (weights, then bias); computed
        only for strategies that require ``"head_grads"``.
    shared_grad_norms : numpy.ndarray or None, shape (T,)
        ``||dL_t / dW_last||_F`` for the weight matrix of the last shared layer (with
        batch normalisation: for its scale and shift); computed
        only for strategies that require ``"shared_grad_norms"``.
    """

    losses: np.ndarray
    counts: np.ndarray
    epoch: int
    step: int
    head_grads: np.ndarray | None = None
    shared_grad_norms: np.ndarray | None = None


class TaskWeighting:
    """Base class of the task-weighting strategies (equal weights).

    Subclasses override :meth:`weights` (and :meth:`reset` / :meth:`start_epoch` when
    they keep state) and list the statistics they need in ``requires``.
    """

    name: str = "equal"
    requires: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.n_tasks = 0

    def reset(self, n_tasks: int) -> None:
        """Forget all state; called once before training on ``n_tasks`` tasks."""
        if int(n_tasks) != n_tasks or n_tasks < 1:
            raise ValueError(f"n_tasks must be a positive integer, got {n_tasks!r}")
        self.n_tasks = int(n_tasks)

    def start_epoch(self, epoch: int) -> None:
        """Called before the first batch of epoch ``epoch``."""

    def weights(self, stats: BatchStats) -> np.ndarray:
        """Return the (T,) task weights for this batch."""
        return np.ones(stats.losses.shape[0])

    def describe(self) -> str:
        """A short label, e.g. ``"lbtw(alpha=0.5)"``."""
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"


class EqualWeighting(TaskWeighting):
    """Every task weighs 1: plain multi-task learning."""

    name = "equal"


class LBTWWeighting(TaskWeighting):
    """Loss-Balanced Task Weighting (Liu, Liang & Gitter, AAAI 2019).

    Parameters
    ----------
    alpha : float, default=0.5
        Exponent ``>= 0`` of the loss ratio (0 gives equal weights).
    """

    name = "lbtw"

    def __init__(self, alpha: float = 0.5) -> None:
        super().__init__()
        self.alpha = check_scalar(alpha, "alpha")
        self._ref = np.zeros(0)

    def reset(self, n_tasks: int) -> None:
        super().reset(n_tasks)
        self._ref = np.full(self.n_tasks, np.nan)

    def start_epoch(self, epoch: int) -> None:
        self._ref = np.full(self.n_tasks, np.nan)

    def weights(self, stats: BatchStats) -> np.ndarray:
        losses = np.asarray(stats.losses, dtype=np.float64)
        has = np.asarray(stats.counts) > 0
        new = has & np.isnan(self._ref)
        self._ref[new] = losses[new]
        ratio = np.ones(losses.size)
        ok = has & (self._ref > 0)
        ratio[ok] = losses[ok] / self._ref[ok]
        w = ratio ** self.alpha
        return w * (losses.size / w.sum())

    def describe(self) -> str:
        return f"lbtw(alpha={self.alpha:g})"


class GradNormWeighting(TaskWeighting):
    """GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018).

    Parameters
    ----------
    alpha : float, default=1.5
        Asymmetry ``>= 0``: how strongly tasks that train slower are pushed.
    lr : float, default=0.025
        Adam learning rate of the weights (``> 0``).
    min_weight : float, default=1e-3
        Lower clip of a weight before renormalisation (``> 0``).
    """

    name = "gradnorm"
    requires = ("shared_grad_norms",)

    def __init__(self, alpha: float = 1.5, lr: float = 0.025, min_weight: float = 1e-3) -> None:
        super().__init__()
        self.alpha = check_scalar(alpha, "alpha")
        self.lr = check_scalar(lr, "lr", strict=True)
        self.min_weight = check_scalar(min_weight, "min_weight", strict=True)

    def reset(self, n_tasks: int) -> None:
        super().reset(n_tasks)
        T = self.n_tasks
        self.w = np.ones(T)
        self._L0 = np.full(T, np.nan)
        self._m = np.zeros(T)
        self._v = np.zeros(T)
        self._k = 0

    def weights(self, stats: BatchStats) -> np.ndarray:
        if stats.shared_grad_norms is None:
            raise ValueError("stats.shared_grad_norms is required by gradnorm")
        current = self.w.copy()
        losses = np.asarray(stats.losses, dtype=np.float64)
        g = np.asarray(stats.shared_grad_norms, dtype=np.float64)
        has = np.asarray(stats.counts) > 0
        new = has & np.isnan(self._L0)
        self._L0[new] = losses[new]
        act = has & (self._L0 > 0) & (losses > 0)
        if act.sum() >= 2:
            G = self.w * g
            ratio = losses[act] / self._L0[act]
            r = ratio / ratio.mean()
            target = G[act].mean() * r ** self.alpha
            grad = np.zeros(self.n_tasks)
            grad[act] = np.sign(G[act] - target) * g[act]
            self._k += 1
            b1, b2 = 0.9, 0.999
            self._m[act] = b1 * self._m[act] + (1 - b1) * grad[act]
            self._v[act] = b2 * self._v[act] + (1 - b2) * grad[act] ** 2
            mhat = self._m / (1 - b1 ** self._k)
            vhat = self._v / (1 - b2 ** self._k)
            step = np.zeros(self.n_tasks)
            step[act] = self.lr * mhat[act] / (np.sqrt(vhat[act]) + 1e-8)
            w = np.maximum(self.w - step, self.min_weight)
            self.w = w * (self.n_tasks / w.sum())
        return current

    def describe(self) -> str:
        return f"gradnorm(alpha={self.alpha:g})"


class CosineWeighting(TaskWeighting):
    """RMTL: weighting toward one focused task by head-gradient cosine similarity.

    Parameters
    ----------
    focus : int
        Index of the focused task.
    include_bias : bool, default=False
        Compare the gradients of the head weights and bias (``h + 1`` numbers) instead
        of the head weights only (the release's choice).
    """

    name = "cosine"
    requires = ("head_grads",)

    def __init__(self, focus: int = 0, include_bias: bool = False) -> None:
        super().__init__()
        if isinstance(focus, bool) or int(focus) != focus or focus < 0:
            raise ValueError(f"focus must be a nonnegative task index, got {focus!r}")
        self.focus = int(focus)
        if not isinstance(include_bias, (bool, np.bool_)):
            raise ValueError(f"include_bias must be True or False, got {include_bias!r}")
        self.include_bias = bool(include_bias)

    def reset(self, n_tasks: int) -> None:
        super().reset(n_tasks)
        if self.focus >= self.n_tasks:
            raise ValueError(f"focus must be < n_tasks={self.n_tasks}, got {self.focus}")

    def weights(self, stats: BatchStats) -> np.ndarray:
        if stats.head_grads is None:
            raise ValueError("stats.head_grads is required by cosine")
        G = np.asarray(stats.head_grads, dtype=np.float64)
        if not self.include_bias:
            G = G[:, :-1]
        norms = np.linalg.norm(G, axis=1)
        w = np.zeros(G.shape[0])
        f = self.focus
        if norms[f] > 0:
            ok = norms > 0
            w[ok] = np.maximum(0.0, G[ok] @ G[f] / (norms[ok] * norms[f]))
        w[f] = 1.0
        return w

    def describe(self) -> str:
        return f"cosine(focus={self.focus}{', bias' if self.include_bias else ''})"


#: Strategy names understood by :func:`make_weighting`.
WEIGHTINGS: dict[str, type[TaskWeighting]] = {
    "equal": EqualWeighting,
    "lbtw": LBTWWeighting,
    "gradnorm": GradNormWeighting,
    "cosine": CosineWeighting,
}


def make_weighting(weighting: str | TaskWeighting, **kwargs: Any) -> TaskWeighting:
    """Build a strategy from its name (``WEIGHTINGS``) and keyword arguments.

    A :class:`TaskWeighting` instance is returned unchanged (``kwargs`` must be empty).
    """
    if isinstance(weighting, TaskWeighting):
        if kwargs:
            raise ValueError("weighting is already an instance; do not pass keyword arguments")
        return weighting
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {tuple(WEIGHTINGS)} or a TaskWeighting, got {weighting!r}")
    return WEIGHTINGS[weighting](**kwargs)
