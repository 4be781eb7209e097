"""GO-MTL's data layout: the tasks' rows stacked once (padded to one size when that is cheap,
compressed to ``d + 1`` rows per task for the squared loss), and the per-task products on them."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from solvers.baselines._shared import _prepare


#: Tasks of unequal sizes are padded with zero rows of weight 0 to the largest size when that
#: adds at most this factor of rows: every per-task product is then one batched call on a
#: (T, n, .) array; beyond it the per-task sums are segment reductions of the stacked rows.
_PAD_MAX = 2.0


def _logistic_terms(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For margins ``m``: ``log(1 + exp(-m))``, ``p = expit(-m)``, ``1 - p = expit(m)`` and
    ``log1p(exp(-|m|))``, from one exponential and one logarithm (each accurate where it is
    small: ``1 - p`` is not formed by cancellation). The binary entropy of ``p`` is then
    ``log1p(exp(-|m|)) + p max(m, 0) + (1 - p) max(-m, 0)``."""
    e = np.abs(m)  # in place from here: these run on every row at every evaluation
    np.negative(e, out=e)
    np.exp(e, out=e)
    l1 = np.log1p(e)
    r = e + 1.0
    np.reciprocal(r, out=r)
    er = e * r
    pos = m >= 0
    softplus = np.minimum(m, 0.0)
    np.negative(softplus, out=softplus)
    softplus += l1
    return softplus, np.where(pos, er, r), np.where(pos, r, er), l1


def _softplus(m: np.ndarray) -> np.ndarray:
    """``log(1 + exp(-m))``, as the first output of :func:`_logistic_terms`."""
    e = np.abs(m)
    np.negative(e, out=e)
    np.exp(e, out=e)
    np.log1p(e, out=e)
    softplus = np.minimum(m, 0.0)
    np.negative(softplus, out=softplus)
    softplus += e
    return softplus


def _compress_rows(Xl: list[np.ndarray], yl: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The squared loss of every task with more than ``d + 1`` rows on ``d + 1`` rows.

    The triangular factor of the thin QR of ``[X_t, y_t]`` is ``[[R_t, z_t], [0, rho_t]]``
    with ``X_t = Q_t R_t``, ``z_t = Q_t' y_t`` and ``|rho_t| = ||y_t - Q_t z_t||``, so
    ``||y_t - X_t w||^2 = ||z_t - R_t w||^2 + rho_t^2``: the rows ``[R_t; 0]`` with targets
    ``[z_t; rho_t]`` give the same residual norm, the same ``X_t' r`` and ``y_t' r`` for every
    ``w``, hence the same losses, gradients, Hessians and duality gaps (the weights stay
    ``1 / n_t``), up to the rounding of a backward-stable QR (the part of ``y_t`` outside the
    span of ``X_t`` is never formed as ``||y||^2 - ||z||^2``, which cancels when the fit is
    close). Kept for the last few data sets (a digest of their bytes): a grid builds one
    :class:`GOMTLSteps` per fit."""
    import hashlib

    digest = hashlib.blake2b(digest_size=32)
    for X, y in zip(Xl, yl):
        for a in (X, y):
            digest.update(repr(a.shape).encode())
            digest.update(np.ascontiguousarray(a).data)
    key = digest.hexdigest()
    if key in _COMPRESSED:
        return _COMPRESSED[key]
    Xc, yc = [], []
    for X, y in zip(Xl, yl):
        n, d = X.shape
        if n <= d + 1:
            Xc.append(X)
            yc.append(y)
            continue
        R = np.linalg.qr(np.column_stack([X, y]), mode="r")
        Xc.append(np.triu(R)[:, :d])  # (d + 1) x d, its last row 0
        yc.append(R[:, d].copy())
    while len(_COMPRESSED) >= 4:  # the oldest first
        _COMPRESSED.pop(next(iter(_COMPRESSED)))
    _COMPRESSED[key] = (Xc, yc)
    return Xc, yc


#: The last few outputs of :func:`_compress_rows`, by a digest of the data.
_COMPRESSED: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}


class _TaskRows:
    """The tasks' rows of one data set, validated and laid out once, and the per-task
    products on them (the data half of :class:`solvers.baselines.gomtl.GOMTLSteps`, whose
    docstring describes the layout)."""

    def __init__(self, Xs: Sequence[Any], ys: Sequence[Any], loss: str = "squared") -> None:
        self.Xl, self.yl, self.loss = _prepare(Xs, ys, loss)
        T = self.n_tasks = len(self.Xl)
        d = self.n_features = self.Xl[0].shape[1]
        n_rows = np.array([X.shape[0] for X in self.Xl], dtype=np.float64)  # the weights' n_t
        Xr, yr = (_compress_rows(self.Xl, self.yl) if self.loss == "squared" else (self.Xl, self.yl))
        ns = np.array([X.shape[0] for X in Xr])
        n = int(ns.max())
        if T * n <= _PAD_MAX * ns.sum():
            X3, y2, w2 = np.zeros((T, n, d)), np.zeros((T, n)), np.zeros((T, n))
            for t, (X, y) in enumerate(zip(Xr, yr)):
                X3[t, : len(y)], y2[t, : len(y)], w2[t, : len(y)] = X, y, 1.0 / n_rows[t]
            self._X3: np.ndarray | None = X3
            self._X, self._y, self._w = X3.reshape(T * n, d), y2.ravel(), w2.ravel()
            self._task = np.repeat(np.arange(T), n)
            self._bounds = n * np.arange(T + 1)
        else:
            self._X3 = None
            self._bounds = np.concatenate([[0], np.cumsum(ns)])
            self._X = np.vstack(Xr)
            self._y = np.concatenate(yr)
            self._task = np.repeat(np.arange(T), ns)
            self._w = 1.0 / np.repeat(n_rows, ns)  # 1 / n_t on every row of task t
        self._G: np.ndarray | None = None  # X_t'X_t / n_t, (T, d, d)
        self._Xy: np.ndarray | None = None  # X_t'y_t / n_t, (T, d)
        # Cholesky factors kept between logistic L-steps as preconditioners: (k, lam, factor)
        self._factors: dict[str, tuple] = {}
        # (k, lam, CG products of the L-step after the last renewal, their excess since)
        self._pc_state: tuple = (None, None, None, 0.0)

    # ------------------------------------------------------------ per-task products
    def _per_task(self, v: np.ndarray) -> np.ndarray:
        """Sums of a per-row vector over each task's rows, shape (T,)."""
        if self._X3 is not None:
            return v.reshape(self.n_tasks, -1).sum(axis=1)
        return np.bincount(self._task, weights=v, minlength=self.n_tasks)

    def _scores(self, Z: np.ndarray, V: np.ndarray) -> np.ndarray:
        """``Z_i . V[t(i)]`` for every row ``i`` (``Z`` rows x m, ``V`` T x m), shape (rows,)."""
        if self._X3 is not None:
            return np.matmul(Z.reshape(self.n_tasks, -1, Z.shape[1]), V[:, :, None]).reshape(-1)
        return np.einsum("nm,nm->n", Z, V[self._task])

    def _sums(self, v: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """``sum_{i in task t} v_i Z_i`` for every task (``Z`` rows x m), shape (T, m)."""
        if self._X3 is not None:
            T = self.n_tasks
            return np.matmul(v.reshape(T, 1, -1), Z.reshape(T, -1, Z.shape[1]))[:, 0, :]
        return np.add.reduceat(Z * v[:, None], self._bounds[:-1], axis=0)

    def _grams(self, Z: np.ndarray, weights: np.ndarray, tasks: np.ndarray | None = None) -> np.ndarray:
        """``Z_t' diag(weights_t) Z_t`` for every task (or those of ``tasks``), shape (T, m, m),
        symmetric."""
        T, m = self.n_tasks, Z.shape[1]
        if self._X3 is not None and tasks is not None:
            Z3, w2 = Z.reshape(T, -1, m)[tasks], weights.reshape(T, -1)[tasks]
            G = np.matmul((Z3 * w2[:, :, None]).transpose(0, 2, 1), Z3)
            return 0.5 * (G + np.swapaxes(G, 1, 2))
        if tasks is not None:
            return self._grams(Z, weights)[tasks]
        Zw = Z * weights[:, None]
        if self._X3 is not None:
            G = np.matmul(Zw.reshape(T, -1, m).transpose(0, 2, 1), Z.reshape(T, -1, m))
        elif Z.shape[0] * m * m <= 1 << 20:
            G = np.add.reduceat((Zw[:, :, None] * Z[:, None, :]).reshape(-1, m * m), self._bounds[:-1], axis=0)
            G = G.reshape(-1, m, m)
        else:
            b = self._bounds
            G = np.stack([Zw[b[t]:b[t + 1]].T @ Z[b[t]:b[t + 1]] for t in range(T)])
        return 0.5 * (G + np.swapaxes(G, 1, 2))

    def _data_grams(self) -> np.ndarray:
        """``X_t'X_t / n_t`` (T, d, d), computed once."""
        if self._G is None:
            self._G = self._grams(self._X, self._w)
        return self._G

    def objective(self, L: np.ndarray, S: np.ndarray, mu: float, lam: float) -> float:
        """``sum_t L_t(L s_t) + mu ||S||_1 + lam ||L||_F^2`` from the prepared data (unchecked;
        equal to :func:`amtl_cvx.baselines.multitask.gomtl_objective` up to rounding)."""
        z = self._scores(self._X, (L @ S).T)
        if self.loss == "squared":
            r = self._y - z
            f = 0.5 * float(r @ (r * self._w))
        else:
            f = float(_softplus(self._y * z) @ self._w)
        return f + mu * float(np.sum(np.abs(S))) + lam * float(np.sum(L * L))
