"""The B-step certificate and duality gap from compact (support) form, in column blocks.

Used by the first-order B-step (:mod:`solvers.first_order`) and for large ``T``: no
``T x T`` array is formed. :func:`_price_block` computes the entry-relative KKT
certificate of :func:`solvers.bstep.certificate.transfer_kkt_residual` (same
floating-point operations, only at the entries where it can be nonzero) and each
column's worst violators; :func:`transfer_duality_gap` is a second certificate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from solvers.bstep.checks import _check_B_any, _check_inputs, _check_ridge, _grad_scale

#: target number of float64 entries of the pricing temporaries (about 16 MB each)
_PRICE_ENTRIES = 2_000_000
#: ranking weight of a violator whose price is 0 (before any priced one)
_INV_P_ZERO = 1e300
#: a pricing block works on its violators alone when they are at most 1 / this of it
_SPARSE_FRACTION = 8



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



@dataclass(frozen=True)
class _Pricing:
    """The data of a pricing pass besides the supports, in units ``lam = 1``: ``W``
    (``d x T``), the prices ``p``, the ridge ``rho``, the column norms of ``W``, the
    gradient scale (:func:`solvers.bstep.checks._grad_scale`) and ``inv_p``, the
    weights that rank the violators (``1 / p_s``, and ``_INV_P_ZERO`` where
    ``p_s = 0``)."""

    W: np.ndarray
    p: np.ndarray
    rho: float
    norms: np.ndarray
    scale: float
    inv_p: np.ndarray

    @classmethod
    def of(cls, W: np.ndarray, p: np.ndarray, rho: float) -> _Pricing:
        """The pricing data of the B-step ``(W, p, rho)`` (units ``lam = 1``)."""
        pos = p > 0
        inv_p = np.where(pos, 1.0 / np.where(pos, p, 1.0), _INV_P_ZERO)
        return cls(W, p, rho, np.sqrt(np.einsum("dt,dt->t", W, W)), _grad_scale(W, p, 1.0), inv_p)


def _price_block(
    pr: _Pricing, cols: np.ndarray, sup_idx: np.ndarray, sup_x: np.ndarray, m: int, thr: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entry-relative KKT certificate per column and its ``m`` worst violators.

    In units ``lam = 1`` (the data ``pr``).  Returns ``(cert, cand, cand_ok)``: ``cert`` the certificate
    of each column (the quantity of :func:`solvers.transfer.transfer_kkt_residual`:
    ``max_s r[s, t] / min(sigma[s, t], scale)``, evaluated with the same floating-point
    operations, but only at the entries where it can be nonzero: the support, and the
    coordinates off it whose gradient is negative), ``cand`` (``n x m``) the coordinates
    off the support ranked first (below) and ``cand_ok`` those whose relative violation
    exceeds ``thr``.

    The candidates are ranked by ``-g_s / p_s`` (the violation relative to the price),
    not by ``-g_s``: with ``u = 2 (w_t - W b)`` the dual point of the column, the
    constraint ``W_s'u <= p_s`` with the largest ratio ``W_s'u / p_s`` is the one that
    binds first when ``u`` is scaled back to dual feasibility. Measured at ``d = 20``
    on dense random ``W`` (``examples/bstep_fista_comparison.py``): coordinate descent
    epochs 414 -> 223 at ``T = 2000`` and 539 -> 292 at ``T = 10,000`` (at commit
    19955f6, which added it).
    """
    W, p, rho, norms, scale = pr.W, pr.p, pr.rho, pr.norms, pr.scale
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
        # V = -g off the support: 2 (R'W) - p, the negation of _entry_relative's
        # p - 2 (R'W) (the same value: IEEE subtraction is antisymmetric)
        V = (2.0 * R).T @ W  # (k, T)
        V -= p  # -g without the ridge term (0 off the support)
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
        # off the support only the violators (V > 0) count: r = V relative to sigma =
        # min(p_s + 2 m_t ||w_s||, scale). Past the first rounds they are a few per
        # column, and the pass works on them alone (_sparse_violators)
        pos = V > 0
        if np.count_nonzero(pos) * _SPARSE_FRACTION <= V.size:
            off, c_idx, c_ok = _sparse_violators(pr, V, pos, mt, m, thr)
        else:
            off, c_idx, c_ok = _dense_violators(pr, V, mt, m, thr)
        cert[sl] = np.maximum(cert[sl], off)
        if m > 0:
            cand[sl], cand_ok[sl] = c_idx, c_ok
    return cert, cand, cand_ok



def _dense_violators(
    pr: _Pricing, V: np.ndarray, mt: np.ndarray, m: int, thr: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Off-support certificate and top-``m`` violators of a pricing block, over all of
    ``V`` (``-g``, ``-inf`` on the support and the own index); see :func:`_price_block`.

    Returns the per-row certificate off the support (0 without a violator), the
    candidates (``k x m``) and their acceptance mask.
    """
    p, norms, scale = pr.p, pr.norms, pr.scale
    T = V.shape[1]
    E = np.multiply.outer(2.0 * mt, norms)
    np.add(p[None, :], E, out=E)
    np.minimum(E, scale, out=E)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(V, E, out=E)
    off = np.fmax.reduce(E, axis=1)
    off = np.where(off > 0, off, 0.0)
    if m <= 0:
        return off, np.zeros((V.shape[0], 0), np.intp), np.zeros((V.shape[0], 0), bool)
    # the ranking only chooses candidates: single precision halves the selection's cost
    with np.errstate(over="ignore"):  # a zero price ranks as +inf
        score = np.multiply(V, pr.inv_p[None, :], out=np.empty(V.shape, np.float32), casting="same_kind")
    part = np.argpartition(score, T - m, axis=1)[:, T - m:]
    vals = np.take_along_axis(V, part, axis=1)
    return off, part, _accept(pr, vals, part, mt, thr)


def _sparse_violators(
    pr: _Pricing, V: np.ndarray, pos: np.ndarray, mt: np.ndarray, m: int, thr: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_dense_violators` from the violating entries ``pos = V > 0`` alone: the
    same per-entry operations, on the nonzeros.

    The candidates are the top ``m`` violators by score of each row; a row with fewer
    fills the rest of its ``m`` slots with index 0, not accepted.
    """
    p, norms, scale = pr.p, pr.norms, pr.scale
    k = V.shape[0]
    off = np.zeros(k)
    cand = np.zeros((k, max(m, 0)), np.intp)
    ok = np.zeros((k, max(m, 0)), bool)
    # flat indices (row-major, rows ascending): 10x faster than a 2-D np.nonzero
    rr, ss = np.divmod(np.flatnonzero(pos), V.shape[1])
    if not rr.size:
        return off, cand, ok
    cnt = np.bincount(rr, minlength=k)
    vals = V[rr, ss]
    sig = np.multiply(2.0 * mt[rr], norms[ss])
    np.add(p[ss], sig, out=sig)
    np.minimum(sig, scale, out=sig)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = vals / sig
    has = cnt > 0
    starts = np.concatenate([[0], np.cumsum(cnt)[:-1]])
    red = np.fmax.reduceat(e, starts[has])
    off[has] = np.where(red > 0, red, 0.0)
    if m <= 0:
        return off, cand, ok
    # pack each row's violators into a k x max(cnt) table, then the top m of each row
    width = int(cnt.max())
    slot = np.arange(rr.size) - starts[rr]
    score = np.full((k, width), -np.inf)
    with np.errstate(over="ignore"):  # a zero price ranks as +inf
        score[rr, slot] = vals * pr.inv_p[ss]
    idx = np.zeros((k, width), np.intp)
    idx[rr, slot] = ss
    if width > m:
        part = np.argpartition(score, width - m, axis=1)[:, width - m:]
        score = np.take_along_axis(score, part, axis=1)
        idx = np.take_along_axis(idx, part, axis=1)
    w = idx.shape[1]
    filled = score > -np.inf
    cand[:, :w] = np.where(filled, idx, 0)
    vals_c = np.where(filled, V[np.arange(k)[:, None], cand[:, :w]], -np.inf)
    ok[:, :w] = _accept(pr, vals_c, cand[:, :w], mt, thr) & filled
    return off, cand, ok


def _accept(pr: _Pricing, vals: np.ndarray, part: np.ndarray, mt: np.ndarray, thr: float) -> np.ndarray:
    """Candidates whose violation ``vals`` (``-g``) is positive and above ``thr``
    relative to ``sigma`` (the certificate's)."""
    sig = np.minimum(pr.p[part] + 2.0 * mt[:, None] * pr.norms[part], pr.scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(vals > 0, vals / sig, 0.0)
    return (vals > 0) & (rel > thr)



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
        Wu = U.T @ W  # W_s'u, (k, T)
        Wu[np.arange(k), cb] = -np.inf  # b_t = 0 is fixed: no constraint for s = t
        uw = np.einsum("dn,dn->n", U, wt)
        uu = np.einsum("dn,dn->n", U, U)
        if rho > 0:
            Wu -= p  # W_s'u - p_s
            np.maximum(Wu, 0.0, out=Wu)
            dual[sl] = uw - 0.25 * uu - 0.25 * np.einsum("nt,nt->n", Wu, Wu) / rho
        else:
            # scale u by a in [0, a_max] so that a W_s'u <= p_s, a maximising a u'w - a^2 u'u / 4:
            # a_max = min over W_s'u > 0 of p_s / W_s'u
            lim = np.divide(p[None, :], Wu, out=np.full(Wu.shape, np.inf), where=Wu > 0)
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
    cert, _, _ = _price_block(_Pricing.of(W, p / lam, rho / lam), cols, idx, val, 0, np.inf)
    return float(cert.max(initial=0.0))

