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


def _lipschitz(G: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Per row, ``_L_SAFETY`` times a power-iteration estimate of ``lambda_max(G)``
    (an estimate: the steps of :func:`_fista` check the curvature they meet)."""
    v = live.astype(float)
    for _ in range(_POWER_ITERS):
        v = np.matmul(G, v[:, :, None])[:, :, 0]
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-300)
    top = np.linalg.norm(np.matmul(G, v[:, :, None])[:, :, 0], axis=1)
    return np.maximum(_L_SAFETY * top, 1e-300)


def _fista(G: np.ndarray, c: np.ndarray, valid: np.ndarray, x: np.ndarray, gscale: np.ndarray,
           max_iter: int, rel: float, need: int) -> tuple[np.ndarray, int]:
    """Projected FISTA with adaptive restart on ``min 1/2 x'Gx - c'x, x >= 0`` (``x`` on ``valid``).

    Vectorised over the rows (columns of ``B``): one batched product ``G x`` per
    iteration; the gradient at the extrapolated point is carried along by linearity.
    The iteration runs in the Jacobi metric (on ``z = diag(G)^{1/2} x``), so a column of
    ``W`` a thousand times longer than the others slows nothing. Step ``1 / L`` per row,
    ``L`` from :func:`_lipschitz` (of the scaled ``G``). The problem is quadratic, so
    the curvature along a step ``D`` is exact, ``D'G D = D'(g(x_new) - g(y))``: a step
    that meets more than ``L ||D||^2`` is rejected, ``L`` is raised to ``_L_SAFETY``
    times that curvature and the momentum restarts, so every accepted step satisfies
    the descent lemma. The momentum also restarts when the last step turned back,
    ``(y - x_new)'(x_new - x) > 0`` (O'Donoghue and Candes, 2015). A row stops at
    :func:`_handover` (``rel``, ``need``) or after ``max_iter`` iterations. Returns
    ``x`` and the number of iterations run.
    """
    n, K = c.shape
    diag = np.einsum("nkk->nk", G)
    live = valid & (diag > 0)
    # the Jacobi metric: FISTA on z = D^{1/2} x, D = diag(G) (the projection on z >= 0
    # is the same), so that the scales of the columns of W do not matter
    r = np.where(live, 1.0 / np.sqrt(np.where(live, diag, 1.0)), 0.0)
    G = G * r[:, :, None] * r[:, None, :]
    c = c * r
    x = np.where(live, np.maximum(x, 0.0) / np.where(live, r, 1.0), 0.0)
    L = _lipschitz(G, live)
    gx = np.matmul(G, x[:, :, None])[:, :, 0] - c
    y, gy = x.copy(), gx.copy()
    t = np.ones(n)
    active = np.ones(n, dtype=bool)
    stable = np.zeros(n, dtype=np.intp)
    sup = x > 0
    inv_r = np.where(live, 1.0 / np.where(live, r, 1.0), 0.0)
    it = 0
    for it in range(1, max_iter + 1):
        a = np.flatnonzero(active)
        if not a.size:
            it -= 1
            break
        whole = a.size == n
        Ga = G if whole else G[a]
        ya, gya, xa, gxa, La = (y, gy, x, gx, L) if whole else (y[a], gy[a], x[a], gx[a], L[a])
        xn = np.where(live[a], np.maximum(ya - gya / La[:, None], 0.0), 0.0)
        gxn = np.matmul(Ga, xn[:, :, None])[:, :, 0] - c[a]
        D = xn - ya
        dd = np.einsum("nk,nk->n", D, D)
        curv = np.einsum("nk,nk->n", D, gxn - gya)
        bad = curv > La * dd * (1.0 + 1e-12)
        if bad.any():
            L[a[bad]] = _L_SAFETY * curv[bad] / dd[bad]
            xn[bad], gxn[bad] = xa[bad], gxa[bad]
        restart = bad | (np.einsum("nk,nk->n", ya - xn, xn - xa) > 0)
        ta = t[a]
        tn = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * ta * ta))
        beta = np.where(restart, 0.0, (ta - 1.0) / tn)[:, None]
        t[a] = np.where(restart, 1.0, tn)
        y[a] = xn + beta * (xn - xa)
        gy[a] = gxn + beta * (gxn - gxa)
        x[a], gx[a] = xn, gxn
        # the hand-over test in the original variables: x = D^{-1/2} z, g = D^{1/2} g_z
        ra = r if whole else r[a]
        done = _handover(a, xn * ra, gxn * (inv_r if whole else inv_r[a]), live, sup, stable, gscale, rel, need)
        active[a[done]] = False
    x *= r
    return x, it
