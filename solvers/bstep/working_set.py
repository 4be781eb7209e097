"""The B-step's working-set (column-generation) method with an exact active-set core.

Used by :func:`solvers.transfer.solve_transfer` for ``T > 3000`` and when the
full-pricing pivots hand over (see the module docstring of :mod:`solvers.transfer`):

1. a pricing pass (:func:`solvers.bstep.certificate._price`) gives each column's
   certificate and its most violating coordinates;
2. each column's working set is its support plus (up to 30) of those violators
   (:func:`_merge_ws`);
3. every column is solved exactly on its working set by the batched Lawson-Hanson
   core (:func:`solvers.bstep.lawson_hanson._lh_batch`; the semi-definite fallback
   :func:`solvers.bstep.semidefinite._nnqp_psd` for the columns it cannot finish);
4. repeat until a pricing pass finds no violator (:func:`_working_set_solve`).
"""

from __future__ import annotations

import numpy as np

from solvers.bstep.certificate import _assemble, _entry_residuals, _price
from solvers.bstep.checks import _block_size, _grad_scale
from solvers.bstep.lawson_hanson import _lh_batch
from solvers.bstep.semidefinite import _nnqp_psd
from solvers.result import SolverResult


def _solve_working_sets(
    W: np.ndarray,
    p: np.ndarray,
    lam: float,
    cols: np.ndarray,
    ws_idx: np.ndarray,
    ws_valid: np.ndarray,
    ws_x0: np.ndarray,
    thr_qp: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact solutions on the working sets; returns padded ``(support idx, values)``."""
    n, K = ws_idx.shape
    out_x = np.zeros((n, K))
    if K == 0 or n == 0:
        return ws_idx, out_x
    nb = _block_size(K * K + W.shape[0] * K, 1)
    for start in range(0, n, nb):
        sl = slice(start, min(n, start + nb))
        idx, val, cb = ws_idx[sl], ws_valid[sl], cols[sl]
        Wg = np.transpose(W[:, idx], (1, 0, 2))  # (nb, d, K)
        Wg = Wg * val[:, None, :]
        Gs = np.matmul(np.transpose(Wg, (0, 2, 1)), Wg)
        c = np.einsum("ndk,dn->nk", Wg, W[:, cb]) - (p[idx] / (2.0 * lam)) * val
        x, _, fail = _lh_batch(Gs, c, val, thr_qp, ws_x0[sl], W.shape[0])
        for r in np.nonzero(fail)[0]:
            vr = np.nonzero(val[r])[0]
            x[r, vr] = _nnqp_psd(Gs[r][np.ix_(vr, vr)], c[r, vr], x[r, vr], thr_qp)
        x[~val] = 0.0
        out_x[sl] = x
    return ws_idx, out_x



def _compact(idx: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left-pack the positive entries of each row; width = max support size."""
    pos = x > 0
    cnt = pos.sum(axis=1)
    S = int(cnt.max()) if cnt.size else 0
    n = x.shape[0]
    new_idx = np.zeros((n, S), dtype=np.intp)
    new_x = np.zeros((n, S))
    if S:
        order = np.argsort(~pos, axis=1, kind="stable")[:, :S]
        new_idx = np.take_along_axis(idx, order, axis=1)
        new_x = np.take_along_axis(np.where(pos, x, 0.0), order, axis=1)
        new_idx = np.where(new_x > 0, new_idx, 0)
    return new_idx, new_x



def _support_key(idx: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Sorted support indices per row, padded with -1 (for comparing supports)."""
    key = np.sort(np.where(x > 0, idx, -1), axis=1)
    return key[:, ::-1]



def _merge_ws(
    sup_idx: np.ndarray, sup_x: np.ndarray, cand: np.ndarray, cand_ok: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Working set = support (x > 0) plus accepted candidates, padded; with values."""
    ws = np.concatenate([sup_idx, cand], axis=1)
    ok = np.concatenate([sup_x > 0, cand_ok], axis=1)
    xv = np.concatenate([np.where(sup_x > 0, sup_x, 0.0), np.zeros(cand.shape)], axis=1)
    cnt = ok.sum(axis=1)
    K = int(cnt.max()) if cnt.size else 0
    order = np.argsort(~ok, axis=1, kind="stable")[:, :K]
    ws = np.take_along_axis(ws, order, axis=1)
    ok = np.take_along_axis(ok, order, axis=1)
    xv = np.take_along_axis(xv, order, axis=1)
    ws = np.where(ok, ws, 0)
    return ws, ok, xv



def _working_set_solve(
    W: np.ndarray, p: np.ndarray, B0: np.ndarray | None, tol: float, max_iter: int, record_history: bool
) -> SolverResult:
    """The working-set method in the units ``lam = 1``, ``max |W| = 1`` (``T >= 2``).

    ``B0`` (optional) gives the initial working sets (its support, at most the
    ``d + 8`` largest entries per column); otherwise a pricing pass at ``B = 0`` does.
    ``n_iter`` counts the rounds (restricted solve + pricing pass).
    """
    lam = 1.0
    d, T = W.shape
    scale = _grad_scale(W, p, lam)
    thr = max(min(0.5 * tol, 1e-12), 1e-14) * scale  # gradient units
    thr_qp = thr / (2.0 * lam)  # units of 1/2 x'Gx - c'x
    m = min(T - 1, 30)  # candidates added per column per round
    history: list[float] = []
    all_cols = np.arange(T)
    res = np.zeros(T)  # absolute residual per column
    sup_idx = np.zeros((T, 0), dtype=np.intp)
    sup_x = np.zeros((T, 0))
    # ---- initial working sets
    if B0 is not None:
        Bw = np.where(B0 > 0, B0, 0.0)
        np.fill_diagonal(Bw, 0.0)
        kk = min(T - 1, d + 8)
        top = np.argpartition(-Bw, kk - 1, axis=0)[:kk].T if kk < T else np.tile(np.arange(T), (T, 1))
        ok = Bw[top, all_cols[:, None]] > 0
        ws_idx, ws_ok, ws_x0 = _merge_ws(sup_idx, sup_x, top, ok)
    else:
        nb = _block_size(T)
        cands, oks = [], []
        for start in range(0, T, nb):
            cb = all_cols[start : start + nb]
            r, cand, ok = _price(W, p, lam, cb, sup_idx[cb], sup_x[cb], thr, m)
            res[cb] = r
            cands.append(cand)
            oks.append(ok)
        ws_idx, ws_ok, ws_x0 = _merge_ws(
            sup_idx, sup_x, np.concatenate(cands), np.concatenate(oks)
        )
    todo = all_cols

    n_iter = 0
    n_redo = np.zeros(T, dtype=np.intp)
    frozen = np.zeros(T, dtype=bool)
    sup_idx_full = sup_idx
    sup_x_full = sup_x
    while True:
        n_iter += 1
        # ---- exact restricted solves on the working sets
        old_key = _support_key(sup_idx_full[todo], sup_x_full[todo])
        _, xs = _solve_working_sets(W, p, lam, todo, ws_idx, ws_ok, ws_x0, thr_qp)
        new_idx, new_x = _compact(ws_idx, xs)
        # a column whose support did not change although violators were added is at
        # the limit of floating point (ill-conditioned support): stop pricing it
        new_key = _support_key(new_idx, new_x)
        width = max(old_key.shape[1], new_key.shape[1])
        old_key = np.pad(old_key, ((0, 0), (0, width - old_key.shape[1])), constant_values=-1)
        new_key = np.pad(new_key, ((0, 0), (0, width - new_key.shape[1])), constant_values=-1)
        if n_iter > 1:
            frozen[todo[np.all(old_key == new_key, axis=1)]] = True
        S = max(sup_idx_full.shape[1], new_idx.shape[1])
        if sup_idx_full.shape[1] < S:
            pad = S - sup_idx_full.shape[1]
            sup_idx_full = np.pad(sup_idx_full, ((0, 0), (0, pad)))
            sup_x_full = np.pad(sup_x_full, ((0, 0), (0, pad)))
        sup_idx_full[todo] = np.pad(new_idx, ((0, 0), (0, S - new_idx.shape[1])))
        sup_x_full[todo] = np.pad(new_x, ((0, 0), (0, S - new_x.shape[1])))
        # shrink the padding width if supports got smaller
        w = int((sup_x_full > 0).sum(axis=1).max())
        if w < sup_idx_full.shape[1]:
            sup_idx_full, sup_x_full = _compact(sup_idx_full, sup_x_full)
        # ---- pricing pass on the columns that changed
        nb = _block_size(T)
        cands, oks = [], []
        for start in range(0, todo.size, nb):
            cb = todo[start : start + nb]
            r, cand, ok = _price(W, p, lam, cb, sup_idx_full[cb], sup_x_full[cb], thr, m)
            res[cb] = r
            cands.append(cand)
            oks.append(ok)
        cand = np.concatenate(cands)
        ok = np.concatenate(oks)
        cert = float(res.max()) / scale
        if record_history:
            history.append(cert)
        more = ok.any(axis=1)
        # safeguard: a column whose own support is not stationary (inaccurate
        # restricted solve) is re-solved from a cold start, at most twice
        redo = (res[todo] > 0.5 * tol * scale) & ~more & (n_redo[todo] < 2)
        n_redo[todo[redo]] += 1
        more |= redo
        more &= ~frozen[todo]
        if not more.any() or n_iter >= max_iter:
            break
        todo = todo[more]
        ws_idx, ws_ok, ws_x0 = _merge_ws(
            sup_idx_full[todo], sup_x_full[todo], cand[more], ok[more]
        )
        ws_x0[redo[more]] = 0.0

    cert = float(_entry_residuals(W, p, lam, sup_idx_full, sup_x_full).max())
    if record_history:
        history.append(cert)
    return _assemble(W, p, lam, (sup_idx_full, sup_x_full), n_iter, cert, tol, history)
