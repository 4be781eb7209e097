"""The B-step objective and KKT certificate, shared by every B-step solver.

:func:`transfer_objective` and :func:`transfer_kkt_residual` are the public definitions
(see their docstrings for the formulas); the private helpers compute the same quantities
from the compact (support indices, values) form of ``B`` that the solvers keep, and
:func:`_price` is the pricing pass of the active-set methods (the certificate of each
column and its most violating coordinates).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from solvers.bstep.checks import _block_size, _check_B, _check_inputs, _check_ridge, _grad_scale
from solvers.result import SolverResult

__all__ = ["transfer_objective", "transfer_kkt_residual"]


def transfer_objective(
    W: np.ndarray, B: np.ndarray, penalty: np.ndarray, lam: float, *, ridge: float = 0.0
) -> float:
    r"""Value of the B-step objective.

    ``lam * ||W - W B||_F^2 + sum_{s,t} p_s * B[s, t] + ridge * ||B||_F^2``, i.e.
    ``lam * ||W - W B||_F^2 + sum_s p_s * sum_t B[s, t] + ridge * ||B||_F^2``
    (constraints not checked).

    Parameters
    ----------
    W : numpy.ndarray
        Task parameters, shape ``(d, T)``.
    B : numpy.ndarray
        Transfer matrix, shape ``(T, T)``.
    penalty : numpy.ndarray
        ``p``, shape ``(T,)``, nonnegative.
    lam : float
        Coupling weight, ``> 0``.
    ridge : float, default=0.0
        Weight of ``||B||_F^2``, ``>= 0`` (the transfer ridge).

    Returns
    -------
    float
        The objective value.
    """
    W, p, lam = _check_inputs(W, penalty, lam)
    rho = _check_ridge(ridge)
    B = _check_B(B, W.shape[1], "B")
    R = W - W @ B
    return float(lam * np.einsum("ij,ij->", R, R) + p @ B.sum(axis=1) + rho * np.einsum("ij,ij->", B, B))



def transfer_kkt_residual(
    W: np.ndarray, B: np.ndarray, penalty: np.ndarray, lam: float, *, columns: Any = None,
    ridge: float = 0.0,
) -> float:
    r"""Relative KKT residual of ``B`` for the B-step (the stopping certificate).

    The problem is ``min_B lam * ||W - W B||_F^2 + sum_{s,t} p_s * B[s, t]`` subject to
    ``B >= 0, diag(B) = 0``, with gradient ``g = 2 lam (G B - G) + p 1'``,
    ``G = W' W``.  For a feasible ``B`` the certificate is::

        max_{s != t} r[s, t] / min(sigma[s, t], scale),
        r[s, t]     = |g[s, t]|           if B[s, t] > 0,
                      max(0, -g[s, t])    if B[s, t] == 0,
        sigma[s, t] = p_s + 2 lam ||w_s|| (||w_t|| + sum_k B[k, t] ||w_k||),
        scale       = 2 lam max_s ||w_s||^2 + max_s p_s   (1 if that is 0),

    (``0 / 0`` counts as 0). ``sigma[s, t]`` bounds the terms that make up ``g[s, t]``
    (Cauchy-Schwarz), so each entry's residual is measured against its *own* size:
    a column whose norm is 1e-12 of the largest is certified as strictly as the
    largest (relative to ``scale`` alone, its gradients would fall under any threshold
    and a wrong column would pass). ``scale`` bounds ``max |g|`` at ``B = 0``; taking
    the smaller of the two keeps the certificate at least as strict as a residual
    relative to the gradient at the origin. ``r`` dominates the usual
    ``|min(B, g)|`` residual, and the certificate is 0 exactly at a minimiser.
    With a transfer ridge ``rho`` (the term ``rho ||B||_F^2``), ``g`` gains
    ``2 rho B`` and ``sigma[s, t]`` gains ``2 rho B[s, t]``; ``scale`` is unchanged
    (the gradient at ``B = 0`` is).
    For an infeasible ``B`` (any negative entry or nonzero diagonal entry) the
    certificate is ``inf``.  Cost ``O(d T^2)``; ``G`` is not formed.

    Parameters
    ----------
    W : numpy.ndarray
        Task parameters, shape ``(d, T)``.
    B : numpy.ndarray
        Candidate transfer matrix, shape ``(T, T)``.
    penalty : numpy.ndarray
        ``p``, shape ``(T,)``, nonnegative.
    lam : float
        Coupling weight, ``> 0``.
    columns : sequence of int, optional
        Certify only these columns of ``B`` (each column is an independent problem);
        default all.
    ridge : float, default=0.0
        The transfer ridge ``rho >= 0``.

    Returns
    -------
    float
        The relative KKT residual (``inf`` if ``B`` is infeasible).
    """
    W, p, lam = _check_inputs(W, penalty, lam)
    rho = _check_ridge(ridge)
    T = W.shape[1]
    B = _check_B(B, T, "B")
    if np.any(B < 0) or np.any(np.diag(B) != 0):
        return float("inf")
    which = np.arange(T) if columns is None else np.asarray(columns, dtype=np.intp).ravel()
    if which.size and (which.min() < 0 or which.max() >= T):
        raise ValueError(f"columns must be indices in 0..{T - 1}")
    scale = _grad_scale(W, p, lam)
    norms = np.sqrt(np.einsum("dt,dt->t", W, W))
    worst = 0.0
    nb = _block_size(T)
    for start in range(0, which.size, nb):
        cols = which[start : start + nb]
        Bb = B[:, cols].T
        worst = max(worst, float(_entry_relative(W, p, lam, cols, W[:, cols] - W @ Bb.T, Bb, norms, scale,
                                                 rho).max()))
    return worst



def _entry_relative(
    W: np.ndarray, p: np.ndarray, lam: float, cols: np.ndarray, R: np.ndarray, Bb: np.ndarray,
    norms: np.ndarray, scale: float, rho: float = 0.0,
) -> np.ndarray:
    """``r[s, t] / min(sigma[s, t], scale)`` for the columns ``cols`` (rows of the result),
    from their residuals ``R`` (d x len(cols)) and their entries ``Bb`` (len(cols) x T);
    ``rho`` the transfer ridge."""
    g = p[None, :] - (2.0 * lam) * (R.T @ W) + (2.0 * rho) * Bb  # (columns, senders)
    r = np.where(Bb > 0, np.abs(g), np.maximum(-g, 0.0))
    r[np.arange(cols.size), cols] = 0.0
    m = norms[cols] + Bb @ norms
    sig = np.minimum(p[None, :] + (2.0 * lam) * m[:, None] * norms[None, :] + (2.0 * rho) * Bb, scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r > 0, r / sig, 0.0)



def _entry_residuals(
    W: np.ndarray, p: np.ndarray, lam: float, sup_idx: np.ndarray, sup_x: np.ndarray
) -> np.ndarray:
    """Per-entry relative KKT residual, its maximum per column (see :func:`transfer_kkt_residual`).

    Entry ``(s, t)``: ``r[s, t] / min(sigma[s, t], scale)`` with ``sigma[s, t] = p_s +
    2 lam ||w_s|| (||w_t|| + sum_k B[k, t] ||w_k||)``, the size of the terms of
    ``g[s, t]`` (Cauchy-Schwarz), and ``scale`` the global :func:`_grad_scale`; ``0 / 0``
    counts as 0. Columns are priced in blocks, as in :func:`_residuals`.
    """
    T = W.shape[1]
    scale = _grad_scale(W, p, lam)
    norms = np.sqrt(np.einsum("dt,dt->t", W, W))
    out = np.empty(T)
    nb = _block_size(T)
    S = sup_idx.shape[1]
    for start in range(0, T, nb):
        cols = np.arange(start, min(T, start + nb))
        R = W[:, cols] - (np.einsum("dns,ns->dn", W[:, sup_idx[cols]], sup_x[cols]) if S else 0.0)
        Bb = np.zeros((cols.size, T))
        if S:
            np.add.at(Bb, (np.repeat(np.arange(cols.size), S), sup_idx[cols].ravel()), sup_x[cols].ravel())
        out[cols] = _entry_relative(W, p, lam, cols, R, Bb, norms, scale).max(axis=1)
    return out



def _price(
    W: np.ndarray,
    p: np.ndarray,
    lam: float,
    cols: np.ndarray,
    sup_idx: np.ndarray,
    sup_x: np.ndarray,
    thr: float,
    m: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """KKT residual and top violators for columns ``cols`` at the current iterate.

    ``sup_idx``/``sup_x`` (``len(cols) x S``) hold each column's support (padding has
    ``x = 0``).  Returns the absolute residual per column, the indices (``nb x m``) of
    the most violating coordinates and a mask of those whose violation exceeds ``thr``.
    """
    T = W.shape[1]
    nb = cols.size
    ar = np.arange(nb)
    if sup_idx.shape[1]:
        WB = np.einsum("dns,ns->dn", W[:, sup_idx], sup_x)
        R = W[:, cols] - WB
    else:
        R = W[:, cols]
    # violation = minus the gradient, laid out (nb, T) so that rows are contiguous
    viol = R.T @ W
    viol *= 2.0 * lam
    viol -= p[None, :]
    viol[ar, cols] = -np.inf
    res = np.zeros(nb)
    if sup_idx.shape[1]:
        on = sup_x > 0
        rows, pos = np.nonzero(on)
        if rows.size:
            gs = np.abs(viol[rows, sup_idx[rows, pos]])
            np.maximum.at(res, rows, gs)
            viol[rows, sup_idx[rows, pos]] = -np.inf
    res = np.maximum(res, np.maximum(viol.max(axis=1), 0.0))
    m = min(m, T - 1)
    if m <= 0:
        return res, np.zeros((nb, 0), dtype=np.intp), np.zeros((nb, 0), dtype=bool)
    part = np.argpartition(viol, T - m, axis=1)[:, T - m :]
    vals = np.take_along_axis(viol, part, axis=1)
    return res, part, vals > thr



def _residuals(
    W: np.ndarray, p: np.ndarray, lam: float, sup_idx: np.ndarray, sup_x: np.ndarray, thr: float
) -> np.ndarray:
    """Absolute KKT residual of every column (compact supports), priced in blocks."""
    T = W.shape[1]
    res = np.empty(T)
    nb = _block_size(T)
    for start in range(0, T, nb):
        cb = np.arange(start, min(T, start + nb))
        res[cb], _, _ = _price(W, p, lam, cb, sup_idx[cb], sup_x[cb], thr, 0)
    return res



def _dense(sup_idx: np.ndarray, sup_x: np.ndarray, T: int) -> np.ndarray:
    """``B`` (T x T) from compact column supports."""
    B = np.zeros((T, T))
    rows_t, slot = np.nonzero(sup_x > 0)
    B[sup_idx[rows_t, slot], rows_t] = sup_x[rows_t, slot]
    return B



def _compact_objective(
    W: np.ndarray, p: np.ndarray, lam: float, sup_idx: np.ndarray, sup_x: np.ndarray
) -> float:
    """Objective from the compact (support) representation, in column blocks."""
    d, T = W.shape
    S = sup_idx.shape[1]
    total = float(np.sum(p[sup_idx] * sup_x)) if S else 0.0
    nb = _block_size(d * max(S, 1))
    for start in range(0, T, nb):
        sl = slice(start, min(T, start + nb))
        R = W[:, sl] - (np.einsum("dns,ns->dn", W[:, sup_idx[sl]], sup_x[sl]) if S else 0.0)
        total += lam * float(np.einsum("ij,ij->", R, R))
    return total



def _assemble(
    W: np.ndarray,
    p: np.ndarray,
    lam: float,
    sup: tuple[np.ndarray, np.ndarray],
    n_iter: int,
    cert: float,
    tol: float,
    history: list[float],
) -> SolverResult:
    """The result object from compact supports ``sup = (sup_idx, sup_x)``."""
    sup_idx, sup_x = sup
    return SolverResult(
        solution=_dense(sup_idx, sup_x, W.shape[1]),
        objective=_compact_objective(W, p, lam, sup_idx, sup_x),
        n_iter=n_iter,
        converged=bool(cert <= tol),
        certificate=cert,
        tol=tol,
        history=tuple(history),
    )

