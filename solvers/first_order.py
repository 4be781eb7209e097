r"""First-order solver for the AMTL B-step: working-set coordinate descent.

The problem (``docs/objective.md``, section "B-step"), in original units::

    min_B  lam * ||W - W B||_F^2 + sum_{s,t} p_s * B[s, t] + ridge * ||B||_F^2
    s.t.   B >= 0, diag(B) = 0

separates into ``T`` independent nonnegative (weighted) lasso problems, one per column::

    min_{b >= 0, b_t = 0}  lam * ||w_t - W b||^2 + p' b + ridge * ||b||^2,

with gradient ``g = -2 lam W'(w_t - W b) + p + 2 ridge b``.

Algorithm (:func:`solve_transfer_first_order`)
----------------------------------------------
Columns are processed in blocks (all columns of a block at once, BLAS-friendly); every
block is independent, so blocks may run on the workers of a ``dask.distributed`` cluster.
For a block:

1. *Pricing pass*.  The gradient of every coordinate of every column of the block is
   ``p - 2 lam W'(w_t - W b) + 2 ridge b``, one ``(d x T)' (d x n)`` product per
   sub-block (``G = W'W`` is never formed; no ``T x T x T`` product occurs).  The pass
   gives each column's certificate (the entry-relative KKT residual of
   :func:`solvers.transfer.transfer_kkt_residual`) and its most violating coordinates.
2. *Working set*.  Each uncertified column's working set is its support, plus its
   ``max(d, 10)`` coordinates with the most negative gradient, plus the rest of its
   previous working set, at most ``2 d`` entries in all (support first).
3. *Coordinate descent* on the working sets, vectorised over the columns: cyclic
   coordinate minimisation ``b_j <- max(0, b_j - g_j / H_jj)`` in gradient form (the
   restricted Gram ``2 lam W_K'W_K + 2 ridge I`` of a working set is ``K x K``), with
   Anderson extrapolation every ``_AA_EVERY`` epochs (Bertrand & Massias, "Anderson
   acceleration of coordinate descent", AISTATS 2021; an extrapolated point is kept
   only for the columns whose objective it lowers).  Epochs run until each column's
   support (the set ``b > 0``) has stayed the same for ``_STABLE`` epochs and its
   restricted KKT violation is below ``_CD_REL`` of its gradient scale, or the epoch
   cap.
4. *Solve on the identified support*.  The restricted problem is then finished exactly
   by the batched Lawson-Hanson method of :mod:`solvers.transfer` (the sequential
   semi-definite active-set method for the columns it cannot finish), warm-started
   from the ``d`` largest entries of the coordinate-descent iterate; this gives exact
   zeros off the support.  Coordinate descent stops at a loose accuracy, so this
   finish still pivots (measured: about as long as coordinate descent on dense random
   ``W``, ``docs/first_order.md``).
5. Repeat 1-4 until a pricing pass certifies every column (``cert <= tol / 2``) or a
   column's support comes back unchanged although violators were added (the limit of
   floating point; it is no longer priced).  Columns still uncertified at the end are
   solved one by one by SciPy's NNLS in unit-norm columns
   (:func:`solvers.transfer._nnls_rescue`) and certified again.

``B`` is kept in compact form (support indices and values per column) throughout: a
solve at ``T = 100,000`` never holds a ``T x T`` array, and the result is a SciPy CSC
matrix when ``T`` exceeds ``SPARSE_AUTO_T`` (or when asked).

The duality gap (:func:`transfer_duality_gap`) is available as a second certificate.
"""

from __future__ import annotations

import importlib.util
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp

from solvers.result import SolverResult
from solvers.transfer import (
    _P_MAX,
    _check_inputs,
    _check_ridge,
    _grad_scale,
    _lh_batch,
    _merge_rescued,
    _nnls_rescue,
    _nnqp_psd,
    transfer_kkt_residual,
)

__all__ = [
    "SPARSE_AUTO_T",
    "solve_transfer_first_order",
    "transfer_duality_gap",
    "transfer_kkt_residual_compact",
]

#: ``sparse_output="auto"`` returns a CSC matrix when ``T`` exceeds this (a dense
#: ``T x T`` float64 array is 200 MB at ``T = 5000``).
SPARSE_AUTO_T = 5000
#: up to this T the reported certificate is transfer_kkt_residual on the dense B
_DENSE_CERT_T = 2000
#: target number of float64 entries of the pricing temporaries (about 16 MB each)
_PRICE_ENTRIES = 2_000_000
#: target number of float64 entries of a block's restricted Gram matrices
_GRAM_ENTRIES = 2_000_000
#: Anderson extrapolation every this many epochs, from the last ``_AA_EVERY + 1`` iterates
_AA_EVERY = 5
#: epochs a support must stay unchanged before the solve on the support
_STABLE = 2
#: relative restricted KKT violation below which coordinate descent may hand over
_CD_REL = 1e-3
#: epoch cap of coordinate descent per round
_MAX_EPOCHS = 50
#: at most this many uncertified columns are rescued one by one by NNLS
_RESCUE_MAX_COLS = 1000
#: violators added to a working set per round, per feature (``_WS_FACTOR * d``)
_WS_FACTOR = 1
#: largest working set, per feature (times _WS_GROWTH ** (round - 1))
_WS_KEEP = 2
#: growth factor per round of the working sets and of the violators added (1: none;
#: growth was measured slower, docs/first_order.md)
_WS_GROWTH = 1.0


# --------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------
def _check_B_any(B: Any, T: int, name: str) -> sp.csc_matrix:
    """``B`` (dense or SciPy sparse, ``T x T``, finite) as a CSC matrix."""
    if sp.issparse(B):
        Bs = sp.csc_matrix(B, dtype=np.float64)
    else:
        arr = np.asarray(B)
        if arr.ndim != 2:
            raise ValueError(f"{name} must have shape ({T}, {T}), got {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
        Bs = sp.csc_matrix(np.asarray(arr, dtype=np.float64))
    if Bs.shape != (T, T):
        raise ValueError(f"{name} must have shape ({T}, {T}), got {Bs.shape}")
    if not np.all(np.isfinite(Bs.data)):
        raise ValueError(f"{name} must contain only finite values")
    Bs.sum_duplicates()
    return Bs


def _compact_from_csc(Bs: sp.csc_matrix, cols: np.ndarray, keep_positive: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Compact (support indices, values) of the columns ``cols`` of a CSC matrix.

    With ``keep_positive`` only positive off-diagonal entries are kept.
    """
    ip, ix, dat = Bs.indptr, Bs.indices, Bs.data
    rows_i, rows_x = [], []
    for t in cols:
        i = ix[ip[t]:ip[t + 1]]
        x = dat[ip[t]:ip[t + 1]]
        if keep_positive:
            m = (x > 0) & (i != t)
            i, x = i[m], x[m]
        rows_i.append(i)
        rows_x.append(x)
    S = max((a.size for a in rows_i), default=0)
    idx = np.zeros((cols.size, S), dtype=np.intp)
    val = np.zeros((cols.size, S))
    for r, (i, x) in enumerate(zip(rows_i, rows_x)):
        idx[r, : i.size] = i
        val[r, : x.size] = x
    return idx, val


def _to_csc(sup_idx: np.ndarray, sup_x: np.ndarray, cols: np.ndarray, T: int) -> sp.csc_matrix:
    """CSC ``T x T`` matrix from compact supports of the columns ``cols``."""
    r, s = np.nonzero(sup_x > 0)
    return sp.csc_matrix((sup_x[r, s], (sup_idx[r, s], cols[r])), shape=(T, T))


# --------------------------------------------------------------------------------------
# pricing: certificate and violators, blockwise, from compact supports
# --------------------------------------------------------------------------------------
def _price_block(
    W: np.ndarray, p: np.ndarray, rho: float, cols: np.ndarray, sup_idx: np.ndarray, sup_x: np.ndarray,
    norms: np.ndarray, scale: float, m: int, thr: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entry-relative KKT certificate per column and its ``m`` worst violators.

    In units ``lam = 1``.  Returns ``(cert, cand, cand_ok)``: ``cert`` the certificate
    of each column (the quantity of :func:`solvers.transfer.transfer_kkt_residual`:
    ``max_s r[s, t] / min(sigma[s, t], scale)``, evaluated with the same floating-point
    operations, but only at the entries where it can be nonzero: the support, and the
    coordinates off it whose gradient is negative), ``cand`` (``n x m``) the coordinates
    off the support with the most negative gradient and ``cand_ok`` those whose relative
    violation exceeds ``thr``.
    """
    d, T = W.shape
    n = cols.size
    m = min(m, T - 1)
    cert = np.zeros(n)
    cand = np.zeros((n, max(m, 0)), dtype=np.intp)
    cand_ok = np.zeros((n, max(m, 0)), dtype=bool)
    nb = max(1, _PRICE_ENTRIES // T)
    S = sup_idx.shape[1]
    for start in range(0, n, nb):
        sl = slice(start, min(n, start + nb))
        cb = cols[sl]
        k = cb.size
        ar = np.arange(k)
        si, sx = sup_idx[sl], sup_x[sl]
        R = W[:, cb] - np.einsum("dns,ns->dn", W[:, si], sx) if S else W[:, cb]
        mt = norms[cb] + np.einsum("ns,ns->n", sx, norms[si]) if S else norms[cb]  # ||w_t|| + sum_k B_kt ||w_k||
        # V = -g off the support: p - 2 (R'W) negated, in _entry_relative's operations
        V = (2.0 * R).T @ W  # (k, T)
        np.subtract(p[None, :], V, out=V)  # g without the ridge term (0 off the support)
        np.negative(V, out=V)
        V[ar, cb] = -np.inf
        if S:
            on = sx > 0
            rr, ss = np.nonzero(on)
            jj = si[rr, ss]
            gs = -V[rr, jj] + (2.0 * rho) * sx[rr, ss]
            sig = np.minimum(p[jj] + 2.0 * mt[rr] * norms[jj] + (2.0 * rho) * sx[rr, ss], scale)
            with np.errstate(divide="ignore", invalid="ignore"):
                e = np.where(gs != 0, np.abs(gs) / sig, 0.0)
            cs = np.zeros(k)
            np.maximum.at(cs, rr, e)
            cert[sl] = cs
            V[rr, jj] = -np.inf
        # off the support: r = max(0, -g) = max(0, V), relative to sigma = min(p_s +
        # 2 m_t ||w_s||, scale); entries with V <= 0 give <= 0 (or 0/0, ignored)
        E = np.multiply.outer(2.0 * mt, norms)
        np.add(p[None, :], E, out=E)
        np.minimum(E, scale, out=E)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(V, E, out=E)
        off = np.fmax.reduce(E, axis=1)
        cert[sl] = np.maximum(cert[sl], np.where(off > 0, off, 0.0))
        del E
        if m > 0:
            part = np.argpartition(V, T - m, axis=1)[:, T - m:]
            vals = np.take_along_axis(V, part, axis=1)
            sig = np.minimum(p[part] + 2.0 * mt[:, None] * norms[part], scale)
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.where(vals > 0, vals / sig, 0.0)
            cand[sl] = part
            cand_ok[sl] = (vals > 0) & (rel > thr)
    return cert, cand, cand_ok


# --------------------------------------------------------------------------------------
# coordinate descent with Anderson extrapolation on the working sets
# --------------------------------------------------------------------------------------
def _restricted_objective(G: np.ndarray, c: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``1/2 x'Gx - c'x`` per row."""
    return 0.5 * np.einsum("nk,nk->n", x, np.einsum("nkj,nj->nk", G, x)) - np.einsum("nk,nk->n", c, x)


def _cd(G: np.ndarray, c: np.ndarray, valid: np.ndarray, x: np.ndarray, gscale: np.ndarray,
        max_epochs: int) -> tuple[np.ndarray, int]:
    """Cyclic coordinate descent on ``min 1/2 x'Gx - c'x, x >= 0`` (``x`` on ``valid``).

    Vectorised over the rows (columns of ``B``).  Anderson extrapolation from the last
    ``_AA_EVERY + 1`` epochs' iterates every ``_AA_EVERY`` epochs, kept where it lowers
    the objective.  Stops per row when its support has been unchanged for ``_STABLE``
    epochs and its KKT violation is below ``_CD_REL * gscale``.  Returns ``x`` and the
    number of epochs run.
    """
    n, K = c.shape
    diag = np.einsum("nkk->nk", G).copy()
    live = valid & (diag > 0)
    inv = np.where(live, 1.0 / np.where(live, diag, 1.0), 0.0)
    cached = -1
    x = np.where(live, np.maximum(x, 0.0), 0.0)
    grad = np.einsum("nkj,nj->nk", G, x) - c
    active = np.ones(n, dtype=bool)
    stable = np.zeros(n, dtype=np.intp)
    sup = x > 0
    hist: list[np.ndarray] = []
    epochs = 0
    rows = np.arange(n)
    for epoch in range(1, max_epochs + 1):
        epochs = epoch
        a = rows[active]
        if not a.size:
            break
        if a.size != cached:  # coordinate-major copies of the active rows' data
            GT = np.ascontiguousarray(np.transpose(G[a], (1, 0, 2)))  # (K, na, K)
            inva = np.ascontiguousarray(inv[a].T)
            cached = a.size
        # one contiguous slice per coordinate step (``inv`` is 0 on the coordinates
        # that may not move, which start at 0)
        xT = np.ascontiguousarray(x[a].T)  # (K, na)
        gT = np.ascontiguousarray(grad[a].T)
        tmp = np.empty(a.size)
        for k in range(K):
            xk = xT[k]
            np.multiply(gT[k], inva[k], out=tmp)
            np.subtract(xk, tmp, out=tmp)
            np.maximum(tmp, 0.0, out=tmp)
            np.subtract(tmp, xk, out=tmp)  # the step
            moved = np.flatnonzero(tmp)
            if moved.size == 0:
                continue
            xk += tmp
            if moved.size * 4 > a.size:
                gT += GT[k].T * tmp
            else:  # most coordinates stay at zero: update only the rows that moved
                gT[:, moved] += GT[k][moved].T * tmp[moved]
        xa, ga = xT.T, gT.T
        x[a], grad[a] = xa, ga
        hist.append(x.copy())
        if len(hist) > _AA_EVERY + 1:
            hist.pop(0)
        if epoch % _AA_EVERY == 0 and len(hist) == _AA_EVERY + 1:
            X = np.stack([h[a] for h in hist], axis=1)  # (na, M+1, K)
            U = np.diff(X, axis=1)  # (na, M, K)
            UU = np.einsum("nik,njk->nij", U, U)
            tr = np.einsum("nii->n", UU)
            ok = tr > 0
            if ok.any():
                UU = UU + (1e-10 * np.where(ok, tr, 1.0))[:, None, None] * np.eye(_AA_EVERY)
                try:
                    z = np.linalg.solve(UU, np.ones((a.size, _AA_EVERY, 1)))[:, :, 0]
                except np.linalg.LinAlgError:
                    z = None
                if z is not None:
                    with np.errstate(all="ignore"):
                        coef = z / z.sum(axis=1, keepdims=True)
                        xe = np.einsum("ni,nik->nk", coef, X[:, 1:, :])
                    xe = np.where(live[a] & np.isfinite(xe), np.maximum(xe, 0.0), 0.0)
                    Ga = G[a] if a.size != n else G
                    fe = _restricted_objective(Ga, c[a], xe)
                    fx = _restricted_objective(Ga, c[a], xa)
                    better = ok & np.all(np.isfinite(xe), axis=1) & (fe < fx)
                    if better.any():
                        ab = a[better]
                        x[ab] = xe[better]
                        grad[ab] = np.einsum("nkj,nj->nk", G[ab], x[ab]) - c[ab]
        # stopping test per active row
        xa, ga = x[a], grad[a]
        s_now = xa > 0
        same = np.all(s_now == sup[a], axis=1)
        stable[a] = np.where(same, stable[a] + 1, 0)
        sup[a] = s_now
        viol = np.where(s_now, np.abs(ga), np.maximum(-ga, 0.0))
        viol[~live[a]] = 0.0
        small = viol.max(axis=1, initial=0.0) <= _CD_REL * gscale[a]
        done = (small & (stable[a] >= _STABLE)) | (viol.max(axis=1, initial=0.0) == 0.0)
        active[a[done]] = False
    return x, epochs


def _solve_working_sets(
    W: np.ndarray, p: np.ndarray, rho: float, cols: np.ndarray, ws: np.ndarray, valid: np.ndarray,
    x0: np.ndarray, thr: float,
) -> tuple[np.ndarray, int]:
    """Coordinate descent then a solve on the identified support, per working set.

    Units ``lam = 1``: ``G = 2 W_K'W_K + 2 rho I``, ``c = 2 W_K'w_t - p_K``.  Returns
    the values on the working sets and the number of coordinate-descent epochs (the
    largest over sub-blocks).
    """
    d = W.shape[0]
    n, K = ws.shape
    out = np.zeros((n, K))
    if K == 0 or n == 0:
        return out, 0
    nb = max(1, _GRAM_ENTRIES // (K * (K + d)))
    epochs = 0
    for start in range(0, n, nb):
        sl = slice(start, min(n, start + nb))
        idx, val, cb = ws[sl], valid[sl], cols[sl]
        Wg = np.transpose(W[:, idx], (1, 0, 2)) * val[:, None, :]  # (k, d, K)
        G = 2.0 * np.matmul(np.transpose(Wg, (0, 2, 1)), Wg)
        if rho > 0:
            G[:, np.arange(K), np.arange(K)] += 2.0 * rho * val
        c = (2.0 * np.einsum("ndk,dn->nk", Wg, W[:, cb]) - p[idx]) * val
        gscale = np.max(np.abs(c), axis=1, initial=0.0) + np.max(np.abs(np.einsum("nkk->nk", G)), axis=1,
                                                                   initial=0.0)
        x, ep = _cd(G, c, val, x0[sl].copy(), gscale, _MAX_EPOCHS)
        epochs = max(epochs, ep)
        # solve on the identified support: Lawson-Hanson (in units 1/2 x'Gx - c'x)
        # restricted to the working set, warm-started from the support found
        rank = K if rho > 0 else d
        if K > rank:  # warm start on at most `rank` coordinates: the largest
            cut = -np.partition(-x, rank - 1, axis=1)[:, rank - 1 : rank]
            x = np.where(x >= cut, x, 0.0)
        xs, _, fail = _lh_batch(G, c, val, thr, x, rank)
        for r in np.flatnonzero(fail):
            vr = np.flatnonzero(val[r])
            xs[r, vr] = _nnqp_psd(G[r][np.ix_(vr, vr)], c[r, vr], x[r, vr], thr)
        xs[~val] = 0.0
        out[sl] = np.where(xs > 0, xs, 0.0)
    return out, epochs


def _merge(sup_idx, sup_x, cand, cand_ok) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Working set = support (x > 0) plus accepted candidates (no duplicates), padded."""
    ws = np.concatenate([sup_idx, cand], axis=1)
    ok = np.concatenate([sup_x > 0, cand_ok], axis=1)
    xv = np.concatenate([np.where(sup_x > 0, sup_x, 0.0), np.zeros(cand.shape)], axis=1)
    cnt = ok.sum(axis=1)
    K = int(cnt.max(initial=0))
    order = np.argsort(~ok, axis=1, kind="stable")[:, :K]
    ws = np.take_along_axis(ws, order, axis=1)
    ok = np.take_along_axis(ok, order, axis=1)
    xv = np.take_along_axis(xv, order, axis=1)
    return np.where(ok, ws, 0), ok, xv


def _dedupe(ws: np.ndarray, ok: np.ndarray, xv: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop repeated indices of each row's working set (keeping the first, which holds
    the support value) and keep at most ``cap`` entries (support first)."""
    key = np.where(ok, ws, -1)
    order = np.argsort(key, axis=1, kind="stable")
    sk = np.take_along_axis(key, order, axis=1)
    dup = np.zeros_like(ok)
    dup_sorted = np.zeros(sk.shape, bool)
    dup_sorted[:, 1:] = (sk[:, 1:] == sk[:, :-1]) & (sk[:, 1:] >= 0)
    np.put_along_axis(dup, order, dup_sorted, axis=1)
    ok = ok & ~dup
    cnt = ok.sum(axis=1)
    K = int(min(max(cap, int((xv > 0).sum(axis=1).max(initial=0))), cnt.max(initial=0)))
    order = np.argsort(~ok, axis=1, kind="stable")[:, :K]
    return (np.take_along_axis(np.where(ok, ws, 0), order, axis=1), np.take_along_axis(ok, order, axis=1),
            np.take_along_axis(np.where(ok, xv, 0.0), order, axis=1))


def _compact(idx: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left-pack the positive entries of each row; width = largest support."""
    pos = x > 0
    S = int(pos.sum(axis=1).max(initial=0))
    order = np.argsort(~pos, axis=1, kind="stable")[:, :S]
    new_x = np.take_along_axis(np.where(pos, x, 0.0), order, axis=1)
    new_idx = np.where(new_x > 0, np.take_along_axis(idx, order, axis=1), 0)
    return new_idx, new_x


def _solve_block(
    W: np.ndarray, p: np.ndarray, rho: float, cols: np.ndarray, sup_idx: np.ndarray, sup_x: np.ndarray,
    tol: float, max_iter: int, record: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, list[float]]:
    """Solve the columns ``cols`` (units ``lam = 1``, ``max |W| = 1``).

    ``sup_idx``/``sup_x`` (``len(cols) x S``): warm-start supports (may be empty).
    Returns compact supports, the per-column certificate, the rounds, the coordinate
    descent epochs and (if ``record``) the largest certificate after each round.
    Module-level and pure, so that a ``dask`` worker can run it.
    """
    d, T = W.shape
    cols = np.asarray(cols, dtype=np.intp)
    n = cols.size
    norms = np.sqrt(np.einsum("dt,dt->t", W, W))
    scale = _grad_scale(W, p, 1.0)
    thr_rel = 0.5 * tol
    thr_qp = max(min(0.5 * tol, 1e-12), 1e-14) * scale  # absolute, gradient units
    m = min(T - 1, max(_WS_FACTOR * d, 10))
    hist: list[float] = []
    if T == 1:
        return np.zeros((n, 0), np.intp), np.zeros((n, 0)), np.zeros(n), 0, 0, [0.0] if record else []
    cert, cand, cand_ok = _price_block(W, p, rho, cols, sup_idx, sup_x, norms, scale, m, thr_rel)
    todo = np.flatnonzero(cert > thr_rel)
    cand, cand_ok = cand[todo], cand_ok[todo]  # aligned with todo
    rounds = 0
    epochs = 0
    frozen = np.zeros(n, dtype=bool)
    if record:
        hist.append(float(cert.max(initial=0.0)))
    # previous working sets (their coordinates off the support are kept, up to _WS_KEEP)
    prev = np.zeros((n, 0), dtype=np.intp)
    while todo.size and rounds < max_iter:
        rounds += 1
        # working sets grow geometrically for the columns that come back (as in skglm)
        grow = _WS_GROWTH ** (rounds - 1)
        extra = np.concatenate([cand, prev[todo]], axis=1)
        extra_ok = np.concatenate([cand_ok, np.ones(prev[todo].shape, bool)], axis=1)
        extra_ok &= extra != cols[todo][:, None]
        ws, ok, x0 = _merge(sup_idx[todo], sup_x[todo], extra, extra_ok)
        ws, ok, x0 = _dedupe(ws, ok, x0, int(_WS_KEEP * d * grow))
        keep = np.where(ok, ws, cols[todo][:, None])
        if prev.shape[1] < keep.shape[1]:
            prev = np.pad(prev, ((0, 0), (0, keep.shape[1] - prev.shape[1])))
        prev[todo] = cols[todo][:, None]
        prev[todo, : keep.shape[1]] = keep
        old = np.sort(np.where(sup_x[todo] > 0, sup_idx[todo], -1), axis=1)
        xs, ep = _solve_working_sets(W, p, rho, cols[todo], ws, ok, x0, thr_qp)
        epochs += ep
        new_idx, new_x = _compact(ws, xs)
        new = np.sort(np.where(new_x > 0, new_idx, -1), axis=1)
        w = max(old.shape[1], new.shape[1])
        old = np.pad(old, ((0, 0), (w - old.shape[1], 0)), constant_values=-1)
        new = np.pad(new, ((0, 0), (w - new.shape[1], 0)), constant_values=-1)
        if rounds > 1:
            frozen[todo[np.all(old == new, axis=1)]] = True
        sup_idx, sup_x = _merge_rescued(sup_idx, sup_x, todo, new_idx, new_x)
        sup_idx, sup_x = _compact(sup_idx, sup_x)
        m_next = int(min(T - 1, m * _WS_GROWTH * grow))
        c2, cd2, ok2 = _price_block(W, p, rho, cols[todo], sup_idx[todo], sup_x[todo], norms, scale, m_next,
                                    thr_rel)
        cert[todo] = c2
        if record:
            hist.append(float(cert.max(initial=0.0)))
        more = (c2 > thr_rel) & ~frozen[todo]
        todo, cand, cand_ok = todo[more], cd2[more], ok2[more]
    # last resort: columns left uncertified, one by one (NNLS in unit-norm columns)
    bad = np.flatnonzero(cert > thr_rel)
    if bad.size and bad.size <= _RESCUE_MAX_COLS and (rho == 0 or T <= 3000):
        Wr = W if rho == 0 else np.vstack([W, np.sqrt(rho) * np.eye(T)])
        r_idx, r_x = _nnls_rescue(Wr, p, 1.0, cols[bad])
        t_idx, t_x = _merge_rescued(sup_idx, sup_x, bad, r_idx, r_x)
        c3, _, _ = _price_block(W, p, rho, cols[bad], t_idx[bad], t_x[bad], norms, scale, 0, thr_rel)
        better = c3 < cert[bad]
        if better.any():
            keep = bad[better]
            sup_idx, sup_x = _merge_rescued(sup_idx, sup_x, keep, t_idx[keep], t_x[keep])
            cert[keep] = c3[better]
        sup_idx, sup_x = _compact(sup_idx, sup_x)
        if record:
            hist.append(float(cert.max(initial=0.0)))
    return sup_idx, sup_x, cert, rounds, epochs, hist


# --------------------------------------------------------------------------------------
# objective, certificate and duality gap from compact supports
# --------------------------------------------------------------------------------------
def _compact_objective(W, p, rho, sup_idx, sup_x) -> float:
    d, T = W.shape
    S = sup_idx.shape[1]
    total = float(np.sum(p[sup_idx] * sup_x) + rho * np.sum(sup_x * sup_x)) if S else 0.0
    nb = max(1, _PRICE_ENTRIES // (d * max(S, 1)))
    for start in range(0, T, nb):
        sl = slice(start, min(T, start + nb))
        R = W[:, sl] - (np.einsum("dns,ns->dn", W[:, sup_idx[sl]], sup_x[sl]) if S else 0.0)
        total += float(np.einsum("ij,ij->", R, R))
    return total


def _column_gaps(W, p, rho, sup_idx, sup_x, cols) -> tuple[np.ndarray, np.ndarray]:
    """Primal and dual values per column (units ``lam = 1``), see :func:`transfer_duality_gap`."""
    d, T = W.shape
    n = cols.size
    S = sup_idx.shape[1]
    primal = np.zeros(n)
    dual = np.zeros(n)
    nb = max(1, _PRICE_ENTRIES // T)
    for start in range(0, n, nb):
        sl = slice(start, min(n, start + nb))
        cb = cols[sl]
        k = cb.size
        R = W[:, cb] - (np.einsum("dns,ns->dn", W[:, sup_idx[sl]], sup_x[sl]) if S else 0.0)
        wt = W[:, cb]
        primal[sl] = np.einsum("dn,dn->n", R, R) + (
            np.einsum("ns,ns->n", p[sup_idx[sl]], sup_x[sl]) + rho * np.einsum("ns,ns->n", sup_x[sl], sup_x[sl])
            if S else 0.0)
        U = 2.0 * R  # dual candidate u = 2 lam r (lam = 1)
        V = U.T @ W - p[None, :]  # W_s'u - p_s, (k, T)
        V[np.arange(k), cb] = -np.inf  # b_t = 0 is fixed: no constraint for s = t
        uw = np.einsum("dn,dn->n", U, wt)
        uu = np.einsum("dn,dn->n", U, U)
        if rho > 0:
            Vp = np.maximum(V, 0.0)
            dual[sl] = uw - 0.25 * uu - 0.25 * np.einsum("nt,nt->n", Vp, Vp) / rho
        else:
            # scale u by a in [0, a_max] so that a W_s'u <= p_s, a maximising a u'w - a^2 u'u / 4
            Wu = V + p[None, :]
            with np.errstate(divide="ignore", invalid="ignore"):
                lim = np.where(Wu > 0, p[None, :] / Wu, np.inf)
            amax = np.minimum(lim.min(axis=1), 1.0e300)
            with np.errstate(divide="ignore", invalid="ignore"):
                astar = np.where(uu > 0, 2.0 * uw / uu, 0.0)
            a = np.clip(astar, 0.0, amax)
            dual[sl] = a * uw - 0.25 * a * a * uu
    return primal, dual


def transfer_duality_gap(
    W: np.ndarray, B: Any, penalty: np.ndarray, lam: float, *, ridge: float = 0.0
) -> tuple[float, float]:
    r"""Duality gap of a feasible ``B`` for the B-step (a second certificate).

    Column ``t`` of the B-step, ``P_t(b) = lam ||w_t - W b||^2 + p'b + rho ||b||^2``
    over ``b >= 0, b_t = 0``, has the Fenchel dual

    - ``rho = 0``: ``D_t(u) = u'w_t - ||u||^2 / (4 lam)`` subject to ``W_s'u <= p_s``
      for every ``s != t``;
    - ``rho > 0``: ``D_t(u) = u'w_t - ||u||^2 / (4 lam) - sum_{s != t} max(0, W_s'u - p_s)^2 / (4 rho)``
      (unconstrained),

    and ``D_t(u) <= min P_t <= P_t(b)`` for every dual-feasible ``u``.  The dual point
    is the residual's ``u = 2 lam (w_t - W b)`` (optimal at the minimiser); with
    ``rho = 0`` it is scaled by the ``a in [0, a_max]`` that maximises ``D_t(a u)``,
    ``a_max`` the largest feasible factor (a constraint with ``p_s = 0`` and
    ``W_s'u > 0`` forces ``a = 0``: the gap is then ``P_t(b)`` itself; it is exact for
    ``p > 0``).  Cost ``O(d T^2)`` in column blocks; no ``T x T`` array is formed.

    Parameters
    ----------
    W : numpy.ndarray
        Task parameters, shape ``(d, T)``.
    B : numpy.ndarray or scipy.sparse matrix
        Candidate transfer matrix, ``(T, T)``, feasible (``B >= 0``, zero diagonal).
    penalty : numpy.ndarray
        ``p``, shape ``(T,)``, nonnegative.
    lam : float
        Coupling weight, ``> 0``.
    ridge : float, default=0.0
        The transfer ridge ``rho >= 0``.

    Returns
    -------
    gap : float
        ``sum_t (P_t(b_t) - D_t(u_t)) >= 0`` (``inf`` if ``B`` is infeasible).
    relative_gap : float
        ``gap / max(P, lam ||W||_F^2 * 1e-300)``, ``P = sum_t P_t(b_t)`` the objective
        (0 when both are 0).
    """
    W, p, lam = _check_inputs(W, penalty, lam)
    rho = _check_ridge(ridge)
    T = W.shape[1]
    Bs = _check_B_any(B, T, "B")
    if np.any(Bs.data < 0) or np.any(Bs.diagonal() != 0):
        return float("inf"), float("inf")
    cols = np.arange(T)
    idx, val = _compact_from_csc(Bs, cols, keep_positive=False)
    primal, dual = _column_gaps(W, p / lam, rho / lam, idx, val, cols)
    P = float(primal.sum()) * lam
    gap = max(float(np.sum(primal - dual)) * lam, 0.0)
    if gap == 0.0:
        return 0.0, 0.0
    return gap, gap / max(P, 1e-300)


def transfer_kkt_residual_compact(
    W: np.ndarray, B: Any, penalty: np.ndarray, lam: float, *, ridge: float = 0.0
) -> float:
    r""":func:`solvers.transfer.transfer_kkt_residual` for a dense or sparse ``B``.

    The same quantity (the entry-relative KKT residual, ``inf`` for an infeasible
    ``B``), computed in column blocks from the supports: no ``T x T`` array is formed,
    so it serves at ``T = 100,000``.
    """
    W, p, lam = _check_inputs(W, penalty, lam)
    rho = _check_ridge(ridge)
    T = W.shape[1]
    Bs = _check_B_any(B, T, "B")
    if np.any(Bs.data < 0) or np.any(Bs.diagonal() != 0):
        return float("inf")
    cols = np.arange(T)
    idx, val = _compact_from_csc(Bs, cols, keep_positive=False)
    norms = np.sqrt(np.einsum("dt,dt->t", W, W))
    cert, _, _ = _price_block(W, p / lam, rho / lam, cols, idx, val, norms, _grad_scale(W, p / lam, 1.0), 0,
                              np.inf)
    return float(cert.max(initial=0.0))


# --------------------------------------------------------------------------------------
# main entry point
# --------------------------------------------------------------------------------------
def _default_block(T: int, d: int) -> int:
    """Columns per block: all of them up to 4096, else about 4096."""
    return int(min(T, 4096))


def solve_transfer_first_order(
    W: np.ndarray,
    penalty: np.ndarray,
    lam: float,
    *,
    B0: Any = None,
    ridge: float = 0.0,
    tol: float = 1e-10,
    max_iter: int = 1000,
    record_history: bool = False,
    sparse_output: bool | str = "auto",
    client: Any = None,
    block_size: int | None = None,
) -> SolverResult:
    r"""Solve the AMTL B-step by working-set coordinate descent (first order).

    Solves::

        min_B  lam * ||W - W B||_F^2 + sum_{s,t} p_s * B[s, t] + ridge * ||B||_F^2
        s.t.   B >= 0, diag(B) = 0

    column by column, columns in blocks; see the module docstring for the method
    (pricing by ``W'(W B)``, working sets, coordinate descent with Anderson
    extrapolation, a final solve on the identified support).

    Stopping certificate: the one of :func:`solvers.transfer.solve_transfer`
    (:func:`solvers.transfer.transfer_kkt_residual`), with ``g = 2 lam (G B - G) + p 1'
    + 2 ridge B``::

        cert = max_{s != t} r[s, t] / min(sigma[s, t], scale),
        r[s, t]     = |g[s, t]| if B[s, t] > 0 else max(0, -g[s, t]),
        sigma[s, t] = p_s + 2 lam ||w_s|| (||w_t|| + sum_k B[k, t] ||w_k||) + 2 ridge B[s, t],
        scale       = 2 lam max_s ||w_s||^2 + max_s p_s   (1 if that is 0).

    A column is finished when its pricing pass finds ``cert <= tol / 2``;
    ``converged`` reports ``cert <= tol``.  The duality gap is
    :func:`transfer_duality_gap`.

    Parameters
    ----------
    W : numpy.ndarray
        Task parameters, shape ``(d, T)``, finite.
    penalty : numpy.ndarray
        ``p``, shape ``(T,)``, finite and nonnegative.
    lam : float
        Coupling weight, finite and ``> 0``.
    B0 : numpy.ndarray or scipy.sparse matrix, optional
        Warm start, ``(T, T)``, finite; its positive off-diagonal entries start the
        supports (negative and diagonal entries are ignored).
    ridge : float, default=0.0
        The transfer ridge ``rho >= 0`` (weight of ``||B||_F^2``).
    tol : float, default=1e-10
        Tolerance on the certificate.
    max_iter : int, default=1000
        Maximum number of rounds (pricing pass + coordinate descent + support solve)
        per block; a safeguard, rounds end when no violator is left.
    record_history : bool, default=False
        Record the largest certificate after every round (the largest over blocks).
    sparse_output : bool or "auto", default="auto"
        Return ``B`` as a ``scipy.sparse.csc_matrix`` (supports only): always if True,
        never if False, when ``T > SPARSE_AUTO_T`` (5000) if "auto".
    client : dask.distributed.Client, optional
        Solve the column blocks on the cluster's workers (``W`` is scattered once, the
        blocks come back in compact form).  Needs the ``amtl-cvx[dask]`` extra.
    block_size : int, optional
        Columns per block (default ``min(T, 4096)``; with a client, ``ceil(T / (2 *
        workers))`` so that every worker gets work).

    Returns
    -------
    SolverResult
        ``solution`` is ``B`` (dense ``T x T`` or CSC) with ``B >= 0`` exactly, exact
        zeros off the support and an exactly zero diagonal; ``objective`` the value
        above; ``n_iter`` the coordinate-descent epochs (summed over rounds, largest
        over blocks); ``certificate`` the relative KKT residual at ``solution``;
        ``history`` the largest certificate per round.

    Raises
    ------
    ValueError
        If an argument is malformed (named in the message).
    ImportError
        If ``client`` is given and ``dask.distributed`` is not installed.
    """
    W, p, lam = _check_inputs(W, penalty, lam)
    d, T = W.shape
    rho = _check_ridge(ridge)
    if isinstance(tol, bool) or not isinstance(tol, (Real, np.floating, np.integer)):
        raise ValueError(f"tol must be a real number, got {tol!r}")
    tol = float(tol)
    if not np.isfinite(tol) or tol <= 0:
        raise ValueError(f"tol must be finite and > 0, got {tol}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (Integral, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if not (sparse_output is True or sparse_output is False or sparse_output == "auto"):
        raise ValueError(f"sparse_output must be True, False or 'auto', got {sparse_output!r}")
    if block_size is not None and (
        isinstance(block_size, bool) or not isinstance(block_size, (Integral, np.integer)) or block_size < 1
    ):
        raise ValueError(f"block_size must be an integer >= 1, got {block_size!r}")
    Bs0 = _check_B_any(B0, T, "B0") if B0 is not None else None
    sparse = sparse_output is True or (sparse_output == "auto" and T > SPARSE_AUTO_T)

    def result(sup_idx, sup_x, cols, obj, n_iter, cert, hist) -> SolverResult:
        Bc = _to_csc(sup_idx, sup_x, cols, T)
        sol = Bc if sparse else Bc.toarray()
        return SolverResult(sol, obj, int(n_iter), bool(cert <= tol), float(cert), tol, tuple(hist))

    sigma = float(np.max(np.abs(W)))
    all_cols = np.arange(T)
    if sigma == 0.0:
        empty = np.zeros((T, 0), dtype=np.intp)
        return result(empty, np.zeros((T, 0)), all_cols, 0.0, 0, 0.0, (0.0,) if record_history else ())
    # the units of solve_transfer: lam = 1, max |W| = 1 (same minimisers and certificate)
    Wu = W / sigma
    pu = np.minimum(p / lam / sigma / sigma, _P_MAX)
    rhou = rho / lam / sigma / sigma
    if Bs0 is not None:
        i0, x0 = _compact_from_csc(Bs0, all_cols)
    else:
        i0, x0 = np.zeros((T, 0), dtype=np.intp), np.zeros((T, 0))

    if client is not None:
        if importlib.util.find_spec("distributed") is None:
            raise ImportError("client= needs dask.distributed: install the extra, pip install 'amtl-cvx[dask]'")
        if block_size is None:
            n_workers = max(1, len(client.scheduler_info().get("workers", {})))
            block_size = max(1, -(-T // (2 * n_workers)))
    nb = block_size or _default_block(T, d)
    blocks = [all_cols[s : s + nb] for s in range(0, T, nb)]

    if client is not None:
        Wf, pf = client.scatter([Wu, pu], broadcast=True, hash=False)
        futures = [
            client.submit(_solve_block, Wf, pf, rhou, cb, i0[cb], x0[cb], tol, max_iter, record_history,
                          pure=False)
            for cb in blocks
        ]
        outs = client.gather(futures)
    else:
        outs = [_solve_block(Wu, pu, rhou, cb, i0[cb], x0[cb], tol, max_iter, record_history) for cb in blocks]

    S = max((o[0].shape[1] for o in outs), default=0)
    sup_idx = np.zeros((T, S), dtype=np.intp)
    sup_x = np.zeros((T, S))
    cert = 0.0
    n_iter = 0
    hist: list[float] = []
    for cb, (si, sx, c, rounds, epochs, h) in zip(blocks, outs):
        sup_idx[cb, : si.shape[1]] = si
        sup_x[cb, : sx.shape[1]] = sx
        cert = max(cert, float(c.max(initial=0.0)))
        n_iter = max(n_iter, epochs)
        if record_history:
            L = max(len(hist), len(h))
            hist = [max(hist[i] if i < len(hist) else hist[-1] if hist else 0.0,
                        h[i] if i < len(h) else h[-1]) for i in range(L)]
    if record_history:
        hist.append(cert)
    obj = _compact_objective(Wu, pu, rhou, sup_idx, sup_x) * lam * sigma * sigma
    if not np.isfinite(obj):
        raise ValueError(
            f"the B-step objective overflows float64 (lam = {lam:g}, max |W| = {sigma:g}); rescale W or lam"
        )
    if T <= _DENSE_CERT_T and np.all(pu < _P_MAX):
        # small T: the reported certificate is transfer_kkt_residual itself (the blockwise
        # pricing computes the same quantity; they agree to rounding)
        cert = transfer_kkt_residual(Wu, _to_csc(sup_idx, sup_x, all_cols, T).toarray(), pu, 1.0, ridge=rhou)
        if record_history:
            hist[-1] = cert
    return result(sup_idx, sup_x, all_cols, obj, n_iter, cert, hist)
