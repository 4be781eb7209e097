"""Pieces shared by the baselines' solvers: input checks, per-task loss terms,
damped Newton with its relative-decrement certificate, the result object."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import scipy.linalg as sla
from scipy.special import expit

from solvers.losses import _check_array, _check_tasks, get_loss
from solvers.result import SolverResult


_EPS = np.finfo(np.float64).eps


def _prepare(Xs: Sequence[Any], ys: Sequence[Any], loss: str) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    lossf = get_loss(loss)
    Xl, yl = _check_tasks(Xs, ys, lossf)
    return Xl, yl, lossf.name


def _check_start(W0: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    if W0 is None:
        return np.zeros(shape)
    W = _check_array(W0, name, ndim=len(shape))
    if W.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {W.shape}")
    return W.copy()


def _task_terms(X: np.ndarray, y: np.ndarray, w: np.ndarray, loss: str) -> tuple[float, np.ndarray, np.ndarray | None]:
    """``(L(w), grad L(w), D)`` of one task: ``Hess = X' diag(D) X / n`` (``D = None``:
    ones, the squared loss)."""
    n = X.shape[0]
    z = X @ w
    if loss == "squared":
        r = z - y
        return float(r @ r) / (2.0 * n), X.T @ r / n, None
    m = y * z
    s = expit(-m)
    return float(np.sum(np.logaddexp(0.0, -m))) / n, -(X.T @ (y * s)) / n, s * expit(m)


def _hessian(X: np.ndarray, D: np.ndarray | None) -> np.ndarray:
    """``X' diag(D) X / n`` (``D = None``: all ones, the squared loss)."""
    return (X.T @ X if D is None else (X.T * D) @ X) / X.shape[0]


def _newton(
    value_grad: Callable[[np.ndarray], tuple[float, np.ndarray, Callable[[], Any]]],
    factorize: Callable[[Any], Callable[[np.ndarray], np.ndarray]],
    x: np.ndarray,
    tol: float,
    max_iter: int,
    history: list[float] | None,
    *,
    quadratic: bool = False,
) -> tuple[np.ndarray, int, float]:
    """Damped Newton, certified by the relative Newton decrement.

    ``value_grad(x) -> (f, g, hess)`` with ``hess()`` the Hessian (evaluated only where a
    step is computed); ``factorize(H) -> (g -> H^{-1} g)``. With ``quadratic=True`` the
    Hessian is constant and factorised once: the first step is the direct solve, the
    next ones iterative refinement.

    The certificate is ``sqrt(g'H^{-1}g)(x) / sqrt(g'H^{-1}g)(0)``; for a quadratic its
    square is ``(F(x) - F*) / (F(0) - F*)`` exactly, so it means the same at every scale of
    the data and of the weights; unlike ``||g||``, it is not inflated by the rounding of
    stiff directions (the mean-regularised model at ``lam = 1e7`` computes its gradient
    only to ``eps * lam ||W||``). Armijo backtracking; where ``F`` no longer resolves the
    decrease (below rounding), a step is also accepted when it does not raise ``F`` beyond
    rounding and shrinks ``||g||``. Returns ``(x, iterations, certificate)``; the
    certificate is that of the returned point.
    """
    f0, g0, hess0 = value_grad(np.zeros_like(x))
    solver0 = factorize(hess0())
    dec0 = float(np.vdot(g0, solver0(g0)))
    ref = np.sqrt(dec0) if dec0 > 0 else 1.0
    f, g, hess = (f0, g0, hess0) if not np.any(x) else value_grad(x)
    it = 0
    while True:
        p = (solver0 if quadratic else factorize(hess()))(g)
        dec = float(np.vdot(g, p))
        cert = np.sqrt(max(dec, 0.0)) / ref
        if history is not None:
            history.append(cert)
        if cert <= tol or it >= max_iter or not dec > 0:
            break
        step = _armijo(value_grad, x, p, dec, f, g)
        it += 1
        if step is None:
            break
        x, f, g, hess = step
    return x, it, cert


def _armijo(value_grad, x: np.ndarray, p: np.ndarray, dec: float, f: float, g: np.ndarray):
    """Backtracking along ``-p`` (``dec = g'p``): ``(x_new, f_new, g_new, extra)`` of the
    first ``alpha = 1, 1/2, ...`` with ``F`` lowered by ``1e-4 alpha dec``, or (where ``F``
    no longer resolves the decrease) not raised beyond rounding with a smaller gradient;
    ``None`` below ``alpha = 1e-12``. ``value_grad(x) -> (f, g, extra)``."""
    alpha, gnorm = 1.0, float(np.linalg.norm(g))
    while alpha >= 1e-12:
        x_new = x - alpha * p
        f_new, g_new, extra = value_grad(x_new)
        if f_new <= f - 1e-4 * alpha * dec or (f_new <= f + 64 * _EPS * abs(f) and np.linalg.norm(g_new) < gnorm):
            return x_new, f_new, g_new, extra
        alpha *= 0.5
    return None


def _cholesky(H: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    factor = sla.cho_factor(H)
    return lambda g: sla.cho_solve(factor, g)


def _result(solution, objective, n_iter, cert, tol, history) -> SolverResult:
    return SolverResult(
        solution=solution,
        objective=float(objective),
        n_iter=int(n_iter),
        converged=bool(cert <= tol),
        certificate=float(cert),
        tol=float(tol),
        history=tuple(history or ()),
    )
