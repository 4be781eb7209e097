r"""Proximal Newton for a sum of per-task smooth losses plus a norm penalty.

The problem is

    min_W  F(W) = f(W) + rho ||W||_F^2 + lam Omega(W),     f(W) = sum_t L_t(w_t),

with ``W`` d x T, ``L_t`` twice differentiable (its Hessian ``H_t``, d x d, depends on
``w_t`` only), ``Omega`` a norm with a cheap proximal operator (l2,1, trace, l1).

Each outer iteration (Lee, Sun & Saunders, "Proximal Newton-type methods for minimizing
composite functions", SIAM J. Optim. 2014) minimises the quadratic model of ``f`` at
``W``,

    m(V) = <G, V - W> + 1/2 sum_t (v_t - w_t)' H_t (v_t - w_t) + rho ||V||_F^2 + lam Omega(V),

``G`` the gradient of ``f`` at ``W``, by restarted FISTA. An iteration of that inner
solve costs ``T d^2`` flops and one proximal step, and no pass over the data, so the
thousands of iterations an ill-conditioned model needs cost what a few dozen passes over
the data would; first-order methods on ``F`` itself pay a pass over the data at each of
them. A weakly regularised logistic loss on nearly separable data is such a case: on the
release's usps1.mat (10 tasks, 88 features, 10,000 rows), FISTA on ``F`` needed 20,000
iterations (69 s, one BLAS thread) at ``lam = 1e-4 lambda_max`` with the l2,1 norm and
stopped at a relative duality gap of 2.5e-7.

The inner solve stops when its proximal-gradient residual
``||V - prox(V - s grad)|| / s`` (``s`` the inverse of the model's Lipschitz constant
``max_t ||H_t||_2 + 2 rho``) is at most ``eta`` times its value at ``V = W``, with the
forcing term ``eta = min(0.1, max(r / r_0, 1e-3))`` (``r`` that residual at the current
outer iterate, ``r_0`` at the first): superlinear convergence until the floor, then
about three digits an iteration (the floor keeps the inner solve above the rounding of
the model's gradient). The inner FISTA runs in chunks of growing length (50, 100, 200,
...), each followed by a **second-order finish** on the structure the proximal steps
found, which finishes models too ill-conditioned for FISTA:

- l2,1 and l1 (``groups="rows"`` / ``"entries"``): Newton's method on the support
  (:func:`_support_newton`; for rows the ``a T`` x ``a T`` system on ``a`` active rows is
  solved by the Woodbury identity in ``O(T a^3)``);
- trace norm (``groups="spectral"``): Newton's method on the manifold of matrices of the
  current rank, in a chart re-centred at every iterate, its system solved by blocks
  (:func:`_spectral_newton`, :func:`_spectral_step`).

Both take Armijo steps on the model and, where the model's value no longer resolves the
decrease (the duality gap is first order in the gradient, the value second order), full
steps that do not raise it beyond rounding, kept only if the gradient then at least halves
(:func:`_newton_line_search`).
The step ``V - W`` is then damped by Armijo backtracking on ``F``, with the decrease
``<G + 2 rho W, D> + lam (Omega(V) - Omega(W))`` of Lee, Sun & Saunders.

For a quadratic ``f`` (the squared loss: ``H_t = X_t'X_t / n_t``, constant) the model is
``F`` itself: the outer iterations only re-evaluate the gradient from the data and the
certificate. On ``amtl_cvx.make_tabular_tasks(random_state=0)`` (140 tasks, 28 badly
scaled, collinear features, half the tasks with fewer rows than features) the trace-norm
fit at ``lam = 1e-4 lambda_max`` (warm-started from the next larger ``lam`` of the default
grid) took 20,240 iterations of FISTA on ``F`` (16 s, one BLAS thread) and takes two
outer iterations (200 inner FISTA iterations and 19 manifold Newton steps, 1.3 s); the
whole 13-point path went from 39 s to 4.3 s (one BLAS thread, the other core busy,
2026-11-30; docs/baselines.md has the grids' timings and the command).

The caller's certificate (for the baselines, the relative duality gap) decides when to
stop; it is evaluated once per outer iteration, so it means exactly what it means for
:func:`solvers.baselines.solve_penalized`'s FISTA.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.linalg as sla

__all__ = ["prox_newton"]

_EPS = np.finfo(np.float64).eps

#: ``F`` values within this relative distance are equal to rounding (the sum over tasks of
#: losses computed to a few ulps each).
_ROUNDING = 64 * _EPS

#: Sufficient decrease of the Armijo search (fraction of the model's predicted decrease).
_ARMIJO = 1e-4


def _support_newton(
    V: np.ndarray,
    W: np.ndarray,
    G: np.ndarray,
    H: np.ndarray,
    lam: float,
    rho: float,
    groups: str,
    model: Callable[[np.ndarray], float],
    max_iter: int = 30,
) -> np.ndarray:
    """Minimise the model on the support of ``V`` by Newton's method.

    On the set where ``V``'s atoms (rows for ``groups="rows"``, the l2,1 norm; entries for
    ``"entries"``, the l1 norm) are nonzero, the penalty is smooth: ``lam sum_j ||V_j||``
    has gradient ``lam V_j / ||V_j||`` and Hessian ``lam (I - u u') / ||V_j||`` (``u`` the
    unit row), and the l1 norm is linear on a fixed sign pattern. The restricted model is
    minimised by damped Newton steps that keep every atom nonzero (and, for l1, every sign);
    the support itself is left to the proximal-gradient iterations that precede. Returns
    ``V`` unchanged when no step lowers the model.

    For rows the Newton system on the ``a`` active rows (``a T`` unknowns) is never formed:
    it is ``blockdiag_t(B_t) - sum_j c_j (e_j kron u_j)(e_j kron u_j)'`` with
    ``B_t = H_t[A, A] + 2 rho I + diag(c)``, ``c_j = lam / ||V_j||``, and is solved by the
    Woodbury identity (T factorisations of ``a x a`` blocks and one ``a x a`` capacitance
    matrix ``diag(1/c) - U' B^{-1} U``): ``O(T a^3)`` instead of ``O((a T)^3)``. For
    entries it is formed densely (at most ``_SUPPORT_NEWTON_MAX`` unknowns).
    """
    d, T = V.shape
    if groups == "rows":
        active = np.flatnonzero(np.abs(V).sum(axis=1) > 0)
        mask = np.zeros((d, T), dtype=bool)
        mask[active] = True
        if active.size == 0:
            return V
        H_A = H[:, active][:, :, active]
    else:
        mask = V != 0
        n = int(mask.sum())
        if n == 0 or n > _SUPPORT_NEWTON_MAX:
            return V
        cols = [np.flatnonzero(mask[:, t]) for t in range(T)]
        offsets = np.concatenate([[0], np.cumsum([c.size for c in cols])])
        K0 = np.zeros((n, n))  # data part: block-diagonal over the tasks
        for t, c in enumerate(cols):
            K0[offsets[t]:offsets[t + 1], offsets[t]:offsets[t + 1]] = H[t][np.ix_(c, c)]
        K0[np.diag_indices(n)] += 2.0 * rho
        order = np.concatenate([c + d * t for t, c in enumerate(cols)])  # flat index j + d t, task-major
    signs = np.sign(V)

    def newton_direction(Vc: np.ndarray) -> np.ndarray | None:
        """``K^{-1} g`` as a (d, T) array (zero off the support); ``None`` if it fails."""
        Gm = G + np.matmul(H, (Vc - W).T[:, :, None])[:, :, 0].T + 2.0 * rho * Vc
        if groups == "rows":
            norms = np.linalg.norm(Vc[active], axis=1)
            if not np.all(norms > 0):
                return None
            c = lam / norms
            U = Vc[active] / norms[:, None]  # (a, T) unit rows
            g = (Gm[active] + c[:, None] * Vc[active]).T  # (T, a)
            B = H_A.copy()
            idx = np.arange(active.size)
            B[:, idx, idx] += 2.0 * rho + c
            try:
                Binv = np.linalg.inv(B)
            except np.linalg.LinAlgError:
                return None
            cap = np.diag(1.0 / c) - np.einsum("it,jt,tij->ij", U, U, Binv)
            y = np.matmul(Binv, g[:, :, None])[:, :, 0]
            z = np.einsum("it,ti->i", U, y)
            try:
                s = sla.cho_solve(sla.cho_factor(0.5 * (cap + cap.T)), z)
            except np.linalg.LinAlgError:  # singular on the support (rank-deficient data, rho = 0)
                s = sla.lstsq(cap, z)[0]
            x = y + np.matmul(Binv, (U * s[:, None]).T[:, :, None])[:, :, 0]
            out = np.zeros((d, T))
            out[active] = x.T
            return out
        g = (Gm + lam * signs).T.ravel()[order]
        try:
            p = sla.cho_solve(sla.cho_factor(K0), g)
        except np.linalg.LinAlgError:  # singular on the support (rank-deficient data, rho = 0)
            p = sla.lstsq(K0, g)[0]
        out = np.zeros(d * T)
        out[order] = p
        return out.reshape(T, d).T

    def gradient(Vc: np.ndarray) -> np.ndarray:
        Gm = G + np.matmul(H, (Vc - W).T[:, :, None])[:, :, 0].T + 2.0 * rho * Vc
        if groups == "rows":
            norms = np.linalg.norm(Vc, axis=1)
            return (Gm + lam * Vc / np.where(norms > 0, norms, 1.0)[:, None]) * mask
        return (Gm + lam * signs) * mask

    f = model(V)
    scale = max(abs(f), lam * float(np.abs(V).sum() if groups != "rows" else np.linalg.norm(V, axis=1).sum()))

    def admissible(V_new: np.ndarray) -> bool:
        if groups == "rows":
            return bool(np.all((np.abs(V_new).sum(axis=1) > 0)[mask[:, 0]]))
        return bool(np.all((np.sign(V_new) == signs)[mask]))

    prev = None  # the point before a step taken at rounding level, and its gradient norm
    for _ in range(max_iter):
        step = newton_direction(V)
        grad = gradient(V)
        gnorm = float(np.linalg.norm(grad))
        if prev is not None:
            if not gnorm < 0.5 * prev[2]:  # the step at rounding level did not pay: undo it
                V, f = prev[0], prev[1]
                break
            prev = None
        if step is None:
            break
        dec = float(np.vdot(grad, step))
        found = _newton_line_search(model, f, dec, scale, lambda a: V - a * step, admissible)
        if found is None:
            break
        if found[2]:
            prev = (V, f, gnorm)
        V, f = found[0], found[1]
    return V


def _newton_line_search(
    model: Callable[[np.ndarray], float],
    f: float,
    dec: float,
    scale: float,
    trial: Callable[[float], np.ndarray],
    admissible: Callable[[np.ndarray], bool] = lambda V: True,
) -> tuple[np.ndarray, float, bool, float] | None:
    """The step of the second-order finishes: ``(V, m(V), at_rounding, alpha)`` or ``None``.

    Armijo backtracking on the model along ``trial(alpha)`` (``alpha = 1, 1/2, ...``;
    predicted decrease ``alpha dec``). Where the model no longer resolves the decrease
    (below ``_ROUNDING * scale``, ``scale`` the size of its terms) the full step is taken
    when it does not raise the model beyond rounding, flagged ``at_rounding``: the caller
    keeps it only if the gradient then shrinks (the duality gap is first order in the
    gradient, the model's value second order, so the last digits of the certificate are
    won below the model's rounding).
    """
    if not dec > 0:
        return None
    if dec > _ROUNDING * scale:
        alpha = 1.0
        while alpha >= 1e-10:
            V_new = trial(alpha)
            if admissible(V_new):
                f_new = model(V_new)
                if f_new <= f - _ARMIJO * alpha * dec:
                    return V_new, f_new, False, alpha
            alpha *= 0.5
    V_new = trial(1.0)
    if not admissible(V_new):
        return None
    f_new = model(V_new)
    return (V_new, f_new, True, 1.0) if f_new <= f + _ROUNDING * scale else None


def _hess_apply(H: np.ndarray, D: np.ndarray) -> np.ndarray:
    """``[H_t d_t]_t`` for ``D`` (d, T) and the per-task matrices ``H`` (T, d, d)."""
    return np.matmul(H, D.T[:, :, None])[:, :, 0].T


def _spectral_chart(V: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """``(U, U_perp, S, Q)``: ``V = U diag(S) Q'`` with the ``r`` singular values above
    ``_RANK_RTOL`` times the largest, ``U_perp`` an orthonormal basis of the rest of R^d;
    ``None`` for ``V = 0``."""
    d, T = V.shape
    Uf, s, Qt = np.linalg.svd(V, full_matrices=d > T)
    if not s.size or not s[0] > 0:
        return None
    r = int(np.count_nonzero(s > _RANK_RTOL * s[0]))
    return Uf[:, :r], Uf[:, r:], s[:r], Qt[:r].T


def _spectral_hessian_apply(
    V: np.ndarray, GW: np.ndarray, H: np.ndarray, lam: float, rho: float, k: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The Hessian of the model in the chart of :func:`_spectral_newton` at ``V`` along
    ``(k, b)`` (``GW`` the gradient of the model at ``V``, polar factor included), from its
    formula: ``(U_perp' dG B' + U_perp' G_W b', k' U_perp' G_W + U' dG)``. For tests: the
    Newton systems are solved from the blocks this formula gives."""
    U, Up, S, Q = _spectral_chart(V)
    B = S[:, None] * Q.T
    dW = Up @ (k @ B) + U @ b
    UtdW = U.T @ dW
    M = UtdW @ Q
    dPhi = U @ ((M - M.T) / (S[:, None] + S[None, :]) @ Q.T)
    dPhi += (dW - U @ UtdW) @ Q @ (Q.T / S[:, None])
    dPhi += U @ ((UtdW - M @ Q.T) / S[:, None])
    dG = _hess_apply(H, dW) + 2.0 * rho * dW + lam * dPhi
    UpGW = Up.T @ GW
    return Up.T @ dG @ B.T + UpGW @ b.T, k.T @ UpGW + U.T @ dG


def _spectral_newton(
    V: np.ndarray,
    W: np.ndarray,
    G: np.ndarray,
    H: np.ndarray,
    lam: float,
    rho: float,
    groups: str,
    model: Callable[[np.ndarray], float],
    max_iter: int = 30,
    max_damped: int = 2,
) -> np.ndarray:
    r"""Minimise the model (trace norm) on the manifold of matrices of ``V``'s rank.

    On the rank-``r`` matrices the nuclear norm is smooth. At ``V = U S Q'`` (thin SVD,
    ``r`` nonzero singular values) the chart ``(K, B) -> (U + U_perp K) B`` (``K``
    ``(d - r) x r``, ``B`` ``r x T``; ``(K, B) = (0, S Q')`` is ``V``) parametrises the
    rank-``r`` matrices near ``V``, and the model in the chart, ``m((U + U_perp K) B)``, is
    minimised by Newton's method, the chart re-centred at every iterate. With
    ``G_W = grad q(V) + lam U Q'`` (``q`` the smooth part of the model) its gradient at
    ``K = 0`` is ``(U_perp' G_W B', U' G_W)``, and its Hessian along ``(k, b)``, with
    ``dW = U_perp k B + U b`` (a tangent vector), is

        (U_perp' dG B' + U_perp' G_W b',  k' U_perp' G_W + U' dG),
        dG = H[dW] + 2 rho dW + lam (U Om Q' + (I - UU') dW Q S^{-1} Q' + U S^{-1} U' dW (I - QQ')),

    the last term the derivative of the polar factor ``U Q'`` along ``dW``
    (``Om_ij = (M_ij - M_ji) / (s_i + s_j)``, ``M = U' dW Q``; :func:`_spectral_hessian_apply`).
    The Newton system is solved directly, by blocks:

    - ``B``-block: per task ``P_t = U' H_t U + 2 rho I + lam S^{-1}`` (``r x r``) plus
      ``lam J C J'``, ``J: M -> M Q'`` and ``C(M) = Om(M) - S^{-1} M`` on ``r x r``
      matrices (singular); inverted by the Woodbury identity, one ``r^2 x r^2`` system;
    - ``K``-block: ``sum_t (b_t b_t') kron U_perp' H_t U_perp + (2 rho S^2 + lam S) kron I``
      (dense, ``(d - r) r`` unknowns), and the coupling
      ``U' H_t U_perp k b_t + (k' U_perp' G_W)_t``; the Schur complement on ``K`` is
      factorised by Cholesky. Where it is not positive definite (far from a minimiser, the
      term in ``G_W`` makes the Hessian indefinite) that term is dropped (Gauss-Newton).

    Cost per step ``O(T r^2 (d - r) r + r^6)`` flops, no pass over the data. The step is
    damped by Armijo backtracking on the model (:func:`_newton_line_search`); after
    ``max_damped`` damped steps the finish gives up (the point is then far from the
    minimiser on this manifold, and the proximal-gradient iterations continue). The rank
    comes from the proximal-gradient iterations that precede, which overestimate it on
    ill-conditioned models (a singular value that should vanish shrinks by ``lam / Lip``
    a step): before each step the smallest singular value is dropped when the model is
    lower without it (on the tabular path this cut the inner FISTA iterations from 2,870
    to 1,880, the Newton steps unchanged). Returns ``V`` unchanged when no step lowers the
    model.
    ``groups`` is unused (the finishes share one signature).
    """
    f = model(V)
    scale = max(abs(f), lam * float(sla.svdvals(V).sum()))
    damped = 0
    prev = None  # the point before a step taken at rounding level, and its gradient norm
    for _ in range(max_iter):
        chart = _spectral_chart(V)
        if chart is None:
            break
        U, Up, S, Q = chart
        if S.size > 1:  # the smallest singular value, dropped if the model is lower without it
            V_drop = V - S[-1] * np.outer(U[:, -1], Q[:, -1])
            f_drop = model(V_drop)
            if f_drop < f:
                V, f, prev = V_drop, f_drop, None
                continue
        B = S[:, None] * Q.T
        GW = G + _hess_apply(H, V - W) + 2.0 * rho * V + lam * (U @ Q.T)
        UpGW = Up.T @ GW
        gK, gB = UpGW @ B.T, U.T @ GW
        gnorm = np.sqrt(float(np.vdot(gK, gK) + np.vdot(gB, gB)))
        if prev is not None:
            if not gnorm < 0.5 * prev[2]:  # the step at rounding level did not pay: undo it
                V, f = prev[0], prev[1]
                break
            prev = None
        step = _spectral_step(H, U, Up, S, Q, B, UpGW, gK, gB, lam, rho)
        if step is None:
            break
        xk, xb = step
        dec = float(np.vdot(gK, xk) + np.vdot(gB, xb))
        Uk = Up @ xk
        found = _newton_line_search(model, f, dec, scale, lambda a: (U - a * Uk) @ (B - a * xb))
        if found is None:
            break
        if found[2]:
            prev = (V, f, gnorm)
        V, f = found[0], found[1]
        damped += found[3] < 1.0
        if damped >= max_damped:  # far from the manifold's minimiser: back to proximal gradient
            break
    return V


def _spectral_step(
    H: np.ndarray,
    U: np.ndarray,
    Up: np.ndarray,
    S: np.ndarray,
    Q: np.ndarray,
    B: np.ndarray,
    UpGW: np.ndarray,
    gK: np.ndarray,
    gB: np.ndarray,
    lam: float,
    rho: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The Newton step ``(k, b)`` of :func:`_spectral_newton`: the solution of
    ``Hess (k, b) = (gK, gB)`` in the chart at ``V = U diag(S) Q'`` (``B = diag(S) Q'``,
    ``UpGW = U_perp' G_W``), by the blocks of that docstring; ``None`` where a block is
    singular or neither the Hessian nor its Gauss-Newton part has a positive definite
    Schur complement."""
    T, r, m = Q.shape[0], S.size, Up.shape[1]
    HU = np.matmul(H, U)  # (T, d, r)
    P = np.matmul(U.T, HU)
    idx = np.arange(r)
    P[:, idx, idx] += 2.0 * rho + lam / S
    try:
        Pinv = np.linalg.inv(P)
    except np.linalg.LinAlgError:
        return None
    rr = r * r
    a = (1.0 / (S[:, None] + S[None, :])).ravel()
    c_diag = lam * (a - np.repeat(1.0 / S, r))  # C: c_diag on entry ij, -lam a_ij on M_ji
    swap = (np.arange(rr) % r) * r + np.arange(rr) // r  # the position of M_ji

    def C(X: np.ndarray) -> np.ndarray:
        return c_diag[:, None] * X - (lam * a)[:, None] * X[swap]

    QQ = (Q[:, :, None] * Q[:, None, :]).reshape(T, rr)  # (t, (j, l))
    R = (Pinv.reshape(T, rr).T @ QQ).reshape(r, r, r, r).transpose(0, 3, 1, 2).reshape(rr, rr)  # J'P^{-1}J
    try:
        cap = sla.lu_factor(np.eye(rr) + C(R), check_finite=False)
    except (np.linalg.LinAlgError, ValueError):
        return None
    if not np.all(np.isfinite(cap[0])) or np.abs(np.diagonal(cap[0])).min() <= _EPS * np.abs(np.diagonal(cap[0])).max():
        return None

    def solve_b(X: np.ndarray) -> np.ndarray:
        """The B-block's inverse on a stack (n, r, T)."""
        y = np.matmul(Pinv, X.transpose(2, 1, 0)).transpose(2, 1, 0)
        w = sla.lu_solve(cap, C((y @ Q).reshape(-1, rr).T), check_finite=False).T.reshape(-1, r, r)
        return y - np.matmul(Pinv, (w @ Q.T).transpose(2, 1, 0)).transpose(2, 1, 0)

    xb0 = solve_b(gB[None])[0]
    if m == 0:
        return np.zeros((0, r)), xb0
    Hp = np.matmul(Up.T, np.matmul(H, Up))  # (T, m, m)
    BB = (B[:, None, :] * B[None, :, :]).reshape(rr, T)
    Kkk = (BB @ Hp.reshape(T, m * m)).reshape(r, r, m, m).transpose(2, 0, 3, 1).reshape(m * r, m * r)
    Kkk[np.diag_indices(m * r)] += np.tile(2.0 * rho * S * S + lam * S, m)
    UHUp = np.matmul(U.T, np.matmul(H, Up))  # (T, r, m)
    # the coupling as a stack over the K unknowns (a, j): Hbk[(a, j)][:, t] = U'H_tUp[:, a] b_t[j] + e_j UpGW[a, t]
    data_part = (UHUp.transpose(2, 1, 0)[:, None, :, :] * B[None, :, None, :]).reshape(m * r, r, T)
    curv_part = (np.eye(r)[None, :, :, None] * UpGW[:, None, None, :]).reshape(m * r, r, T)
    for gauss_newton in (False, True):
        Hbk = data_part if gauss_newton else data_part + curv_part
        Y = solve_b(Hbk)  # Hbb^{-1} Hbk, (m r, r, T)
        Y2 = Y.reshape(m * r, r * T)
        schur = Kkk - Hbk.reshape(m * r, r * T) @ Y2.T
        try:
            factor = sla.cho_factor(0.5 * (schur + schur.T), check_finite=False)
        except np.linalg.LinAlgError:
            continue
        rhs = gK.ravel() - Y2 @ gB.ravel()
        xk = sla.cho_solve(factor, rhs, check_finite=False)
        xb = xb0 - (xk @ Y2).reshape(r, T)
        if np.all(np.isfinite(xk)) and np.all(np.isfinite(xb)):
            return xk.reshape(m, r), xb
    return None


#: Singular values below this fraction of the largest count as zero in :func:`_spectral_newton`
#: (those of a proximal step's output are exact zeros up to the rounding of the SVD).
_RANK_RTOL = 1e-12



def _forcing(r_W: float, r0: float | None) -> float:
    """The inner tolerance relative to ``r_W``: ``min(0.1, r_W / r0)``, at least
    ``_ETA_MIN``."""
    return 0.1 if r0 is None else min(0.1, max(r_W / r0, _ETA_MIN))


#: Smallest forcing term. Near the solution ``r_W / r0`` falls below what the rounding of
#: the model's gradient lets FISTA resolve, and the inner solve then ran to ``max_inner``
#: (20,000 iterations, 3 s at one point of usps1.mat's trace-norm path, most of the path's
#: time); with this floor each outer iteration still gains about three digits.
_ETA_MIN = 1e-3


#: Largest number of nonzero unknowns the support Newton step factorises densely.
_SUPPORT_NEWTON_MAX = 2000


def _model_step(
    W: np.ndarray,
    G: np.ndarray,
    H: np.ndarray,
    lam: float,
    rho: float,
    prox: Callable[[np.ndarray, float], np.ndarray],
    penalty: Callable[[np.ndarray], float],
    groups: str | None,
    r0: float | None,
    max_inner: int,
) -> tuple[np.ndarray, float, int]:
    """Minimise the model ``m`` of the module docstring from ``V = W``, to
    ``eta = _forcing(r_W, r0)`` times the residual ``r_W`` at ``W`` (``r0 = None``: the
    first outer iteration, ``eta = 0.1``): restarted FISTA in chunks of growing length,
    each followed (for ``groups`` "rows" or "entries") by Newton's method on the support
    found (:func:`_support_newton`) or (``"spectral"``) on the manifold of the rank found
    (:func:`_spectral_newton`), which finish ill-conditioned models that FISTA alone does
    not.

    Returns ``(V, r_W, iterations)``: the approximate minimiser, the proximal-gradient
    residual of the model at ``V = W`` (a first-order optimality measure of ``F`` at
    ``W``), and the FISTA iterations used.
    """
    lip = max(float(np.linalg.eigvalsh(H)[:, -1].max()), 0.0) + 2.0 * rho
    if lip <= 0.0:  # a flat model: V = prox(W - G) is as good as any step
        lip = 1.0
    step = 1.0 / lip

    def grad(V: np.ndarray) -> np.ndarray:
        return G + np.matmul(H, (V - W).T[:, :, None])[:, :, 0].T + 2.0 * rho * V

    def residual(V: np.ndarray) -> float:
        return float(np.linalg.norm(V - prox(V - step * grad(V), step * lam))) / step

    def model(V: np.ndarray) -> float:
        D = V - W
        return float(np.vdot(G, D) + 0.5 * np.vdot(D, np.matmul(H, D.T[:, :, None])[:, :, 0].T)) + rho * float(
            np.sum(V * V)
        ) + lam * penalty(V)

    r_W = residual(W)
    if r_W == 0.0:
        return W, 0.0, 0
    target = _forcing(r_W, r0) * r_W
    V, it, chunk = W, 0, 50
    while it < max_inner:
        Y, t, stop = V, 1.0, min(it + chunk, max_inner)
        while it < stop:
            g = grad(Y)
            V_new = prox(Y - step * g, step * lam)
            if np.vdot(Y - V_new, V_new - V) > 0:  # gradient restart (O'Donoghue & Candes)
                t = 1.0
            t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            Y = V_new + ((t - 1.0) / t_new) * (V_new - V)
            V, t = V_new, t_new
            it += 1
            if it % 10 == 0 and residual(V) <= target:
                return V, r_W, it
        if groups is not None:
            finish = _spectral_newton if groups == "spectral" else _support_newton
            V_pol = finish(V, W, G, H, lam, rho, groups, model)
            if V_pol is not V and model(V_pol) <= model(V):
                V = V_pol
                if residual(V) <= target:
                    return V, r_W, it
        chunk *= 2
    return V, r_W, it


def prox_newton(
    oracle: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]],
    value: Callable[[np.ndarray], float],
    prox: Callable[[np.ndarray, float], np.ndarray],
    penalty: Callable[[np.ndarray], float],
    certificate: Callable[[np.ndarray], tuple[float, float]],
    W: np.ndarray,
    lam: float,
    rho: float,
    *,
    tol: float,
    max_iter: int,
    groups: str | None = None,
    max_inner: int = 20_000,
    history: list[float] | None = None,
) -> tuple[np.ndarray, float, int, float]:
    """Proximal Newton with Armijo damping (module docstring).

    Parameters
    ----------
    oracle : callable
        ``oracle(W) -> (f(W), grad f(W), H)``, ``H`` of shape (T, d, d): the per-task
        Hessians of ``f`` (``rho`` not included).
    value : callable
        ``value(W) -> f(W)`` (cheaper than ``oracle``; used by the line search).
    prox : callable
        ``prox(V, tau) = argmin_W tau Omega(W) + 1/2 ||W - V||_F^2``.
    penalty : callable
        ``Omega``.
    certificate : callable
        ``certificate(W) -> (P, D)``: the primal value and a lower bound on the optimum;
        the method stops when ``(P - D) / P <= tol`` for the best ``P`` and ``D`` seen.
    W : numpy.ndarray
        (d, T) start.
    lam, rho : float
        ``lam > 0``, ``rho >= 0``.
    tol : float
        Relative gap tolerance.
    max_iter : int
        Outer iterations.
    groups : {"rows", "entries", "spectral"}, optional
        The atoms of ``Omega`` when it is the l2,1 (``"rows"``) or l1 (``"entries"``)
        norm: the inner solve then finishes with Newton's method on the support
        (:func:`_support_newton`); ``"spectral"`` (the trace norm): Newton's method on the
        manifold of the current rank (:func:`_spectral_newton`); ``None``: FISTA only.
    max_inner : int, default=20000
        FISTA iterations per model.
    history : list, optional
        The certificate after each outer iteration is appended to it.

    Returns
    -------
    (W, P, iterations, certificate)
        The best iterate (lowest ``P``), its value, the outer iterations, the relative
        gap of the best value and the best bound.
    """
    P, D = certificate(W)
    best, best_P, best_D = W, P, D
    cert = max(best_P - best_D, 0.0) / best_P if best_P > 0 else 0.0
    r0, it = None, 0
    f, G, H = oracle(W)
    while cert > tol and it < max_iter:
        F = f + rho * float(np.sum(W * W)) + lam * penalty(W)
        V, r_W, _ = _model_step(W, G, H, lam, rho, prox, penalty, groups, r0, max_inner)
        if r0 is None:
            r0 = r_W if r_W > 0 else 1.0
        Dlt = V - W
        decrease = float(np.vdot(G + 2.0 * rho * W, Dlt)) + lam * (penalty(V) - penalty(W))
        it += 1
        alpha, accepted = 1.0, False
        while decrease < 0.0 and alpha >= 1e-10:
            W_try = W + alpha * Dlt
            F_try = value(W_try) + rho * float(np.sum(W_try * W_try)) + lam * penalty(W_try)
            if F_try <= F + _ARMIJO * alpha * decrease:
                accepted = True
                break
            alpha *= 0.5
        if not accepted:
            # F no longer resolves the model's decrease (it is below rounding) but the
            # certificate, built from the gradient, may still improve: take the model's
            # minimiser if F does not rise beyond rounding and it tightens the bound.
            W_try = V
            F_try = value(W_try) + rho * float(np.sum(W_try * W_try)) + lam * penalty(W_try)
            if not F_try <= F + _ROUNDING * abs(F):
                break
            P, D = certificate(W_try)
            if not (P < best_P or D > best_D):
                break
        else:
            P, D = certificate(W_try)
        W = W_try
        if P <= best_P:
            best, best_P = W, P
        best_D = max(best_D, D)
        cert = max(best_P - best_D, 0.0) / best_P if best_P > 0 else 0.0
        if history is not None:
            history.append(cert)
        if cert > tol:
            f, G, H = oracle(W)
    return best, best_P, it, cert
