r"""Shared-bottom multi-task networks and single-task networks, in numpy.

The reference baseline of Loss-Balanced Task Weighting (Liu, Liang & Gitter, AAAI 2019):
fully connected shared layers, one output head per task, trained with Adam on
mini-batches, with per-task weights from a strategy of
:mod:`amtl_cvx.baselines.weighting`.

Model
-----
``A_0 = X``; for every shared layer ``l``: ``A_l = drop(act_l(A_{l-1} W_l + b_l))``
(inverted dropout with rate ``dropout`` in training only; with
``dropout_position="before"``, as in the LBTW release, ``act_l(drop(A_{l-1} W_l + b_l))``).
With ``batch_norm=True`` the last shared layer's output is batch-normalised,
``A_L <- gamma * (A_L - mean) / sqrt(var + eps) + beta`` (batch statistics in training,
running estimates in prediction). The heads are the columns of ``V`` (h x T) and ``c``
(T,): ``Z = A_L V + c``. A binary task predicts ``sigmoid(z)`` and is trained with the
cross-entropy ``softplus(z) - y z``; a regression task predicts ``z`` and is trained with
``(z - y)^2 / 2``.

Labels are an (n, T) array with ``NaN`` where a row has no label for a task (binary
labels are 0/1). On a batch of ``N`` rows, ``L_t`` is the sum of task t's losses over its
labelled rows divided by their number (``loss_normalization="labelled"``) or by ``N``
(``"batch"``, the release's), 0 without labels, and the network minimises::

    sum_t w_t L_t + weight_decay / 2 * sum ||p||^2   (weight matrices, heads' V included;
                                                      every parameter with decay_all=True)

with ``w_t`` from the strategy, held constant. Gradients are by hand-written
backpropagation (batch normalisation included, in both modes; checked against finite
differences in the tests).

Per-task metrics (:func:`task_scores`) are scikit-learn's ``average_precision_score`` and
``roc_auc_score`` and the release's enrichment factor (:func:`enrichment_factor`), each
task on its labelled rows.

Input may be a dense array or a ``scipy.sparse`` matrix; with ``sparse_input="auto"`` a
dense input with at most 20 % nonzeros (binary fingerprints) is converted to CSR, which
makes the first layer much cheaper.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
from joblib import Parallel, delayed
import scipy.sparse as sp

from amtl_cvx._progress import progress_bar
from amtl_cvx._validation import check_scalar
from amtl_cvx.baselines.weighting import BatchStats, TaskWeighting, make_weighting

__all__ = [
    "MultiTaskNetwork",
    "SingleTaskNetworks",
    "average_precision",
    "roc_auc",
    "enrichment_factor",
    "ef_key",
    "EF_FRACTIONS",
    "task_scores",
    "ACTIVATIONS",
    "TASK_TYPES",
    "blas_threads",
]

logger = logging.getLogger(__name__)

ACTIVATIONS = ("relu", "tanh", "sigmoid")
TASK_TYPES = ("binary", "regression")


# --------------------------------------------------------------------------- metrics
#: Fractions of the enrichment factor in the LBTW release (``json/*.json``,
#: ``"enrichment_factor": {"ratio_list": [0.02, 0.01, 0.0015, 0.001]}``).
EF_FRACTIONS = (0.02, 0.01, 0.0015, 0.001)


def _binary_pair(y_true, score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true and score must have the same length, got {y.size} and {s.size}")
    return y > 0.5, s


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """Average precision: scikit-learn's ``average_precision_score``; ``NaN`` without a positive.

    ``sum_k (R_k - R_{k-1}) P_k`` over the distinct score thresholds, highest first: the
    PR-AUC of the LBTW release (``evaluation.py``, ``precision_auc_single``).
    """
    from sklearn.metrics import average_precision_score

    y, s = _binary_pair(y_true, score)
    if y.size == 0 or not y.any():
        return float("nan")
    return float(average_precision_score(y, s))


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: scikit-learn's ``roc_auc_score``; ``NaN`` for one class.

    The ROC-AUC of the LBTW release (``evaluation.py``, ``roc_auc_single``).
    """
    from sklearn.metrics import roc_auc_score

    y, s = _binary_pair(y_true, score)
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, s))


def enrichment_factor(y_true: np.ndarray, score: np.ndarray, fraction: float) -> float:
    """Enrichment factor at ``fraction``, as in the LBTW release (``evaluation.py``).

    With ``n`` rows, ``k = int(n * fraction)`` rows with the highest scores are
    selected; ``EF = (positives among them) / (all positives) / fraction``. Ties are
    broken as a stable sort of the scores, reversed (the release uses NumPy's default
    sort, whose order among equal scores is unspecified). ``NaN`` without a positive
    (the release reports ``'ND'``).
    """
    y, s = _binary_pair(y_true, score)
    fraction = check_scalar(fraction, "fraction", strict=True)
    if fraction > 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    n_act = int(y.sum())
    if n_act == 0:
        return float("nan")
    k = int(y.size * fraction)
    top = np.argsort(s, kind="stable")[::-1][:k]
    return float(y[top].sum() / n_act / fraction)


def ef_key(fraction: float) -> str:
    """The key of :func:`task_scores` for the enrichment factor at ``fraction``."""
    return f"ef{fraction:g}"


def task_scores(
    Y: np.ndarray, P: np.ndarray, task_types: Sequence[str], ef_fractions: Sequence[float] = EF_FRACTIONS
) -> dict[str, np.ndarray]:
    """Per-task metrics of predictions ``P`` against labels ``Y`` (NaN = missing).

    Each task is scored on its labelled rows only (the release's ``sample_weight == 1``).

    Returns
    -------
    dict
        ``"pr_auc"``, ``"roc_auc"`` (binary tasks; NaN elsewhere or when a class is
        absent), ``ef_key(f)`` for every ``f`` in ``ef_fractions`` (binary tasks, see
        :func:`enrichment_factor`), ``"rmse"`` (regression tasks; NaN elsewhere) and
        ``"n"`` (labelled rows), each of shape (T,).
    """
    Y = np.asarray(Y, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    if P.ndim == 1:
        P = P[:, None]
    if Y.shape != P.shape:
        raise ValueError(f"Y and P must have the same shape, got {Y.shape} and {P.shape}")
    T = Y.shape[1]
    keys = ("pr_auc", "roc_auc", "rmse") + tuple(ef_key(f) for f in ef_fractions)
    out = {k: np.full(T, np.nan) for k in keys}
    out["n"] = np.zeros(T, dtype=np.int64)
    for t in range(T):
        m = ~np.isnan(Y[:, t])
        out["n"][t] = m.sum()
        if not m.any():
            continue
        if task_types[t] == "binary":
            out["pr_auc"][t] = average_precision(Y[m, t], P[m, t])
            out["roc_auc"][t] = roc_auc(Y[m, t], P[m, t])
            for f in ef_fractions:
                out[ef_key(f)][t] = enrichment_factor(Y[m, t], P[m, t], f)
        else:
            out["rmse"][t] = float(np.sqrt(np.mean((Y[m, t] - P[m, t]) ** 2)))
    return out


# --------------------------------------------------------------------------- helpers
def _act(name: str, S: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(S, 0)
    if name == "tanh":
        return np.tanh(S)
    return 0.5 * (1.0 + np.tanh(0.5 * S))


def _act_grad(name: str, S: np.ndarray, H: np.ndarray) -> np.ndarray:
    if name == "relu":
        return (S > 0).astype(S.dtype)
    if name == "tanh":
        return 1.0 - H * H
    return H * (1.0 - H)


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


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _as_input(X: object, name: str, dtype: type, sparse_input: str | bool) -> np.ndarray | sp.csr_matrix:
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=dtype)
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-dimensional")
        if not np.all(np.isfinite(X.data)):
            raise ValueError(f"{name} contains NaN or infinite values")
        return X
    arr = np.asarray(X)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-dimensional, got shape {arr.shape}")
    arr = arr.astype(dtype, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if sparse_input is True or (sparse_input == "auto" and arr.size and np.count_nonzero(arr) <= 0.2 * arr.size):
        return sp.csr_matrix(arr)
    return arr


def _as_labels(Y: object, name: str, n_rows: int, n_tasks: int | None, dtype: type) -> np.ndarray:
    arr = np.asarray(Y)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric (NaN for a missing label), got dtype {arr.dtype}")
    arr = arr.astype(dtype)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != n_rows:
        raise ValueError(f"{name} must have shape ({n_rows}, T), got {np.shape(Y)}")
    if n_tasks is not None and arr.shape[1] != n_tasks:
        raise ValueError(f"{name} has {arr.shape[1]} tasks, expected {n_tasks}")
    if np.any(np.isinf(arr)):
        raise ValueError(f"{name} contains infinite values")
    return arr


# --------------------------------------------------------------------------- network
LOSS_NORMALIZATIONS = ("labelled", "batch")


class _Cache:
    """What the backward pass needs from a forward pass."""

    __slots__ = ("layers", "bn")

    def __init__(self) -> None:
        self.layers: list[tuple] = []  # (A_prev, D) per shared layer
        self.bn: tuple | None = None  # (xhat, inv_std, batch_mode) when batch_norm


class MultiTaskNetwork:
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
        A strategy of :mod:`amtl_cvx.baselines.weighting` or its name.
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

    # ------------------------------------------------------------------ parameters
    def _types(self, n_tasks: int) -> tuple[str, ...]:
        if isinstance(self.task_types, str):
            return (self.task_types,) * n_tasks
        if len(self.task_types) != n_tasks:
            raise ValueError(f"task_types has {len(self.task_types)} entries for {n_tasks} tasks")
        return self.task_types

    def initialize(self, n_features: int, n_tasks: int) -> "MultiTaskNetwork":
        """Draw fresh parameters (see ``init``) for the given sizes."""
        n_features = _check_int(n_features, "n_features", 1)
        n_tasks = _check_int(n_tasks, "n_tasks", 1)
        self.types_ = self._types(n_tasks)
        self._rng = np.random.default_rng(self.random_state)
        sizes = (n_features,) + self.hidden
        rng, dt = self._rng, self.dtype

        def weights(fan_in: int, fan_out: int, gain: float) -> np.ndarray:
            if self.init == "release":
                return np.clip(rng.normal(0.0, 0.02, size=(fan_in, fan_out)), -2, 2).astype(dt)
            lim = np.sqrt(gain / fan_in)
            return rng.uniform(-lim, lim, size=(fan_in, fan_out)).astype(dt)

        bias = 1.0 if self.init == "release" else 0.0
        self.layers_ = []
        for l, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            W = weights(fan_in, fan_out, 6.0 if self._acts[l] == "relu" else 3.0)
            self.layers_.append((W, np.full(fan_out, bias, dtype=dt)))
        h = sizes[-1]
        if self.batch_norm:
            g = rng.normal(1.0, 0.02, size=h) if self.init == "release" else np.ones(h)
            self.bn_gamma_ = g.astype(dt)
            self.bn_beta_ = np.zeros(h, dtype=dt)
            self.bn_mean_ = np.zeros(h, dtype=dt)
            self.bn_var_ = np.ones(h, dtype=dt)
        self.head_W_ = weights(h, n_tasks, 3.0)
        self.head_b_ = np.full(n_tasks, bias, dtype=dt)
        self.n_features_, self.n_tasks_ = n_features, n_tasks
        return self

    def get_params(self) -> list[np.ndarray]:
        """The parameter arrays (views): ``W_1, b_1, ..., W_L, b_L, [gamma, beta,] V, c``."""
        return self._shared_list() + [self.head_W_, self.head_b_]

    def _shared_list(self) -> list[np.ndarray]:
        out = []
        for W, b in self.layers_:
            out += [W, b]
        if self.batch_norm:
            out += [self.bn_gamma_, self.bn_beta_]
        return out

    def shared_params(self) -> list[np.ndarray]:
        """Copies of the shared parameters (``get_params`` without the heads).

        The running statistics of batch normalisation are not parameters and are not
        included (as PyTorch's ``named_parameters``, which the release's fine-tuning
        copies, ``pcba_run.py``).
        """
        self._require_fitted()
        return [p.copy() for p in self._shared_list()]

    def set_shared_params(self, params: Sequence[np.ndarray]) -> None:
        """Overwrite the shared parameters with copies of ``params`` (see :meth:`shared_params`)."""
        self._require_fitted()
        current = self._shared_list()
        if len(params) != len(current) or any(np.shape(p) != c.shape for p, c in zip(params, current)):
            raise ValueError("shared params do not match the network's shared layer shapes")
        for c, p in zip(current, params):
            c[...] = np.asarray(p, dtype=self.dtype)

    def set_params(self, params: Sequence[np.ndarray]) -> None:
        """Replace the parameters by copies of ``params`` (same order as :meth:`get_params`)."""
        current = self.get_params()
        if len(params) != len(current) or any(np.shape(p) != c.shape for p, c in zip(params, current)):
            raise ValueError("params do not match the network's parameter shapes")
        params = [np.array(p, dtype=self.dtype) for p in params]
        L = len(self.layers_)
        self.layers_ = [(params[2 * l], params[2 * l + 1]) for l in range(L)]
        if self.batch_norm:
            self.bn_gamma_, self.bn_beta_ = params[2 * L], params[2 * L + 1]
        self.head_W_, self.head_b_ = params[-2], params[-1]

    def _decayed(self) -> list[bool]:
        """Which entries of :meth:`get_params` carry weight decay."""
        if self.decay_all:
            return [True] * len(self.get_params())
        flags = [True, False] * len(self.layers_) + ([False, False] if self.batch_norm else [])
        return flags + [True, False]

    def _require_fitted(self) -> None:
        if not self.layers_:
            raise ValueError("the network has no parameters yet: call fit or initialize first")

    # ------------------------------------------------------------------ core
    def _forward(self, X, train: bool, batch_stats: bool | None = None):
        """Forward pass. ``train``: dropout on and running statistics updated;
        ``batch_stats`` (default ``train``): normalise with the batch's own statistics."""
        batch_stats = train if batch_stats is None else batch_stats
        cache = _Cache()
        A = X
        drop = train and self.dropout > 0
        for l, (W, b) in enumerate(self.layers_):
            act = self._acts[l]
            S = A @ W + b
            if drop:
                keep = (self._rng.random(S.shape) >= self.dropout).astype(self.dtype) / (1.0 - self.dropout)
            if drop and self.dropout_position == "before":
                S = S * keep
            H = _act(act, S)
            D = _act_grad(act, S, H)
            if drop:
                D = D * keep
                if self.dropout_position == "after":
                    H = H * keep
            cache.layers.append((A, D))
            A = H
        if self.batch_norm:
            if batch_stats:
                n = A.shape[0]
                mean = A.mean(axis=0)
                var = A.var(axis=0)
                if train:
                    m = self.bn_momentum
                    unbiased = var * (n / (n - 1)) if n > 1 else var
                    self.bn_mean_ = ((1 - m) * self.bn_mean_ + m * mean).astype(self.dtype)
                    self.bn_var_ = ((1 - m) * self.bn_var_ + m * unbiased).astype(self.dtype)
            else:
                mean, var = self.bn_mean_, self.bn_var_
            inv = (1.0 / np.sqrt(var + self.bn_eps)).astype(self.dtype)
            xhat = (A - mean) * inv
            cache.bn = (xhat, inv, bool(batch_stats))
            A = xhat * self.bn_gamma_ + self.bn_beta_
        Z = A @ self.head_W_ + self.head_b_
        return Z, A, cache

    def _task_losses(self, Z: np.ndarray, Y: np.ndarray):
        """Per-task losses (see ``loss_normalization``), counts and d(L_t)/dZ[:, t] (unweighted)."""
        M = ~np.isnan(Y)
        Yz = np.where(M, Y, 0.0).astype(Z.dtype)
        counts = M.sum(axis=0)
        if self.loss_normalization == "batch":
            denom = np.full(counts.shape, max(Z.shape[0], 1), dtype=Z.dtype)
        else:
            denom = np.maximum(counts, 1).astype(Z.dtype)
        binary = np.array([t == "binary" for t in self.types_])
        loss = np.empty_like(Z)
        dl = np.empty_like(Z)
        if binary.any():
            Zb, Yb = Z[:, binary], Yz[:, binary]
            loss[:, binary] = np.logaddexp(0.0, Zb) - Yb * Zb
            dl[:, binary] = _sigmoid(Zb) - Yb
        if (~binary).any():
            r = Z[:, ~binary] - Yz[:, ~binary]
            loss[:, ~binary] = 0.5 * r * r
            dl[:, ~binary] = r
        loss = np.where(M, loss, 0.0)
        dZ = np.where(M, dl, 0.0) / denom
        return loss.sum(axis=0) / denom, counts, dZ

    def _bn_backward(self, dA: np.ndarray, cache: _Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gradient through batch normalisation: (dgamma, dbeta, dH)."""
        xhat, inv, batch_mode = cache.bn
        dgamma = (dA * xhat).sum(axis=0)
        dbeta = dA.sum(axis=0)
        dxhat = dA * self.bn_gamma_
        if batch_mode:
            n = dA.shape[0]
            dH = (inv / n) * (n * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0))
        else:
            dH = dxhat * inv
        return dgamma, dbeta, dH

    def _backward(self, dZ: np.ndarray, A_L: np.ndarray, cache: _Cache) -> list[np.ndarray]:
        wd = self.weight_decay
        grads_rev = [dZ.sum(axis=0) + (wd * self.head_b_ if self.decay_all else 0.0)]
        grads_rev.append(A_L.T @ dZ + wd * self.head_W_)
        dA = dZ @ self.head_W_.T
        if self.batch_norm:
            dgamma, dbeta, dA = self._bn_backward(dA, cache)
            if self.decay_all:
                dgamma = dgamma + wd * self.bn_gamma_
                dbeta = dbeta + wd * self.bn_beta_
            grads_rev += [dbeta, dgamma]
        for l in range(len(self.layers_) - 1, -1, -1):
            A_prev, D = cache.layers[l]
            W, b = self.layers_[l]
            dS = dA * D
            gW = A_prev.T @ dS
            if sp.issparse(gW):  # pragma: no cover - sparse.T @ dense is dense
                gW = gW.toarray()
            grads_rev.append(dS.sum(axis=0) + (wd * b if self.decay_all else 0.0))
            grads_rev.append(np.asarray(gW) + wd * W)
            if l > 0:
                dA = dS @ W.T
        return grads_rev[::-1]

    def _shared_grad_norms(self, dZ: np.ndarray, A_L: np.ndarray, cache: _Cache) -> np.ndarray:
        """Per task, the norm of the gradient of ``L_t`` w.r.t. the last shared parameters.

        Without batch normalisation: ``||dL_t/dW_L||_F`` for the last shared layer's
        weights (bias excluded). With ``D`` the activation derivative (times the dropout
        mask) of the last layer, ``K = A_{L-1} A_{L-1}'`` and ``Q_t = D diag(v_t^2) D'``
        (``v_t`` = head t): ``||dL_t/dW_L||^2 = sum_ik K_ik dZ_it dZ_kt Q_t[i, k]``; cost
        ``T n^2 h``.

        With batch normalisation (the last shared layer of the release's network), the
        norm of the gradient w.r.t. its scale and shift ``(gamma, beta)``:
        ``sum_j v_tj^2 ((xhat' dZ_t)_j^2 + (sum_i dZ_it)^2)``; cost ``T n h``.
        """
        if self.batch_norm:
            xhat = cache.bn[0]
            Pg = (xhat.T @ dZ).astype(np.float64)  # (h, T)
            s = dZ.sum(axis=0).astype(np.float64)  # (T,)
            V2 = self.head_W_.astype(np.float64) ** 2
            return np.sqrt(np.sum(V2 * (Pg ** 2 + s[None, :] ** 2), axis=0))
        A_prev, D = cache.layers[-1]
        K = A_prev @ A_prev.T
        K = K.toarray() if sp.issparse(K) else np.asarray(K)
        n, T = dZ.shape
        out = np.empty(T)
        chunk = max(1, int(4_000_000 // max(1, n * n)))
        V2 = (self.head_W_ ** 2).T  # (T, h)
        for s in range(0, T, chunk):
            e = min(T, s + chunk)
            Q = (D[None, :, :] * V2[s:e, None, :]) @ D.T  # (c, n, n)
            z = dZ[:, s:e].T  # (c, n)
            out[s:e] = np.einsum("ik,ti,tk,tik->t", K, z, z, Q, optimize=True)
        return np.sqrt(np.maximum(out, 0.0))

    # ------------------------------------------------------------------ public math
    def objective(self, X, Y, task_weights: np.ndarray | None = None, *, batch_stats: bool = False) -> float:
        """``sum_t w_t L_t + weight_decay/2 sum ||p||^2`` on ``(X, Y)`` without dropout.

        ``batch_stats=True`` normalises with the batch statistics of ``X`` (training mode
        of batch normalisation, without updating the running estimates); the default
        uses the running estimates (prediction mode).
        """
        self._require_fitted()
        X = _as_input(X, "X", self.dtype, False)
        Y = _as_labels(Y, "Y", X.shape[0], self.n_tasks_, self.dtype)
        w = self._check_task_weights(task_weights)
        Z, _, _ = self._forward(X, train=False, batch_stats=batch_stats)
        losses, _, _ = self._task_losses(Z, Y)
        reg = sum(float(np.sum(p * p)) for p, f in zip(self.get_params(), self._decayed()) if f)
        return float(w @ losses) + 0.5 * self.weight_decay * reg

    def gradient(self, X, Y, task_weights: np.ndarray | None = None, *, batch_stats: bool = False) -> list[np.ndarray]:
        """Gradient of :meth:`objective` by backpropagation, in :meth:`get_params` order."""
        self._require_fitted()
        X = _as_input(X, "X", self.dtype, False)
        Y = _as_labels(Y, "Y", X.shape[0], self.n_tasks_, self.dtype)
        w = self._check_task_weights(task_weights)
        Z, A_L, cache = self._forward(X, train=False, batch_stats=batch_stats)
        _, _, dZ = self._task_losses(Z, Y)
        return self._backward(dZ * w.astype(self.dtype), A_L, cache)

    def batch_statistics(self, X, Y, *, batch_stats: bool = False) -> BatchStats:
        """Per-task losses, head gradients and shared-layer gradient norms on ``(X, Y)``."""
        self._require_fitted()
        X = _as_input(X, "X", self.dtype, False)
        Y = _as_labels(Y, "Y", X.shape[0], self.n_tasks_, self.dtype)
        Z, A_L, cache = self._forward(X, train=False, batch_stats=batch_stats)
        losses, counts, dZ = self._task_losses(Z, Y)
        return self._stats(losses, counts, dZ, A_L, cache, ("head_grads", "shared_grad_norms"), 0, 0)

    def _stats(self, losses, counts, dZ, A_L, cache, requires, epoch, step) -> BatchStats:
        head = shared = None
        if "head_grads" in requires:
            head = np.vstack([A_L.T @ dZ, dZ.sum(axis=0)]).T.astype(np.float64)
        if "shared_grad_norms" in requires:
            shared = self._shared_grad_norms(dZ, A_L, cache)
        return BatchStats(np.asarray(losses, dtype=np.float64), counts, epoch, step, head, shared)

    def _check_task_weights(self, w) -> np.ndarray:
        if w is None:
            return np.ones(self.n_tasks_)
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (self.n_tasks_,) or not np.all(np.isfinite(w)):
            raise ValueError(f"task_weights must be {self.n_tasks_} finite numbers")
        return w

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

    # ------------------------------------------------------------------ prediction
    def decision_function(self, X) -> np.ndarray:
        """Head outputs ``Z`` (logits for binary tasks), shape (n, T)."""
        self._require_fitted()
        X = _as_input(X, "X", self.dtype, self.sparse_input)
        if X.shape[1] != self.n_features_:
            raise ValueError(f"X has {X.shape[1]} columns, the network expects {self.n_features_}")
        out = []
        for s in range(0, X.shape[0], 4096):
            out.append(self._forward(X[s:s + 4096], train=False)[0])
        return np.vstack(out).astype(np.float64) if out else np.zeros((0, self.n_tasks_))

    def _predict(self, X) -> np.ndarray:
        Z = self.decision_function(X)
        binary = np.array([t == "binary" for t in self.types_])
        Z[:, binary] = _sigmoid(Z[:, binary])
        return Z

    def predict(self, X) -> np.ndarray:
        """Predictions, shape (n, T): probabilities for binary tasks, values for regression."""
        return self._predict(X)

    def evaluate(self, X, Y) -> dict[str, np.ndarray]:
        """Per-task metrics on ``(X, Y)`` (see :func:`task_scores`)."""
        self._require_fitted()
        Y = _as_labels(Y, "Y", X.shape[0], self.n_tasks_, np.float64)
        return task_scores(Y, self._predict(X), self.types_)


def _fit_one(task_type: str, seed: np.random.SeedSequence, network_params: dict, args: tuple) -> "MultiTaskNetwork":
    """One task's network of :class:`SingleTaskNetworks` (a joblib job)."""
    net = MultiTaskNetwork(task_types=task_type, random_state=np.random.default_rng(seed), **network_params)
    return net.fit(*args)


class SingleTaskNetworks:
    """One network per task (same architecture as the multi-task one), each on its own rows.

    Task t's network is a one-head :class:`MultiTaskNetwork` trained on the rows that
    carry a label for t, early-stopped on its own validation score; seeds are drawn from
    ``random_state`` (one independent stream per task).

    Parameters
    ----------
    tasks : sequence of int, optional
        Train only these tasks (predictions of the others are NaN).
    progress : bool, default=False
        Progress bar over tasks.
    n_jobs : int, optional
        Networks trained at once, in joblib's worker processes (``None``: one at a time
        in this process; ``-1``: one per core). Each network has its own seed, so the
        result does not depend on ``n_jobs``.
    **network_params
        Passed to :class:`MultiTaskNetwork` (``weighting`` is not allowed).
    """

    def __init__(self, *, tasks: Sequence[int] | None = None, random_state: int | None = None,
                 progress: bool = False, n_jobs: int | None = None, **network_params) -> None:
        if "weighting" in network_params or "weighting_params" in network_params:
            raise ValueError("single-task networks take no weighting")
        if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0):
            raise ValueError(f"n_jobs must be None or a nonzero integer, got {n_jobs!r}")
        self.tasks = None if tasks is None else [int(t) for t in tasks]
        self.random_state = random_state
        self.progress = bool(progress)
        self.n_jobs = n_jobs
        self.network_params = dict(network_params)
        task_types = self.network_params.pop("task_types", "binary")
        self.task_types = task_types
        MultiTaskNetwork(**self.network_params)  # validate now

    def fit(self, X, Y, X_val=None, Y_val=None) -> "SingleTaskNetworks":
        """Fit one network per task on its labelled rows (validation likewise)."""
        dtype = np.dtype(self.network_params.get("dtype", np.float64)).type
        sparse_input = self.network_params.get("sparse_input", "auto")
        X = _as_input(X, "X", dtype, sparse_input)
        Y = _as_labels(Y, "Y", X.shape[0], None, np.float64)
        T = Y.shape[1]
        types = (self.task_types,) * T if isinstance(self.task_types, str) else tuple(self.task_types)
        if len(types) != T:
            raise ValueError(f"task_types has {len(types)} entries for {T} tasks")
        if X_val is not None:
            X_val = _as_input(X_val, "X_val", dtype, sparse_input)
            Y_val = _as_labels(Y_val, "Y_val", X_val.shape[0], T, np.float64)
        tasks = list(range(T)) if self.tasks is None else self.tasks
        if any(t < 0 or t >= T for t in tasks):
            raise ValueError(f"tasks must be indices in 0..{T - 1}")
        seeds = np.random.SeedSequence(self.random_state).spawn(T)
        self.networks_: dict[int, MultiTaskNetwork] = {}
        self.types_ = types
        self.n_tasks_ = T
        for t in tasks:
            if not np.any(~np.isnan(Y[:, t])):
                raise ValueError(f"task {t} has no labelled training row")

        def job(t: int):
            rows = np.flatnonzero(~np.isnan(Y[:, t]))
            args = (X[rows], Y[rows, t])
            if X_val is not None:
                vr = np.flatnonzero(~np.isnan(Y_val[:, t]))
                args += (X_val[vr], Y_val[vr, t])
            return delayed(_fit_one)(types[t], seeds[t], self.network_params, args)

        with progress_bar(self.progress, len(tasks), "single-task networks") as bar:
            if self.n_jobs is None or self.n_jobs == 1:
                nets = []
                for t in tasks:
                    fn, fargs, fkwargs = job(t)
                    nets.append(fn(*fargs, **fkwargs))
                    bar.update(1)
            else:
                nets = []
                for net in Parallel(n_jobs=self.n_jobs, return_as="generator")(job(t) for t in tasks):
                    nets.append(net)
                    bar.update(1)
        self.networks_ = dict(zip(tasks, nets))
        return self

    def predict(self, X) -> np.ndarray:
        """Predictions of every task's network, shape (n, T) (NaN for untrained tasks)."""
        if not hasattr(self, "networks_"):
            raise ValueError("call fit first")
        P = np.full((X.shape[0], self.n_tasks_), np.nan)
        for t, net in self.networks_.items():
            P[:, t] = net.predict(X)[:, 0]
        return P

    def evaluate(self, X, Y) -> dict[str, np.ndarray]:
        """Per-task metrics (see :func:`task_scores`); untrained tasks give NaN."""
        Y = _as_labels(Y, "Y", X.shape[0], self.n_tasks_, np.float64)
        P = self.predict(X)
        Y = np.where(np.isnan(P), np.nan, Y)
        return task_scores(Y, np.nan_to_num(P), self.types_)
