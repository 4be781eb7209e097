"""Exact nonnegative QP ``min_{b >= 0} 1/2 ||v - A b||^2 + q' b`` (Lawson-Hanson with a
linear term), the inner solver of the curriculum step (:mod:`solvers.curriculum`)."""

from __future__ import annotations

import numpy as np

_EPS = np.finfo(np.float64).eps



def nnqp(
    A: np.ndarray,
    v: np.ndarray,
    q: np.ndarray,
    *,
    b0: np.ndarray | None = None,
    kkt_tol: float | None = None,
    max_iter: int | None = None,
) -> tuple[np.ndarray, int, bool]:
    """Solve ``min_{b >= 0} 1/2 ||v - A b||^2 + q' b`` exactly (active set).

    Parameters
    ----------
    A : numpy.ndarray
        (m, k) matrix (any rank).
    v : numpy.ndarray
        (m,) target.
    q : numpy.ndarray
        (k,) linear penalty, ``q >= 0`` (so the problem is bounded below).
    b0 : numpy.ndarray, optional
        (k,) feasible warm start (``b0 >= 0``); its support seeds the active set.
    kkt_tol : float, optional
        Stop when every gradient entry off the support is ``>= -kkt_tol``.
        Default ``1e-13 * max(||A'v||_inf, ||q||_inf)`` (``1e-13`` when both are 0).
    max_iter : int, optional
        Maximum number of support changes (default ``3 (k + m) + 50``).

    Returns
    -------
    b : numpy.ndarray
        (k,) minimiser, exactly ``>= 0`` with exact zeros off the support.
    n_iter : int
        Support changes performed.
    ok : bool
        False when ``max_iter`` stopped the method or no admissible index remained.
    """
    m, k = A.shape
    if k == 0:
        return np.zeros(0), 0, True
    Atv = A.T @ v
    scale = max(float(np.max(np.abs(Atv))), float(np.max(np.abs(q)))) or 1.0
    if kkt_tol is None:
        kkt_tol = 1e-13 * scale
    if max_iter is None:
        max_iter = 3 * (k + m) + 50
    if b0 is None:
        b = np.zeros(k)
    else:
        b = np.maximum(np.asarray(b0, dtype=np.float64), 0.0)
    P = b > 0
    banned = np.zeros(k, dtype=bool)
    n_iter = 0
    ok = True
    col_norm = np.sqrt(np.einsum("ij,ij->j", A, A))
    while True:
        # ---- inner loop: minimise over span(P) keeping b_P >= 0 ----------------
        for _ in range(k + 2):
            idx = np.flatnonzero(P)
            if idx.size == 0:
                b[:] = 0.0
                break
            AP = A[:, idx]
            bP = b[idx]
            gP = AP.T @ (AP @ bP - v) + q[idx]
            _, sv, Vt = np.linalg.svd(AP, full_matrices=False)
            rtol = (sv[0] if sv.size else 0.0) * max(AP.shape) * _EPS * 16
            r = int(np.sum(sv > rtol))
            Vr = Vt[:r]
            proj = Vr.T @ (Vr @ gP)
            gN = gP - proj
            ray = float(np.linalg.norm(gN)) > kkt_tol
            if ray:
                p = -gN
            else:
                p = -(Vr.T @ ((Vr @ gP) / sv[:r] ** 2))
            z = bP + p
            if not ray and np.all(z > 0):
                b[idx] = z
                break
            neg = p < 0
            if ray and not np.any(neg):  # pragma: no cover - impossible with q >= 0
                ok = False
                break
            with np.errstate(divide="ignore", invalid="ignore"):
                ratios = np.where(neg, bP / np.where(neg, -p, 1.0), np.inf)
            j = int(np.argmin(ratios))
            alpha = float(ratios[j])
            if not ray:
                alpha = min(alpha, 1.0)
            bP = bP + alpha * p
            bP[j] = 0.0
            bP[bP <= 0] = 0.0
            b[idx] = bP
            P[idx[bP <= 0]] = False
            b[~P] = 0.0
        # ---- optimality check off the support -----------------------------------
        g = A.T @ (A @ b - v) + q
        cand = (~P) & (~banned) & (g < -kkt_tol)
        if not np.any(cand):
            break
        if n_iter >= max_iter:
            ok = False
            break
        # most negative gradient, scaled by column norm (steepest edge)
        score = np.where(cand, g / np.maximum(col_norm, 1e-300), np.inf)
        j = int(np.argmin(score))
        P[j] = True
        n_iter += 1
        # if the exact step on the enlarged support would not raise b_j (numerical
        # degeneracy), drop j again and exclude it until the support changes
        if _step_drops(A, v, q, b, P, j, kkt_tol):
            banned[j] = True
        else:
            banned[:] = False
    b[b < 0] = 0.0
    return b, n_iter, ok



def _step_drops(
    A: np.ndarray, v: np.ndarray, q: np.ndarray, b: np.ndarray, P: np.ndarray, j: int, kkt_tol: float
) -> bool:
    """Check whether adding ``j`` yields a positive coordinate (LH progress test).

    Returns True when the exact step on ``P`` would make ``b_j <= 0`` (numerical
    degeneracy), in which case ``j`` is removed from ``P`` again.
    """
    idx = np.flatnonzero(P)
    AP = A[:, idx]
    bP = b[idx]
    gP = AP.T @ (AP @ bP - v) + q[idx]
    _, sv, Vt = np.linalg.svd(AP, full_matrices=False)
    rtol = (sv[0] if sv.size else 0.0) * max(AP.shape) * _EPS * 16
    r = int(np.sum(sv > rtol))
    Vr = Vt[:r]
    gN = gP - Vr.T @ (Vr @ gP)
    if float(np.linalg.norm(gN)) > kkt_tol:
        p = -gN
    else:
        p = -(Vr.T @ ((Vr @ gP) / sv[:r] ** 2))
    pos = int(np.searchsorted(idx, j))
    if p[pos] > 0:
        return False
    P[j] = False
    return True

