"""The metric of the first-order W-step (:mod:`solvers.first_order_tasks`).

Per-task eigendecompositions of the Gram matrices (cached per :class:`TaskGrams`
object), the coupling matrix ``2 lam M + 2 ridge I``, the step bound of the
preconditioned Hessian and the coarse correction for the slow modes of the coupling.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from solvers.wstep.coupling import TaskGrams, _Coupling

#: The most eigenvectors of M the coarse correction uses (plus M's null space).
COARSE_MAX_K = 4

# Eigendecompositions of the last TaskGrams seen (identity-keyed): the W-steps of one
# fit share their Gram matrices, so the O(T d^3) factorisation is paid once per fit.
_EIG_CACHE: list[tuple[TaskGrams, np.ndarray, np.ndarray]] = []


def _eig(grams: TaskGrams) -> tuple[np.ndarray, np.ndarray]:
    """``(gamma, E)`` with ``grams.gram[t] = E[t] diag(gamma[t]) E[t]'`` (cached)."""
    if _EIG_CACHE and _EIG_CACHE[0][0] is grams:
        return _EIG_CACHE[0][1], _EIG_CACHE[0][2]
    gam, E = np.linalg.eigh(grams.gram)
    gam = np.maximum(gam, 0.0)
    _EIG_CACHE[:] = [(grams, gam, E)]
    return gam, E



def _coupling_matrix(cp: _Coupling, lam: float, ridge: float) -> np.ndarray | sp.csr_matrix:
    """``2 lam M + 2 ridge I`` (dense for small T, CSR otherwise)."""
    T = cp.T
    if cp.sparse and T > 200:
        IB = sp.identity(T, format="csr") - cp.B
        return ((2.0 * lam) * (IB @ IB.T) + (2.0 * ridge) * sp.identity(T)).tocsr()
    return 2.0 * lam * cp.dense_m() + 2.0 * ridge * np.eye(T)



def _step_bound(K: np.ndarray | sp.csr_matrix, c: np.ndarray) -> float:
    """``max(1, lambda_max(C^{-1/2} K C^{-1/2}))``: a bound on ``lambda_max(P^{-1} H)``.

    With ``P = S + C kron I`` and ``H = S + K kron I`` (``S`` the PSD block-diagonal loss
    part, ``K`` PSD), ``x'Hx / x'Px <= max(1, x'(K kron I)x / x'(C kron I)x)``.
    """
    r = 1.0 / np.sqrt(c)
    T = c.size
    if sp.issparse(K):
        Ks = sp.diags(r) @ K @ sp.diags(r)
        if T > 2:
            from scipy.sparse.linalg import eigsh

            try:
                top = float(eigsh(Ks, k=1, which="LA", tol=1e-8, return_eigenvectors=False)[0])
                return max(1.0, top * (1.0 + 1e-6))
            except Exception:  # pragma: no cover - ARPACK failure: fall back to a norm bound
                return max(1.0, float(abs(Ks).sum(axis=1).max()))
        K = Ks.toarray()
    else:
        K = K * r[:, None] * r[None, :]
    top = float(np.linalg.eigvalsh(K)[-1])
    return max(1.0, top * (1.0 + 1e-12))



def _coarse_space(
    cp: _Coupling, K: np.ndarray | sp.csr_matrix, sG: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Coarse correction for the slow modes of the coupling: ``(Z, C^+, H R')``.

    ``Z`` (T x k) holds the eigenvectors of ``M = (I - B)(I - B)'`` with eigenvalues
    below 1 (the smoothest, where a nearly singular ``I - B`` makes block Jacobi crawl;
    at most :data:`COARSE_MAX_K` of them, but always all of ``M``'s null space), and
    ``R = Z' kron I_d`` the restriction to the coarse space. ``C^+`` is the
    pseudo-inverse of the coarse Hessian ``C = R H R'`` (``k d`` x ``k d``), ``H R'``
    the Hessian times the prolongation (``T d`` x ``k d``). The step
    ``R' C^+ R g`` is the exact minimisation over the coarse space; ``H^{1/2} R' C^+ R
    H^{1/2}`` is an orthogonal projection, so it adds at most 1 to the largest eigenvalue
    of the preconditioned Hessian. With ``Z`` spanning ``M``'s null space, the step is
    orthogonal to the null space of ``H`` (the minimum-norm limit is kept). None when
    no eigenvalue of ``M`` is below 1 (``B = 0``).
    """
    T, d = sG.shape[0], sG.shape[1]
    lam_m, vecs = np.linalg.eigh(cp.dense_m())
    top = max(float(lam_m[-1]), 1.0)
    n_null = int(np.sum(lam_m <= 1e-10 * top))
    k = max(min(int(np.sum(lam_m < 1.0 - 1e-9)), COARSE_MAX_K), n_null)
    if k == 0:
        return None
    Z = np.ascontiguousarray(vecs[:, :k])
    KZ = np.asarray(K @ Z)
    HZ = sG[:, :, None, :] * Z[:, None, :, None]  # (t, a, j, b): delta_tt' sG[t]_ab Z_tj
    HZ[:, np.arange(d), :, np.arange(d)] += KZ[None, :, :]  # delta_ab (KZ)_tj
    HZ = HZ.reshape(T * d, k * d)
    C = (Z.T @ HZ.reshape(T, d * k * d)).reshape(k * d, k * d)  # R H R'
    C = (C + C.T) / 2.0
    n = k * d
    Cpinv = None
    if n_null == 0:  # C is positive definite unless H is singular: Cholesky
        fac, info = lapack.dpotrf(C, lower=1)
        if info == 0 and np.min(np.diag(fac)) ** 2 > n * np.finfo(float).eps * 16 * float(np.max(np.diag(C))):
            # C^{-1} = L^{-T} L^{-1} (dtrtri and one product: half the time of dpotri here)
            inv, info = lapack.dtrtri(fac, lower=1)
            if info == 0:
                inv = np.tril(inv)
                Cpinv = inv.T @ inv
    if Cpinv is None:  # singular: pseudo-inverse
        ev, U = np.linalg.eigh(C)
        keep = ev > max(float(ev[-1]), 0.0) * n * np.finfo(float).eps * 16
        Cpinv = (U[:, keep] / ev[keep]) @ U[:, keep].T
    return Z, Cpinv, HZ

