"""Newton's method on the support: the second-order finish of :mod:`solvers.prox_newton`
for the l2,1 (rows) and l1 (entries) penalties, and the Armijo search both finishes share."""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.linalg as sla

_EPS = np.finfo(np.float64).eps


#: ``F`` values within this relative distance are equal to rounding (the sum over tasks of
#: losses computed to a few ulps each).
_ROUNDING = 64 * _EPS


#: Sufficient decrease of the Armijo search (fraction of the model's predicted decrease).
_ARMIJO = 1e-4


#: Largest number of nonzero unknowns the support Newton step factorises densely.
_SUPPORT_NEWTON_MAX = 2000



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

