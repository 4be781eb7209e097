r"""The shared-bottom network's model: parameters, forward and backward passes, losses.

:class:`NetworkModel` holds everything of :class:`amtl_cvx.lbtw.network.MultiTaskNetwork`
but its constructor and its training loop (Adam, early stopping), which live in
:mod:`amtl_cvx.lbtw.network`.

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
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

from amtl_cvx.lbtw.scores import task_scores
from amtl_cvx.lbtw.weighting import BatchStats

__all__ = ["NetworkModel", "ACTIVATIONS", "TASK_TYPES", "LOSS_NORMALIZATIONS"]

ACTIVATIONS = ("relu", "tanh", "sigmoid")
TASK_TYPES = ("binary", "regression")


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


class NetworkModel:
    """Parameters, forward and backward passes and predictions of a shared-bottom network.

    The base of :class:`amtl_cvx.lbtw.network.MultiTaskNetwork`, which sets the
    attributes read here in its constructor (``hidden``, ``dropout``, ``batch_norm``,
    ``task_types``, ``loss_normalization``, ``weight_decay``, ``dtype``, ...) and trains
    the parameters; see its documentation.
    """

    # ------------------------------------------------------------------ parameters
    def _types(self, n_tasks: int) -> tuple[str, ...]:
        if isinstance(self.task_types, str):
            return (self.task_types,) * n_tasks
        if len(self.task_types) != n_tasks:
            raise ValueError(f"task_types has {len(self.task_types)} entries for {n_tasks} tasks")
        return self.task_types

    def initialize(self, n_features: int, n_tasks: int) -> "NetworkModel":
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
    def _checked_data(self, X, Y) -> tuple:
        """``(X, Y)`` of :meth:`objective`, :meth:`gradient` and :meth:`batch_statistics`,
        checked against the fitted network (dense input, the network's dtype)."""
        self._require_fitted()
        X = _as_input(X, "X", self.dtype, False)
        return X, _as_labels(Y, "Y", X.shape[0], self.n_tasks_, self.dtype)

    def objective(self, X, Y, task_weights: np.ndarray | None = None, *, batch_stats: bool = False) -> float:
        """``sum_t w_t L_t + weight_decay/2 sum ||p||^2`` on ``(X, Y)`` without dropout.

        ``batch_stats=True`` normalises with the batch statistics of ``X`` (training mode
        of batch normalisation, without updating the running estimates); the default
        uses the running estimates (prediction mode).
        """
        X, Y = self._checked_data(X, Y)
        w = self._check_task_weights(task_weights)
        Z, _, _ = self._forward(X, train=False, batch_stats=batch_stats)
        losses, _, _ = self._task_losses(Z, Y)
        reg = sum(float(np.sum(p * p)) for p, f in zip(self.get_params(), self._decayed()) if f)
        return float(w @ losses) + 0.5 * self.weight_decay * reg

    def gradient(self, X, Y, task_weights: np.ndarray | None = None, *, batch_stats: bool = False) -> list[np.ndarray]:
        """Gradient of :meth:`objective` by backpropagation, in :meth:`get_params` order."""
        X, Y = self._checked_data(X, Y)
        w = self._check_task_weights(task_weights)
        Z, A_L, cache = self._forward(X, train=False, batch_stats=batch_stats)
        _, _, dZ = self._task_losses(Z, Y)
        return self._backward(dZ * w.astype(self.dtype), A_L, cache)

    def batch_statistics(self, X, Y, *, batch_stats: bool = False) -> BatchStats:
        """Per-task losses, head gradients and shared-layer gradient norms on ``(X, Y)``."""
        X, Y = self._checked_data(X, Y)
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
