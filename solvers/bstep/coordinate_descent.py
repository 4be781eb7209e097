"""Coordinate descent with Anderson extrapolation on the working sets of the B-step.

Steps 3 and 4 of :func:`solvers.first_order.solve_transfer_first_order`: a first-order
method on each column's working set, vectorised over the columns, then an exact solve
on the identified support by the batched Lawson-Hanson core
(:func:`_solve_working_sets`); plus the working-set bookkeeping (:func:`_merge`,
:func:`_dedupe`, :func:`_compact`). The first-order method is FISTA
(:func:`solvers.bstep.fista._fista`, the default: :data:`_INNER`) or cyclic coordinate
descent with Anderson extrapolation (:func:`_cd`, here); ``examples/bstep_inner_solvers.py``
measures one against the other (``docs/first_order.md``).
"""

from __future__ import annotations

import numpy as np

from solvers.bstep.fista import _fista, _handover
from solvers.bstep.lawson_hanson import _lh_batch
from solvers.bstep.semidefinite import _nnqp_psd

#: target number of float64 entries of a block's restricted Gram matrices
_GRAM_ENTRIES = 2_000_000

#: Anderson extrapolation every this many epochs, from the last ``_AA_EVERY + 1`` iterates
_AA_EVERY = 5

#: iterations (epochs) a support must stay unchanged before the solve on the support
_STABLE = 2

#: relative restricted KKT violation below which the first-order method may hand over
#: (1e-2: 0.70x the time of 1e-3 on `amtl-cvx bench`'s T = 500 instance with coordinate
#: descent, 0.92x to 1.04x on the planted and dense instances of docs/first_order.md;
#: the support solve finishes)
_HANDOVER_REL = 1e-2

#: epoch cap of coordinate descent per round
_MAX_EPOCHS = 50

#: iteration cap of FISTA per round (an iteration costs about a third of an epoch)
_MAX_FISTA = 4 * _MAX_EPOCHS

#: the inner first-order method: "fista" (faster, measured in docs/first_order.md) or "cd"
_INNER = "fista"

#: the coordinate-major copies are made again when the active rows fall below this
#: fraction of them
_RECOPY = 0.5



def _restricted_objective(G: np.ndarray, c: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``1/2 x'Gx - c'x`` per row."""
    return 0.5 * np.einsum("nk,nk->n", x, np.einsum("nkj,nj->nk", G, x)) - np.einsum("nk,nk->n", c, x)



def _cd(G: np.ndarray, c: np.ndarray, valid: np.ndarray, x: np.ndarray, gscale: np.ndarray,
        max_epochs: int) -> tuple[np.ndarray, int]:
    """Cyclic coordinate descent on ``min 1/2 x'Gx - c'x, x >= 0`` (``x`` on ``valid``).

    Vectorised over the rows (columns of ``B``).  Anderson extrapolation from the last
    ``_AA_EVERY + 1`` epochs' iterates every ``_AA_EVERY`` epochs, kept where it lowers
    the objective.  Stops per row when its support has been unchanged for ``_STABLE``
    epochs and its KKT violation is below ``_HANDOVER_REL * gscale``
    (:func:`_handover`).  Returns ``x`` and the number of epochs run.
    """
    n, K = c.shape
    diag = np.einsum("nkk->nk", G).copy()
    live = valid & (diag > 0)
    inv = np.where(live, 1.0 / np.where(live, diag, 1.0), 0.0)
    cached = -1
    c_rows: np.ndarray | None = None
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
        if c_rows is None or a.size < _RECOPY * c_rows.size:
            # coordinate-major copies of the active rows' data, made again only once
            # they have shrunk well below the copy (the rows of the copy that are no
            # longer active are frozen: a zero inverse diagonal, so a zero step)
            c_rows = a
            GT = np.ascontiguousarray(np.transpose(G[a], (1, 2, 0)))  # (K, K, nc); G is symmetric
            inva = np.ascontiguousarray(inv[a].T)
        elif a.size != cached:
            inva[:, ~active[c_rows]] = 0.0
        cached = a.size
        # one contiguous slice per coordinate step (``inv`` is 0 on the coordinates
        # that may not move, which start at 0)
        xT = np.ascontiguousarray(x[c_rows].T)  # (K, nc)
        gT = np.ascontiguousarray(grad[c_rows].T)
        tmp = np.empty(c_rows.size)
        for k in range(K):
            xk = xT[k]
            np.multiply(gT[k], inva[k], out=tmp)
            np.subtract(xk, tmp, out=tmp)
            np.maximum(tmp, 0.0, out=tmp)
            np.subtract(tmp, xk, out=tmp)  # the step
            n_moved = np.count_nonzero(tmp)
            if n_moved == 0:
                continue
            xk += tmp
            if n_moved * 4 > c_rows.size:
                gT += GT[k] * tmp
            else:  # most coordinates stay at zero: update only the rows that moved
                moved = np.flatnonzero(tmp)
                gT[:, moved] += GT[k][:, moved] * tmp[moved]
        x[c_rows], grad[c_rows] = xT.T, gT.T
        xa = x[a]
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
        active[a[_handover(a, x[a], grad[a], live, sup, stable, gscale, _HANDOVER_REL, _STABLE)]] = False
    return x, epochs



def _solve_working_sets(
    W: np.ndarray, p: np.ndarray, rho: float, cols: np.ndarray, ws: np.ndarray, valid: np.ndarray,
    x0: np.ndarray, thr: float,
) -> tuple[np.ndarray, int]:
    """The inner first-order method then a solve on the identified support, per working set.

    Units ``lam = 1``: ``G = 2 W_K'W_K + 2 rho I``, ``c = 2 W_K'w_t - p_K``.  Returns
    the values on the working sets and the number of first-order iterations (FISTA
    iterations or coordinate-descent epochs; the largest over sub-blocks).
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
        if _INNER == "fista":
            x, ep = _fista(G, c, val, x0[sl].copy(), gscale, _MAX_FISTA, _HANDOVER_REL, _STABLE)
        else:
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

