"""Polish and rescue of the B-step's supports.

:func:`_full_pricing_solve` runs the full-pricing pivots (:mod:`solvers.bstep.full_pricing`)
and polishes the supports they find (iterative refinement, or QR solves of the
stationarity conditions, :func:`_polish_support`); :func:`_nnls_rescue` solves the
columns the batched pivots leave uncertified one by one with SciPy's NNLS.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from solvers.bstep.full_pricing import _lh_full
from solvers.bstep.working_set import _compact


def _full_pricing_solve(
    W: np.ndarray,
    p: np.ndarray,
    lam: float,
    thr: float,
    maxit: int,
    B0: np.ndarray | None,
    polish: str = "qr",
    record: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, list[float]]:
    """Run :func:`_lh_full` (warm-started from ``B0``), then ``polish`` its supports:
    ``"none"``, ``"refine"`` (two steps of iterative refinement with the pivots'
    ``inv(H_PP)``) or ``"qr"`` (an accurate QR solve of the stationarity conditions).

    Returns compact ``(sup_idx, sup_x)`` (failed columns empty), the mask of failed
    columns, the number of pivot steps and the per-step largest violation.
    """
    pos, xs, on, fail, steps, hist, Minv = _lh_full(
        W, p, lam, thr, B0=B0, maxit=maxit, record=record
    )
    ok = np.flatnonzero(~fail & on.any(axis=1))
    if polish == "refine" and ok.size:
        # one step of iterative refinement with the pivots' inv(H_PP), the residual in
        # the accurate form 2 lam W_P'(w_t - W_P x) - p_P
        Po, pp = on[ok], pos[ok]
        Wp = W[:, pp]  # d x n x S
        x = xs[ok] * Po
        r = W[:, ok] - np.einsum("dns,ns->dn", Wp, x)
        g = ((2.0 * lam) * np.einsum("dns,dn->ns", Wp, r) - p[pp]) * Po
        x = (x + np.matmul(Minv[ok], g[:, :, None])[:, :, 0]) * Po
        good = np.all(~Po | (x > 0), axis=1) & np.all(np.isfinite(x), axis=1)
        xs[ok[good]] = x[good]
    if polish == "qr" and ok.size:
        # Polish: solve the stationarity conditions on each support through a QR
        # factorisation of [W_P; E] (E = identity on the empty slots), i.e.
        # R'R z = R'Q'[w_t; 0] - p_P / (2 lam): conditioned like W_P, not like W_P'W_P.
        S = on.shape[1]
        d = W.shape[0]
        Po, pp = on[ok], pos[ok]
        A = np.zeros((ok.size, d + S, S))
        A[:, :d, :] = W[:, pp].transpose(1, 0, 2) * Po[:, None, :]
        A[:, d + np.arange(S), np.arange(S)] = ~Po
        rhs = np.zeros((ok.size, d + S))
        rhs[:, :d] = W[:, ok].T
        q = np.where(Po, p[pp], 0.0) / (2.0 * lam)
        try:
            Q, R = np.linalg.qr(A)
            y = np.einsum("nks,nk->ns", Q, rhs) - np.linalg.solve(
                np.transpose(R, (0, 2, 1)), q[:, :, None]
            )[:, :, 0]
            z = np.linalg.solve(R, y[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            z = None
        if z is not None:
            z[~Po] = 0.0
            good = np.all(~Po | (z > 0), axis=1) & np.all(np.isfinite(z), axis=1)
            xs[ok[good]] = z[good]
            # where the accurate solve leaves the orthant, the pivots kept a coordinate
            # that belongs at zero: walk back to the boundary with accurate solves
            for r in np.flatnonzero(~good):
                t = ok[r]
                slots = np.flatnonzero(on[t])
                x = _polish_support(W, p, lam, t, pos[t, slots], xs[t, slots])
                xs[t, slots] = x
                on[t, slots] = x > 0
    xs = np.where(on & ~fail[:, None], xs, 0.0)
    sup_idx, sup_x = _compact(pos, xs)
    return sup_idx, sup_x, fail, steps, hist



def _polish_support(
    W: np.ndarray, p: np.ndarray, lam: float, t: int, idx: np.ndarray, x: np.ndarray
) -> np.ndarray:
    """Lawson-Hanson's inner loop for one column with QR solves.

    From the feasible ``x > 0`` on ``idx``, solve the stationarity conditions on the
    support accurately; while the solution leaves the orthant, step to the boundary
    and drop the coordinate that reaches zero. Returns the new values (zeros dropped).
    """
    x = np.where(x > 0, x, 0.0)
    keep = x > 0
    for _ in range(idx.size):
        if not keep.any():
            break
        A = W[:, idx[keep]]
        Q, R = np.linalg.qr(A)
        if np.any(np.abs(np.diag(R)) <= 1e-12 * np.abs(R).max()):
            break  # dependent support: leave it to the working-set method
        y = Q.T @ W[:, t] - np.linalg.solve(R.T, p[idx[keep]] / (2.0 * lam))
        z = np.linalg.solve(R, y)
        xk = x[keep]
        if np.all(z > 0):
            x[keep] = z
            break
        neg = z <= 0
        ratio = np.where(neg, xk / np.where(neg, xk - z, 1.0), np.inf)
        i = int(np.argmin(ratio))
        xk = np.maximum(xk + ratio[i] * (z - xk), 0.0)
        xk[i] = 0.0
        x[keep] = xk
        keep = x > 0
    return x



def _nnls_rescue(
    W: np.ndarray, p: np.ndarray, lam: float, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Column by column NNLS for the columns the batched pivots left uncertified.

    The batched methods pivot on ``inv(H_PP)`` with a Schur-complement test for
    dependence and a threshold relative to the largest column; on degenerate columns
    (``W`` rank deficient, as with one-hot features collinear with the bias, and
    ``p = 0``: many supports reach the optimum) they can cycle, and a column far smaller
    than the largest can look solved. Column ``t`` is then solved on its own, in units
    where every column of ``W`` has norm 1 (``a_s = w_s / ||w_s||``, ``u = w_t /
    ||w_t||``, ``y_s = B[s, t] ||w_s|| / ||w_t||``, prices ``q_s = p_s / (lam ||w_s||
    ||w_t||)``), by SciPy's Lawson-Hanson (``scipy.optimize.nnls``, QR-based), with
    the linear term carried by one extra row:
    ``||u - A y||^2 + q'y = ||[u; eta] - [A; a'] y||^2 - (a'y)^2 - eta^2`` with
    ``a = -q / (2 eta)``, so for ``eta = 1e8`` the extra ``(a'y)^2`` is below rounding.
    The support found is then polished on the exact stationarity conditions with QR
    (:func:`_polish_support`, in the same units) and certified by the caller. Zero
    columns of ``W`` never enter (they change nothing and cost ``p_s >= 0``). Returns
    compact ``(sup_idx, sup_x)`` for ``cols``.
    """
    d, T = W.shape
    norms = np.sqrt(np.einsum("dt,dt->t", W, W))
    nz = norms > 0
    A_all = W / np.where(nz, norms, 1.0)
    out_idx, out_x = [], []
    for t in cols:
        if not nz[t]:  # w_t = 0: B[:, t] = 0 is optimal (p >= 0)
            out_idx.append(np.zeros(0, dtype=np.intp))
            out_x.append(np.zeros(0))
            continue
        idx = np.flatnonzero(nz & (np.arange(T) != t))
        q = p / (lam * np.where(nz, norms, 1.0) * norms[t])
        eta = 1e8
        A = np.vstack([A_all[:, idx], (-q[idx] / (2.0 * eta))[None, :]])
        try:
            y, _ = nnls(A, np.append(A_all[:, t], eta), maxiter=50 * T)
        except RuntimeError:  # iteration cap: leave the column to the working sets
            y = np.zeros(idx.size)
        keep = np.flatnonzero(y > 0)
        yk = _polish_support(A_all, q, 1.0, int(t), idx[keep], y[keep]) if keep.size else y[keep]
        out_idx.append(idx[keep])
        out_x.append(yk * norms[t] / norms[idx[keep]])
    S = max((v.size for v in out_idx), default=0)
    sup_idx = np.zeros((cols.size, S), dtype=np.intp)
    sup_x = np.zeros((cols.size, S))
    for r, (i, v) in enumerate(zip(out_idx, out_x)):
        sup_idx[r, : i.size] = i
        sup_x[r, : v.size] = np.where(v > 0, v, 0.0)
    return sup_idx, sup_x



def _merge_rescued(
    sup_idx: np.ndarray, sup_x: np.ndarray, rows: np.ndarray, r_idx: np.ndarray, r_x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Compact supports with ``rows`` replaced by ``(r_idx, r_x)`` (widened as needed)."""
    S = max(sup_idx.shape[1], r_idx.shape[1])
    idx = np.zeros((sup_idx.shape[0], S), dtype=np.intp)
    x = np.zeros((sup_idx.shape[0], S))
    idx[:, : sup_idx.shape[1]] = sup_idx
    x[:, : sup_x.shape[1]] = sup_x
    idx[rows] = 0
    x[rows] = 0.0
    idx[rows, : r_idx.shape[1]] = r_idx
    x[rows, : r_x.shape[1]] = r_x
    return idx, x

