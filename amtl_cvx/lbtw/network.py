r"""Shared-bottom multi-task networks, in numpy: the constructor and the training loop.

The reference baseline of Loss-Balanced Task Weighting (Liu, Liang & Gitter, AAAI 2019):
fully connected shared layers, one output head per task, trained with Adam on
mini-batches, with per-task weights from a strategy of
:mod:`amtl_cvx.lbtw.weighting`. The model (parameters, forward and backward passes,
losses, predictions) is :class:`amtl_cvx.lbtw.model.NetworkModel`, whose docstring
states it; one network per task is :class:`amtl_cvx.lbtw.single_task_networks.SingleTaskNetworks`.

Per-task metrics (:func:`amtl_cvx.lbtw.scores.task_scores`) are scikit-learn's
``average_precision_score`` and ``roc_auc_score`` and the release's enrichment factor
(:func:`amtl_cvx.lbtw.scores.enrichment_factor`), each task on its labelled rows.

Input may be a dense array or a ``scipy.sparse`` matrix; with ``sparse_input="auto"`` a
dense input with at most 20 % nonzeros (binary fingerprints) is converted to CSR, which
makes the first layer much cheaper.

:class:`MultiTaskNetwork` keeps the 23 keyword parameters of its constructor: they are
the LBTW release's network and optimiser settings (``json/LBTW.json``, ``pcba_model.py``).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np

from amtl_cvx._progress import progress_bar
from amtl_cvx._validation import check_scalar
from amtl_cvx.lbtw.model import (
    ACTIVATIONS,
    LOSS_NORMALIZATIONS,
    TASK_TYPES,
    NetworkModel,
    _as_input,
    _as_labels,
    _check_int,
)
from amtl_cvx.lbtw.scores import average_precision
from amtl_cvx.lbtw.weighting import TaskWeighting, make_weighting

__all__ = ["MultiTaskNetwork", "blas_threads"]

logger = logging.getLogger(__name__)


@contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Limit the BLAS thread pools to ``n`` threads inside the block (needs threadpoolctl).

    Mini-batch training multiplies small matrices, for which a multi-threaded BLAS is
    often slower than one thread (much slower on a loaded machine). Without
    threadpoolctl installed, or with ``n=None``, this does nothing.
    """
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        yield
        return
    with threadpool_limits(limits=int(n), user_api="blas"):
        yield


class MultiTaskNetwork(NetworkModel):
    """A shared-bottom multi-task network trained with Adam and task weighting.

    Parameters
    ----------
    hidden : sequence of int, default=(256, 64)
        Sizes of the shared fully connected layers (at least one).
    activation : {"relu", "tanh", "sigmoid"} or sequence of them, default="relu"
        One for every shared layer, or one per layer (the LBTW release uses
        ``("relu", "sigmoid")``: its ``"activations"`` list in ``json/LBTW.json``).
    dropout : float, default=0.0
        Dropout rate in ``[0, 1)`` in every shared layer (training only, inverted dropout).
    dropout_position : {"after", "before"}, default="after"
        Dropout after the activation, or before it, on the pre-activation (the release's
        ``Linear -> Dropout -> activation`` order, ``pcba_model.py``). The same for ReLU.
    batch_norm : bool, default=False
        Batch normalisation of the last shared layer's output, before the heads (where
        the release puts its one ``BatchNorm1d``). Training uses the batch's mean and
        biased variance and updates running estimates (unbiased variance, as PyTorch);
        prediction uses the running estimates.
    bn_momentum : float, default=0.1
        Running estimate ``<- (1 - bn_momentum) * running + bn_momentum * batch`` (the
        PyTorch convention; the release passes 0.9).
    bn_eps : float, default=1e-5
        Added to the variance (the release: 2e-5).
    task_types : str or sequence of str, default="binary"
        ``"binary"`` (sigmoid output, cross-entropy) or ``"regression"`` (linear output,
        squared error), one for all tasks or one per task.
    weighting : str or TaskWeighting, default="equal"
        A strategy of :mod:`amtl_cvx.lbtw.weighting` or its name.
    weighting_params : dict, optional
        Keyword arguments of the named strategy (e.g. ``{"alpha": 0.1}``).
    loss_normalization : {"labelled", "batch"}, default="labelled"
        ``L_t`` of a batch is the sum of task t's losses over its labelled rows divided
        by the number of those rows (``"labelled"``), or by the number of rows of the
        batch (``"batch"``: the release's ``F.binary_cross_entropy(..., weight=mask)``
        with its default mean reduction, ``pcba_model.py``, ``single_task_cost``), which
        weighs tasks by their label fraction in the batch.
    learning_rate : float, default=1e-3
        Adam step size.
    batch_size : int, default=128
    max_epochs : int, default=30
    patience : int, default=5
        Early stopping: stop after this many epochs without improvement of the
        validation score (only when validation data are given to :meth:`fit`).
    weight_decay : float, default=0.0
        ``weight_decay / 2 * ||p||^2`` on every weight matrix (not on biases), or on every
        parameter with ``decay_all=True``.
    decay_all : bool, default=False
        Weight decay on every parameter, biases and batch-normalisation scale and shift
        included (PyTorch ``Adam(weight_decay=...)`` as in the release).
    init : {"default", "release"}, default="default"
        ``"default"``: He / Glorot uniform weights, zero biases. ``"release"``: weights
        ``N(0, 0.02)`` clipped to [-2, 2], biases 1, batch-normalisation scale
        ``N(1, 0.02)`` and shift 0 (``pcba_model.py``, ``weights_init``).
    dtype : numpy dtype, default=numpy.float64
        ``numpy.float32`` is about twice as fast; use float64 for gradient checks.
    sparse_input : {"auto", True, False}, default="auto"
        Convert dense inputs with at most 20 % nonzeros to CSR (see module docstring).
    random_state : int or numpy.random.Generator, optional
        Seeds initialisation, shuffling and dropout.
    progress : bool, default=False
        Show a progress bar over epochs.
    n_blas_threads : int or None, default=1
        BLAS threads during :meth:`fit` (see :func:`blas_threads`; ``None``: unchanged).

    Attributes
    ----------
    layers_ : list of (numpy.ndarray, numpy.ndarray)
        ``(W_l, b_l)`` of the shared layers.
    bn_gamma_, bn_beta_ : numpy.ndarray, shape (h,)
        Batch-normalisation scale and shift (``batch_norm=True`` only).
    bn_mean_, bn_var_ : numpy.ndarray, shape (h,)
        Running mean and variance (``batch_norm=True`` only; not parameters).
    head_W_ : numpy.ndarray, shape (h, T)
    head_b_ : numpy.ndarray, shape (T,)
    history_ : dict
        ``"train_loss"`` (weighted objective, mean over batches), ``"val_score"``
        (per epoch, when validation data are given) and ``"weights"`` (mean task weights
        of each epoch, shape (epochs, T)).
    best_epoch_ : int
        Epoch whose parameters were restored (last epoch without validation data).
    monitor_ : str
        ``"pr_auc"`` (higher is better) or ``"rmse"`` (lower is better).
    """

    def __init__(
        self,
        hidden: Sequence[int] = (256, 64),
        *,
        activation: str | Sequence[str] = "relu",
        dropout: float = 0.0,
        dropout_position: str = "after",
        batch_norm: bool = False,
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
        task_types: str | Sequence[str] = "binary",
        weighting: str | TaskWeighting = "equal",
        weighting_params: dict | None = None,
        loss_normalization: str = "labelled",
        learning_rate: float = 1e-3,
        batch_size: int = 128,
        max_epochs: int = 30,
        patience: int = 5,
        weight_decay: float = 0.0,
        decay_all: bool = False,
        init: str = "default",
        dtype: type = np.float64,
        sparse_input: str | bool = "auto",
        random_state: int | np.random.Generator | None = None,
        progress: bool = False,
        n_blas_threads: int | None = 1,
    ) -> None:
        hidden = tuple(hidden) if not isinstance(hidden, (int, np.integer)) else (hidden,)
        if len(hidden) == 0:
            raise ValueError("hidden must hold at least one layer size")
        self.hidden = tuple(_check_int(h, "hidden", 1) for h in hidden)
        if isinstance(activation, str):
            if activation not in ACTIVATIONS:
                raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
            self._acts = (activation,) * len(self.hidden)
        else:
            acts = tuple(activation)
            if len(acts) != len(self.hidden) or any(a not in ACTIVATIONS for a in acts):
                raise ValueError(f"activation must be one of {ACTIVATIONS} or one per hidden layer "
                                 f"({len(self.hidden)}), got {activation!r}")
            self._acts = acts
        self.activation = activation
        self.dropout = check_scalar(dropout, "dropout")
        if self.dropout >= 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if dropout_position not in ("after", "before"):
            raise ValueError(f"dropout_position must be 'after' or 'before', got {dropout_position!r}")
        self.dropout_position = dropout_position
        self.batch_norm = bool(batch_norm)
        self.bn_momentum = check_scalar(bn_momentum, "bn_momentum")
        if self.bn_momentum > 1:
            raise ValueError(f"bn_momentum must be in [0, 1], got {bn_momentum!r}")
        self.bn_eps = check_scalar(bn_eps, "bn_eps", strict=True)
        if isinstance(task_types, str):
            if task_types not in TASK_TYPES:
                raise ValueError(f"task_types must be one of {TASK_TYPES}, got {task_types!r}")
        else:
            task_types = tuple(task_types)
            bad = [t for t in task_types if t not in TASK_TYPES]
            if bad or not task_types:
                raise ValueError(f"task_types must hold names in {TASK_TYPES}, got {bad or task_types!r}")
        self.task_types = task_types
        self.weighting = make_weighting(weighting, **(weighting_params or {}))
        if loss_normalization not in LOSS_NORMALIZATIONS:
            raise ValueError(f"loss_normalization must be one of {LOSS_NORMALIZATIONS}, got {loss_normalization!r}")
        self.loss_normalization = loss_normalization
        self.learning_rate = check_scalar(learning_rate, "learning_rate", strict=True)
        self.batch_size = _check_int(batch_size, "batch_size", 1)
        self.max_epochs = _check_int(max_epochs, "max_epochs", 1)
        self.patience = _check_int(patience, "patience", 1)
        self.weight_decay = check_scalar(weight_decay, "weight_decay")
        self.decay_all = bool(decay_all)
        if init not in ("default", "release"):
            raise ValueError(f"init must be 'default' or 'release', got {init!r}")
        self.init = init
        if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}")
        self.dtype = np.dtype(dtype).type
        if sparse_input not in ("auto", True, False):
            raise ValueError(f"sparse_input must be 'auto', True or False, got {sparse_input!r}")
        self.sparse_input = sparse_input
        self.random_state = random_state
        self.progress = bool(progress)
        if n_blas_threads is not None:
            n_blas_threads = _check_int(n_blas_threads, "n_blas_threads", 1)
        self.n_blas_threads = n_blas_threads
        self.layers_: list[tuple[np.ndarray, np.ndarray]] = []

    # ------------------------------------------------------------------ training
    def fit(self, X, Y, X_val=None, Y_val=None, *, init_shared: Sequence[np.ndarray] | None = None
            ) -> "MultiTaskNetwork":
        """Train on ``(X, Y)`` (``NaN`` = missing label); early-stop on ``(X_val, Y_val)``.

        With validation data, after every epoch the mean validation PR-AUC over binary
        tasks (or, without binary tasks, the mean RMSE) is computed; training stops after
        ``patience`` epochs without improvement and the best epoch's parameters are
        restored.

        Parameters
        ----------
        X : array_like or sparse matrix, shape (n, d)
        Y : array_like, shape (n, T) or (n,)
        X_val, Y_val : optional
            Validation data (both or neither).
        init_shared : sequence of numpy.ndarray, optional
            Start from these shared parameters (:meth:`shared_params` of another network
            with the same shared layers) instead of fresh ones: fine-tuning. The heads
            (and the running statistics of batch normalisation) start fresh.

        Returns
        -------
        self
        """
        with blas_threads(self.n_blas_threads):
            return self._fit(X, Y, X_val, Y_val, init_shared)

    def _fit(self, X, Y, X_val, Y_val, init_shared=None) -> "MultiTaskNetwork":
        X = _as_input(X, "X", self.dtype, self.sparse_input)
        Y = _as_labels(Y, "Y", X.shape[0], None, self.dtype)
        if X.shape[0] == 0:
            raise ValueError("X has no rows")
        if (X_val is None) != (Y_val is None):
            raise ValueError("X_val and Y_val must be given together")
        n, T = Y.shape
        self.initialize(X.shape[1], T)
        if init_shared is not None:
            self.set_shared_params(init_shared)
        types = self.types_
        for t in range(T):
            if types[t] == "binary":
                yt = Y[:, t][~np.isnan(Y[:, t])]
                if not np.all(np.isin(yt, (0.0, 1.0))):
                    raise ValueError(f"Y[:, {t}] must hold 0, 1 or NaN for a binary task")
        if X_val is not None:
            X_val = _as_input(X_val, "X_val", self.dtype, self.sparse_input)
            if X_val.shape[1] != X.shape[1]:
                raise ValueError(f"X_val has {X_val.shape[1]} columns, X has {X.shape[1]}")
            Y_val = _as_labels(Y_val, "Y_val", X_val.shape[0], T, self.dtype)
        self.monitor_ = "pr_auc" if "binary" in types else "rmse"
        self.weighting.reset(T)
        requires = self.weighting.requires
        params = self.get_params()
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        b1, b2, eps, lr = 0.9, 0.999, 1e-8, self.learning_rate
        k = 0
        self.history_ = {"train_loss": [], "val_score": [], "weights": []}
        best, best_params, best_epoch, bad = None, None, -1, 0
        n_batches = int(np.ceil(n / self.batch_size))
        with progress_bar(self.progress, self.max_epochs, f"network ({self.weighting.describe()})") as bar:
            for epoch in range(self.max_epochs):
                self.weighting.start_epoch(epoch)
                perm = self._rng.permutation(n)
                total, wsum = 0.0, np.zeros(T)
                for step in range(n_batches):
                    idx = np.sort(perm[step * self.batch_size:(step + 1) * self.batch_size])
                    Xb, Yb = X[idx], Y[idx]
                    Z, A_L, cache = self._forward(Xb, train=True)
                    losses, counts, dZ = self._task_losses(Z, Yb)
                    stats = self._stats(losses, counts, dZ, A_L, cache, requires, epoch, step)
                    w = np.asarray(self.weighting.weights(stats), dtype=np.float64)
                    if w.shape != (T,) or not np.all(np.isfinite(w)):
                        raise ValueError(f"weighting {self.weighting!r} returned invalid weights")
                    total += float(w @ losses)
                    wsum += w
                    grads = self._backward(dZ * w.astype(self.dtype), A_L, cache)
                    k += 1
                    c1, c2 = 1 - b1 ** k, 1 - b2 ** k
                    for p, g, mi, vi in zip(params, grads, m, v):
                        mi *= b1
                        mi += (1 - b1) * g
                        vi *= b2
                        vi += (1 - b2) * g * g
                        p -= (lr / c1) * mi / (np.sqrt(vi / c2) + eps)
                self.history_["train_loss"].append(total / n_batches)
                self.history_["weights"].append(wsum / n_batches)
                bar.update(1)
                if X_val is None:
                    continue
                score = self._monitor_score(X_val, Y_val)
                self.history_["val_score"].append(score)
                bar.set_postfix_str(f"val {self.monitor_}={score:.4f}")
                logger.debug("epoch %d: train loss %.5g, val %s %.5g", epoch, total / n_batches, self.monitor_, score)
                better = (best is None or (np.isnan(best) and not np.isnan(score))
                          or (self.monitor_ == "pr_auc" and score > best)
                          or (self.monitor_ == "rmse" and score < best))
                if better:
                    best, best_epoch, bad = score, epoch, 0
                    best_params = [p.copy() for p in params] + self._running()
                else:
                    bad += 1
                    if bad >= self.patience:
                        break
        if best_params is not None:
            for p, q in zip(params, best_params):
                p[...] = q
            if self.batch_norm:
                self.bn_mean_, self.bn_var_ = best_params[-2], best_params[-1]
            self.best_epoch_ = best_epoch
        else:
            self.best_epoch_ = len(self.history_["train_loss"]) - 1
        self.history_ = {k: np.array(v) for k, v in self.history_.items()}
        return self

    def _running(self) -> list[np.ndarray]:
        if not self.batch_norm:
            return []
        return [self.bn_mean_.copy(), self.bn_var_.copy()]

    def _monitor_score(self, X, Y) -> float:
        """Mean validation PR-AUC over binary tasks (or mean RMSE without binary tasks)."""
        P = self._predict(X)
        vals = []
        for t, kind in enumerate(self.types_):
            m = ~np.isnan(Y[:, t])
            if not m.any():
                continue
            if self.monitor_ == "pr_auc" and kind == "binary":
                vals.append(average_precision(Y[m, t], P[m, t]))
            elif self.monitor_ == "rmse" and kind == "regression":
                vals.append(float(np.sqrt(np.mean((Y[m, t] - P[m, t]) ** 2))))
        vals = np.asarray(vals, dtype=np.float64)
        vals = vals[~np.isnan(vals)]
        return float(vals.mean()) if vals.size else float("nan")
