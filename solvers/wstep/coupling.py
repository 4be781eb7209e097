"""Structure of the W-step: the coupling ``M = (I - B)(I - B)'`` and per-task Gram matrices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from solvers.losses import _check_tasks, get_loss

_SPARSE_DENSITY = 0.1  # dense B with fewer nonzeros than this fraction goes sparse



class _Coupling:
    """Products with ``I - B``, ``(I - B)'`` and ``M = (I - B)(I - B)'`` on T x d arrays."""

    def __init__(self, B: np.ndarray | sp.csr_matrix) -> None:
        T = B.shape[0]
        self.T = T
        if not sp.issparse(B) and T > 20 and np.count_nonzero(B) < _SPARSE_DENSITY * T * T:
            B = sp.csr_matrix(B)
        if sp.issparse(B):
            self.B = B.tocsr()
            self.Bt = B.T.tocsr()
            self.sparse = True
            self.zero = self.B.nnz == 0
            sq = self.B.multiply(self.B).sum(axis=1)
            self.mdiag = 1.0 + np.asarray(sq).ravel()
        else:
            self.B = np.asarray(B)
            self.Bt = np.ascontiguousarray(self.B.T)
            self.sparse = False
            self.zero = not np.any(self.B)
            self.mdiag = 1.0 + np.einsum("ij,ij->i", self.B, self.B)

    def ibt(self, V: np.ndarray) -> np.ndarray:
        """Return ``(I - B)' V`` (the rows of ``(W (I - B))'``)."""
        if self.zero:
            return V.copy()
        return V - self.Bt @ V

    def ib(self, U: np.ndarray) -> np.ndarray:
        """Return ``(I - B) U``."""
        if self.zero:
            return U.copy()
        return U - self.B @ U

    def m(self, V: np.ndarray) -> np.ndarray:
        """Return ``M V`` with ``M = (I - B)(I - B)'`` (the rows of ``(W M)'``)."""
        if self.zero:
            return V
        return self.ib(self.ibt(V))

    def dense_m(self) -> np.ndarray:
        """Return ``M`` as a dense T x T array."""
        IB = np.eye(self.T) - (self.B.toarray() if self.sparse else self.B)
        return IB @ IB.T



@dataclass(frozen=True)
class TaskGrams:
    """Cached per-task sufficient statistics of the squared loss.

    Attributes
    ----------
    gram : numpy.ndarray
        ``(T, d, d)``, ``gram[t] = X_t' X_t``.
    xty : numpy.ndarray
        ``(T, d)``, ``xty[t] = X_t' y_t``.
    n : numpy.ndarray
        ``(T,)`` row counts ``n_t``.
    """

    gram: np.ndarray
    xty: np.ndarray
    n: np.ndarray



def _grams(Xs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> TaskGrams:
    T, d = len(Xs), Xs[0].shape[1]
    G = np.empty((T, d, d))
    c = np.empty((T, d))
    for t in range(T):
        G[t] = Xs[t].T @ Xs[t]
        c[t] = Xs[t].T @ ys[t]
    n = np.array([X.shape[0] for X in Xs], dtype=np.float64)
    return TaskGrams(gram=G, xty=c, n=n)



def precompute_grams(Xs: Sequence[Any], ys: Sequence[Any]) -> TaskGrams:
    """Compute the per-task Gram matrices ``X_t'X_t`` and ``X_t'y_t`` once.

    Pass the result as ``grams=`` to :func:`solve_tasks` (squared loss) to skip
    this ``O(sum_t n_t d^2)`` step in repeated W-steps on the same data.

    Parameters
    ----------
    Xs : sequence of numpy.ndarray
        T designs, ``Xs[t]`` of shape ``(n_t, d)``.
    ys : sequence of numpy.ndarray
        T targets, ``ys[t]`` of shape ``(n_t,)``.

    Returns
    -------
    TaskGrams
    """
    Xl, yl = _check_tasks(Xs, ys, get_loss("squared"))
    return _grams(Xl, yl)



def _block_inverse(P: np.ndarray) -> np.ndarray:
    """Inverses of the symmetric positive definite blocks ``P[t]`` (T, d, d)."""
    T, d, _ = P.shape
    if d <= 32:
        try:
            return np.linalg.inv(P)
        except np.linalg.LinAlgError:
            pass
    out = np.empty_like(P)
    for t in range(T):
        c, info = lapack.dpotrf(P[t], lower=1)
        if info == 0:
            inv, info = lapack.dpotri(c, lower=1)
        if info != 0:
            out[t] = np.linalg.pinv(P[t], hermitian=True)
            continue
        low = np.tril(inv)
        out[t] = low + np.tril(low, -1).T
    return out

