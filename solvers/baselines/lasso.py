"""The GO-MTL codes' model problems: small lasso-type QPs for all tasks at once, by a batched
active-set method exact on the support (:func:`_lasso_qp`)."""

from __future__ import annotations

import numpy as np

from solvers.baselines._shared import _EPS
from solvers.bstep.semidefinite import _nnqp_psd


#: A code problem with an active column whose squared sine of the angle to the span of the
#: other active columns (in the data's metric) is below this is treated as linearly
#: dependent: the batched active-set solve hands it to the semi-definite fallback
#: (:func:`solvers.bstep.semidefinite._nnqp_psd`).
_CODES_SCHUR_REL = 1e-12

_PRICE, _SOLVE, _DONE, _FAIL = 0, 1, 2, 3


def _masked_solve(M: np.ndarray, rhs: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``M_t x_t = rhs_t`` for a stack of small symmetric matrices (by their inverses).

    ``ok[t]`` is False where an active column is numerically dependent on the other active
    ones: ``1 / (M_jj inv(M)_jj)``, the squared sine of the angle between column ``j`` and
    the span of the others (in the metric of the data), is below ``_CODES_SCHUR_REL`` (or
    not positive: ``M_t`` not definite), or ``M_t`` is exactly singular.
    """
    n, k = rhs.shape
    ok = np.ones(n, dtype=bool)
    try:
        Minv = np.linalg.inv(M)
    except np.linalg.LinAlgError:
        Minv = np.empty_like(M)
        for i in range(n):
            try:
                Minv[i] = np.linalg.inv(M[i])
            except np.linalg.LinAlgError:
                Minv[i], ok[i] = np.eye(k), False
    with np.errstate(divide="ignore", invalid="ignore"):
        sine2 = 1.0 / (np.diagonal(M, axis1=1, axis2=2) * np.diagonal(Minv, axis1=1, axis2=2))
    ok &= np.all(~active | (sine2 > _CODES_SCHUR_REL), axis=1)
    return np.einsum("tij,tj->ti", Minv, rhs), ok


def _lasso_fallback(G: np.ndarray, c: np.ndarray, mu: float, s0: np.ndarray) -> np.ndarray:
    """One code problem by the semi-definite active-set method of :mod:`solvers.transfer`,
    on the split ``s = u+ - u-`` (``u >= 0``, Gram ``[[G, -G], [-G, G]]``, singular)."""
    k = c.size
    Gs = np.block([[G, -G], [-G, G]])
    cs = np.concatenate([c - mu, -c - mu])
    u0 = np.concatenate([np.maximum(s0, 0.0), np.maximum(-s0, 0.0)])
    scale = float(np.abs(G).max(initial=0.0) * np.abs(s0).sum() + np.abs(c).max(initial=0.0)) + mu
    u = _nnqp_psd(Gs, cs, u0, 64 * k * _EPS * scale)
    return u[:k] - u[k:]


def _lasso_qp(G: np.ndarray, g0: np.ndarray, mu: float, S0: np.ndarray) -> np.ndarray:
    """For every row ``t``: ``argmin_s g0_t'(s - s0_t) + 1/2 (s - s0_t)'G_t(s - s0_t) + mu ||s||_1``
    (``G_t`` k x k PSD; ``g0_t`` the gradient of the smooth part at ``s0_t``, row t of ``S0``).

    An active-set method exact on the support, run for all rows at once: on the active
    set ``A`` with signs ``z`` the minimiser is ``s_A = s0_A + d_A``,
    ``G_AA d_A = -g0_A - mu z_A + G_AB s0_B`` (``B`` the inactive coordinates, held at 0);
    a solution that leaves the orthant of ``z`` is stepped back to the first coordinate that
    reaches 0, which leaves ``A``; at a solution inside its orthant the most violating
    inactive coordinate (``|g_j| > mu``, ``g = g0 + G (s - s0)``) enters with
    ``z_j = -sign(g_j)``. This is Lawson-Hanson on the split ``s = u+ - u-`` (``u >= 0``),
    so it terminates finitely, the objective decreasing at every step. Warm started from the
    support and signs of ``S0`` (a row whose warm support is singular restarts from 0).
    Solving for the correction ``d`` rather than for ``s`` keeps the solve accurate when
    ``G_AA`` is ill-conditioned: with ``g0`` from the data's residuals the first solve on an
    unchanged support is a step of iterative refinement. Rows the batched method cannot
    finish (dependent active columns, a rounding-level entry, the pivot cap) are solved by
    the semi-definite method of :func:`_lasso_fallback`.
    """
    T, k = g0.shape
    s = S0.copy()
    A = s != 0
    z = np.sign(s)
    warm = A.any(axis=1)
    state = np.where(warm, _SOLVE, _PRICE)
    eye = np.eye(k, dtype=bool)
    for _ in range(4 * k + 20):
        pr = np.nonzero(state == _PRICE)[0]
        if pr.size:
            Gp, dp, gp = G[pr], s[pr] - S0[pr], g0[pr]
            g = gp + np.einsum("tij,tj->ti", Gp, dp)
            # rounding of g: a coordinate enters only if it violates beyond it
            slack = 16 * k * _EPS * (np.einsum("tij,tj->ti", np.abs(Gp), np.abs(dp)) + np.abs(gp) + mu)
            v = np.where(A[pr], -np.inf, np.abs(g) - mu - slack)
            j = np.argmax(v, axis=1)
            add = v[np.arange(pr.size), j] > 0
            state[pr[~add]] = _DONE
            rows, cols = pr[add], j[add]
            A[rows, cols] = True
            z[rows, cols] = -np.sign(g[add, cols])
            state[rows] = _SOLVE
        so = np.nonzero(state == _SOLVE)[0]
        if so.size == 0:
            break
        As, zs, ss, s0 = A[so], z[so], s[so], S0[so]
        Gs = G[so]
        M = np.where(As[:, :, None] & As[:, None, :], Gs, 0.0) + (eye & ~As[:, :, None])
        rhs = np.where(As, np.einsum("tij,tj->ti", Gs, np.where(As, 0.0, s0)) - g0[so] - mu * zs, 0.0)
        d, ok = _masked_solve(M, rhs, As)
        x = np.where(As, s0 + d, 0.0)
        bad = As & (zs * x <= 0)
        # a coordinate that just entered (s_j = 0) and comes out with the wrong sign:
        # impossible in exact arithmetic for a definite G_AA, so a rounding-level entry
        stuck = np.any(bad & (ss == 0), axis=1)
        fail = ~ok | stuck
        if fail.any():
            first = warm[so]  # the first solve of a warm start: restart that row from 0
            restart = so[fail & first]
            s[restart], A[restart], z[restart] = 0.0, False, 0.0
            state[restart] = _PRICE
            state[so[fail & ~first]] = _FAIL
        warm[so] = False
        inside = ~fail & ~bad.any(axis=1)
        s[so[inside]] = x[inside]
        state[so[inside]] = _PRICE
        back = ~fail & ~inside
        if back.any():
            sb, xb, bb = ss[back], x[back], bad[back]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(bb, sb / (sb - xb), np.inf)
            hit = np.argmin(ratio, axis=1)
            alpha = ratio[np.arange(hit.size), hit]
            sn = sb + alpha[:, None] * (xb - sb)
            sn[np.arange(hit.size), hit] = 0.0
            sn[zs[back] * sn <= 0] = 0.0
            rows = so[back]
            s[rows], A[rows] = sn, sn != 0
            z[rows] = np.where(sn != 0, zs[back], 0.0)
    for t in np.nonzero(state != _DONE)[0]:  # s[t] is feasible: the fallback starts there
        s[t] = _lasso_fallback(G[t], G[t] @ S0[t] - g0[t], mu, s[t])
    return s
