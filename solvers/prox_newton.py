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
the model's gradient). For the l2,1 and l1 norms the inner FISTA is interleaved with
Newton's method on the support it finds, which finishes models too ill-conditioned for
FISTA (:func:`_support_newton`).
The step ``V - W`` is then damped by Armijo backtracking on ``F``, with the decrease
``<G + 2 rho W, D> + lam (Omega(V) - Omega(W))`` of Lee, Sun & Saunders.

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
    """
    d, T = V.shape
    if groups == "rows":
        mask = np.repeat((np.abs(V).sum(axis=1) > 0)[:, None], T, axis=1)
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
    pos = np.full(d * T, -1)
    pos[order] = np.arange(n)

    def unflat(x: np.ndarray) -> np.ndarray:
        out = np.zeros(d * T)
        out[order] = x
        return out.reshape(T, d).T

    def grad_hess(Vc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Gm = G + np.matmul(H, (Vc - W).T[:, :, None])[:, :, 0].T + 2.0 * rho * Vc
        K = K0.copy()
        if groups == "rows":
            norms = np.linalg.norm(Vc, axis=1)
            safe = np.where(norms > 0, norms, 1.0)
            Gm = Gm + lam * Vc / safe[:, None]
            rows = np.flatnonzero(norms > 0)
            idx = pos[rows[:, None] + d * np.arange(T)[None, :]]  # (rows, T) positions in K
            U = Vc[rows] / norms[rows, None]
            blocks = (np.eye(T)[None] - U[:, :, None] * U[:, None, :]) * (lam / norms[rows])[:, None, None]
            K[idx[:, :, None], idx[:, None, :]] += blocks
        else:
            Gm = Gm + lam * signs
        return Gm.T.ravel()[order], K

    f = model(V)
    for _ in range(max_iter):
        g, K = grad_hess(V)
        try:
            p = sla.cho_solve(sla.cho_factor(K), g)
        except np.linalg.LinAlgError:  # singular on the support (rank-deficient data, rho = 0)
            p = sla.lstsq(K, g)[0]
        dec = float(g @ p)
        if not dec > 64 * _EPS * max(abs(f), 1.0):
            break
        step, alpha = unflat(p), 1.0
        while alpha >= 1e-10:
            V_new = V - alpha * step
            kept = (np.abs(V_new).sum(axis=1) > 0)[mask[:, 0]] if groups == "rows" else (np.sign(V_new) == signs)[mask]
            if np.all(kept):
                f_new = model(V_new)
                if f_new <= f - 1e-4 * alpha * dec:
                    break
            alpha *= 0.5
        else:
            break
        V, f = V_new, f_new
    return V


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
    found (:func:`_support_newton`), which finishes ill-conditioned models that FISTA alone
    does not.

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
            V_pol = _support_newton(V, W, G, H, lam, rho, groups, model)
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
    groups : {"rows", "entries"}, optional
        The atoms of ``Omega`` when it is the l2,1 (``"rows"``) or l1 (``"entries"``)
        norm: the inner solve then finishes with Newton's method on the support
        (:func:`_support_newton`). ``None`` (the trace norm): FISTA only.
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
