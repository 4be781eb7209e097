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

from dataclasses import dataclass
from typing import Callable

import numpy as np

from solvers.prox_newton_spectral import _spectral_newton
from solvers.prox_newton_support import _ARMIJO, _ROUNDING, _support_newton


__all__ = ["prox_newton"]


def _forcing(r_W: float, r0: float | None) -> float:
    """The inner tolerance relative to ``r_W``: ``min(0.1, r_W / r0)``, at least
    ``_ETA_MIN``."""
    return 0.1 if r0 is None else min(0.1, max(r_W / r0, _ETA_MIN))


#: Smallest forcing term. Near the solution ``r_W / r0`` falls below what the rounding of
#: the model's gradient lets FISTA resolve, and the inner solve then ran to ``max_inner``
#: (20,000 iterations, 3 s at one point of usps1.mat's trace-norm path, most of the path's
#: time); with this floor each outer iteration still gains about three digits.
_ETA_MIN = 1e-3


@dataclass(frozen=True)
class _Norm:
    """The penalty ``Omega`` of :func:`prox_newton`: its proximal operator ``prox``, its
    value ``value`` and its atoms ``groups`` (see :func:`prox_newton`)."""

    prox: Callable[[np.ndarray, float], np.ndarray]
    value: Callable[[np.ndarray], float]
    groups: str | None


def _model_step(
    W: np.ndarray,
    G: np.ndarray,
    H: np.ndarray,
    lam: float,
    rho: float,
    omega: _Norm,
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
    ``W``), and the FISTA iterations used. ``omega`` is the penalty (its ``prox``, value
    and ``groups``).
    """
    prox, penalty, groups = omega.prox, omega.value, omega.groups
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
    omega = _Norm(prox, penalty, groups)
    f, G, H = oracle(W)
    while cert > tol and it < max_iter:
        F = f + rho * float(np.sum(W * W)) + lam * penalty(W)
        V, r_W, _ = _model_step(W, G, H, lam, rho, omega, r0, max_inner)
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
