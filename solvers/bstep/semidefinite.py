"""Sequential primal active-set method for a positive semi-definite Gram block.

The fallback of the batched Lawson-Hanson cores (:mod:`solvers.bstep.lawson_hanson`)
for the columns they cannot finish (a degenerate swap, the iteration cap): exact line
search and null-space descent, valid when the Gram block is only semi-definite.
"""

from __future__ import annotations

import numpy as np

# Relative eigenvalue cut-off of the sequential (semi-definite) fallback.
_EIG_REL = 1e-11



def _psd_direction(GF: np.ndarray, gF: np.ndarray, gmax: float, thr: float) -> np.ndarray:
    """Newton direction on the free set, or a zero-curvature descent direction.

    With ``GF = V diag(e) V'``: if ``gF`` has a component in the (numerical) null space
    of ``GF``, minus that component is a descent direction along which the objective
    is linear; otherwise the minimum-norm Newton step ``-GF^+ gF``.
    """
    evals, V = np.linalg.eigh(GF)
    cut = _EIG_REL * max(gmax, float(evals[-1]))
    big = evals > cut
    proj = V.T @ gF
    null_part = V[:, ~big] @ proj[~big]
    if np.max(np.abs(null_part), initial=0.0) > 1e-3 * thr:
        return -null_part
    return -(V[:, big] @ (proj[big] / evals[big]))



def _nnqp_psd(G: np.ndarray, c: np.ndarray, x0: np.ndarray, thr: float) -> np.ndarray:
    """``min 1/2 x'G x - c'x`` over ``x >= 0`` for a small PSD ``G``, from ``x0 >= 0``.

    Primal active-set method with exact line search (see :func:`_psd_direction`);
    every step strictly decreases the objective.  Stops when the free gradient is
    ``<= thr`` and every bound multiplier is ``>= -thr``.
    """
    K = c.size
    x = np.where(x0 > 0, x0, 0.0)
    if K == 0:
        return x
    gmax = float(np.max(np.abs(np.diag(G))))
    for _ in range(50 * K + 100):
        g = G @ x - c
        F = x > 0
        newj = -1
        if not np.max(np.abs(g[F]), initial=0.0) > thr:
            cand = np.where(F, np.inf, g)
            newj = int(np.argmin(cand))
            if not cand[newj] < -thr:
                break
            F[newj] = True
        idx = np.nonzero(F)[0]
        GF = G[np.ix_(idx, idx)]
        gF = g[idx]
        dF = _psd_direction(GF, gF, gmax, thr)
        slope = float(gF @ dF)
        jpos = int(np.nonzero(idx == newj)[0][0]) if newj >= 0 else -1
        if not slope < 0 or (jpos >= 0 and not dF[jpos] > 0):
            # safeguard: coordinate step on the new index, or steepest descent on F
            dF = np.zeros(idx.size)
            if jpos >= 0:
                dF[jpos] = 1.0
            else:
                dF = -gF
            slope = float(gF @ dF)
            if not slope < 0:
                break
        curv = float(dF @ (GF @ dF))
        step = -slope / curv if curv > 0 else np.inf
        neg = dF < 0
        ratios = np.full(idx.size, np.inf)
        ratios[neg] = x[idx][neg] / -dF[neg]
        kmin = int(np.argmin(ratios))
        blocked = ratios[kmin] <= step
        if blocked:
            step = float(ratios[kmin])
        if not np.isfinite(step):
            break
        xF = x[idx] + step * dF
        if blocked:
            xF[kmin] = 0.0
        xF[xF <= 0] = 0.0
        x[idx] = xF
    return x

