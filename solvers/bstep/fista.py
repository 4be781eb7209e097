"""Accelerated projected gradient (FISTA) on the working sets of the B-step.

Step 3 of :func:`solvers.first_order.solve_transfer_first_order`: per column of ``B``,
``min 1/2 x'Gx - c'x, x >= 0`` on the column's working set (``G`` the ``K x K``
restricted Gram matrix), all columns at once (:func:`_fista`), and the hand-over test
that it shares with the coordinate descent of :mod:`solvers.bstep.coordinate_descent`
(:func:`_handover`).
"""

from __future__ import annotations

import numpy as np

#: power iterations for each column's Lipschitz estimate, and the factor applied to it
_POWER_ITERS = 10
_L_SAFETY = 1.1

#: the batch of rows is compacted again when its active rows fall below this fraction
_RECOPY = 0.5


def _handover(a: np.ndarray, xa: np.ndarray, ga: np.ndarray, live: np.ndarray, sup: np.ndarray,
              stable: np.ndarray, gscale: np.ndarray, rel: float, need: int) -> np.ndarray:
    """The rows of ``a`` ready for the exact solve on their support (a mask over ``a``).

    Ready: the support ``xa > 0`` has stayed the same for ``need`` iterations and the
    restricted KKT violation (gradient ``ga``) is at most ``rel * gscale``, or there is no
    violation at all. Updates ``sup`` and ``stable`` (the support and the iterations it
    has lasted, per row of the batch) in place.
    """
    s_now = xa > 0
    same = np.all(s_now == sup[a], axis=1)
    stable[a] = np.where(same, stable[a] + 1, 0)
    sup[a] = s_now
    viol = np.where(s_now, np.abs(ga), np.maximum(-ga, 0.0))
    viol[~live[a]] = 0.0
    vmax = viol.max(axis=1, initial=0.0)
    return ((vmax <= rel * gscale[a]) & (stable[a] >= need)) | (vmax == 0.0)


def _lipschitz(G: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Per row, ``_L_SAFETY`` times a power-iteration estimate of the largest eigenvalue
    of ``diag(r) G diag(r)`` (an estimate: the steps of :func:`_fista` check the
    curvature they meet)."""
    v = (r > 0).astype(float)
    for _ in range(_POWER_ITERS):
        v = r * np.matmul(G, (r * v)[:, :, None])[:, :, 0]
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-300)
    top = np.linalg.norm(r * np.matmul(G, (r * v)[:, :, None])[:, :, 0], axis=1)
    return np.maximum(_L_SAFETY * top, 1e-300)


def _fista(G: np.ndarray, c: np.ndarray, valid: np.ndarray, x: np.ndarray, gscale: np.ndarray,
           max_iter: int, rel: float, need: int) -> tuple[np.ndarray, int]:
    """Projected FISTA with adaptive restart on ``min 1/2 x'Gx - c'x, x >= 0`` (``x`` on ``valid``).

    Vectorised over the rows (columns of ``B``): one batched product ``G x`` per
    iteration; the gradient at the extrapolated point is carried along by linearity.
    The iteration runs in the Jacobi metric ``M = diag(G)`` (it is FISTA on
    ``z = M^{1/2} x``), so a column of ``W`` a thousand times longer than the others
    slows nothing. Step ``M^{-1} g / L`` per row, ``L`` from :func:`_lipschitz` (for
    ``M^{-1/2} G M^{-1/2}``). The problem is quadratic, so
    the curvature along a step ``D`` is exact, ``D'G D = D'(g(x_new) - g(y))``: a step
    that meets more than ``L D'M D`` is rejected, ``L`` is raised to ``_L_SAFETY``
    times that curvature and the momentum restarts, so every accepted step satisfies
    the descent lemma. The momentum also restarts when the last step turned back,
    ``(y - x_new)'M(x_new - x) > 0`` (O'Donoghue and Candes, 2015). A row stops at
    :func:`_handover` (``rel``, ``need``) or after ``max_iter`` iterations. Returns
    ``x`` and the number of iterations run.
    """
    n, K = c.shape
    diag = np.einsum("nkk->nk", G)
    live = valid & (diag > 0)
    # the Jacobi metric M = diag(G) (FISTA on z = M^{1/2} x; the projection on z >= 0
    # is the same), so that the scales of the columns of W do not matter: the step is
    # M^{-1} g / L, curvatures and the restart test are measured in M
    m = np.where(live, diag, 0.0)
    minv = np.where(live, 1.0 / np.where(live, diag, 1.0), 0.0)
    L = _lipschitz(G, np.sqrt(minv))
    inv_L = 1.0 / L
    out = np.where(live, np.maximum(x, 0.0), 0.0)
    x = out.copy()
    gx = np.matmul(G, x[:, :, None])[:, :, 0] - c
    y, gy = x.copy(), gx.copy()
    t = np.ones(n)
    active = np.ones(n, dtype=bool)
    stable = np.zeros(n, dtype=np.intp)
    sup = x > 0
    # the rows are kept in a compact batch (idx: their rows in the input), copied again
    # only once the active ones fall below _RECOPY of it; a finished row of the batch is
    # frozen (step 0, y = x), so one batched product serves all
    idx = np.arange(n)
    it = 0
    for it in range(1, max_iter + 1):
        na = np.count_nonzero(active)
        if na == 0:
            it -= 1
            break
        if na < _RECOPY * idx.size:
            out[idx] = x
            k = np.flatnonzero(active)
            idx = idx[k]
            G, c, m, minv, live = G[k], c[k], m[k], minv[k], live[k]
            x, gx, y, gy, L, inv_L, t = x[k], gx[k], y[k], gy[k], L[k], inv_L[k], t[k]
            active, stable, sup = active[k], stable[k], sup[k]
        xn = np.maximum(y - gy * minv * inv_L[:, None], 0.0)  # 0 where not live (y is)
        gxn = np.matmul(G, xn[:, :, None])[:, :, 0] - c
        D = xn - y
        dd = np.einsum("nk,nk->n", D * m, D)
        curv = np.einsum("nk,nk->n", D, gxn - gy)
        bad = curv > L * dd * (1.0 + 1e-12)
        if bad.any():
            L[bad] = _L_SAFETY * curv[bad] / dd[bad]
            inv_L[bad] = 1.0 / L[bad]
            xn[bad], gxn[bad] = x[bad], gx[bad]
        restart = bad | (np.einsum("nk,nk->n", (y - xn) * m, xn - x) > 0)
        tn = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        beta = np.where(restart, 0.0, (t - 1.0) / tn)[:, None]
        t = np.where(restart, 1.0, tn)
        y = xn + beta * (xn - x)
        gy = gxn + beta * (gxn - gx)
        x, gx = xn, gxn
        a = np.flatnonzero(active)
        done = a[_handover(a, x[a], gx[a], live, sup, stable, gscale[idx], rel, need)]
        active[done] = False
        inv_L[done] = 0.0  # frozen: y = x and no step
        y[done], gy[done] = x[done], gx[done]
    out[idx] = x
    x = out
    return x, it
