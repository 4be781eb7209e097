"""The smooth baselines: the pooled model and mean-regularised MTL (Evgeniou & Pontil 2004),
by Cholesky with iterative refinement (squared loss) or Newton (logistic); see :mod:`solvers.baselines`."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import scipy.linalg as sla

from solvers.baselines._shared import _check_start, _cholesky, _hessian, _newton, _prepare, _result, _task_terms
from solvers.losses import _check_scalar, _check_solver_options
from solvers.result import SolverResult


__all__ = ["solve_pooled", "solve_mean_regularized"]


def solve_pooled(
    Xs: Sequence[Any],
    ys: Sequence[Any],
    lam: float,
    *,
    loss: str = "squared",
    w0: Any = None,
    tol: float = 1e-10,
    max_iter: int = 100,
    record_history: bool = False,
) -> SolverResult:
    """One model for all tasks: ``min_w sum_t L_t(w) + lam ||w||^2`` (``lam > 0``).

    Squared loss: ``(sum_t X_t'X_t / n_t + 2 lam I) w = sum_t X_t'y_t / n_t`` by Cholesky
    with iterative refinement; logistic loss: Newton. ``solution`` is ``w`` (d,);
    ``certificate`` the relative Newton decrement (see the module docstring); ``n_iter``
    counts steps (squared: the direct solve plus refinements; logistic: Newton steps).
    """
    Xl, yl, lossname = _prepare(Xs, ys, loss)
    lam = _check_scalar(lam, "lam", strict=True)
    tol, max_iter = _check_solver_options(tol, max_iter)
    d = Xl[0].shape[1]
    w = _check_start(w0, (d,), "w0")

    def value_grad(v: np.ndarray):
        f, g, Ds = lam * float(v @ v), 2.0 * lam * v, []
        for X, y in zip(Xl, yl):
            ft, gt, D = _task_terms(X, y, v, lossname)
            f, g = f + ft, g + gt
            Ds.append(D)
        return f, g, lambda: sum((_hessian(X, D) for X, D in zip(Xl, Ds)), 2.0 * lam * np.eye(d))

    hist: list[float] | None = [] if record_history else None
    w, n_iter, cert = _newton(value_grad, _cholesky, w, tol, max_iter, hist, quadratic=lossname == "squared")
    return _result(w, value_grad(w)[0], n_iter, cert, tol, hist)


class _MeanRegSystem:
    """Solves ``H_t x_t + 2 lam (x_t - xbar) + 2 rho x_t = r_t`` (all t) for given ``H_t``
    (one batched eigendecomposition of the stacked ``H_t``; every per-task solve batched)."""

    def __init__(self, Hs: list[np.ndarray], lam: float, rho: float) -> None:
        self.lam, self.rho = lam, rho
        h, U = np.linalg.eigh(np.stack(Hs))
        h = np.maximum(h, 0.0)
        self.U, self.inv = U, 1.0 / (h + 2 * (lam + rho))  # (T, d, d), (T, d)
        M = np.matmul(U * ((h + 2 * rho) * self.inv)[:, None, :], U.transpose(0, 2, 1)).sum(axis=0)
        self.M = sla.cho_factor(0.5 * (M + M.T))

    def _ainv(self, V: np.ndarray) -> np.ndarray:
        """``A_t^{-1} v_t`` for every column of ``V`` (d, T)."""
        c = np.matmul(self.U.transpose(0, 2, 1), V.T[:, :, None])[:, :, 0] * self.inv
        return np.matmul(self.U, c[:, :, None])[:, :, 0].T

    def __call__(self, R: np.ndarray) -> np.ndarray:
        if self.lam == 0.0:
            return self._ainv(R)
        xbar = sla.cho_solve(self.M, self._ainv(R).sum(axis=1))
        return self._ainv(R + 2 * self.lam * xbar[:, None])


def solve_mean_regularized(
    Xs: Sequence[Any],
    ys: Sequence[Any],
    lam: float,
    rho: float,
    *,
    loss: str = "squared",
    W0: Any = None,
    tol: float = 1e-10,
    max_iter: int = 100,
    record_history: bool = False,
) -> SolverResult:
    """``min_W sum_t L_t(w_t) + lam sum_t ||w_t - wbar||^2 + rho ||W||_F^2``.

    ``lam >= 0``, ``rho > 0``; ``wbar`` is the mean of the columns. Squared loss: the
    one linear system, solved through its d x d reduction (module docstring) with
    iterative refinement; logistic: Newton on the same structured Hessian.
    ``solution`` is ``W`` (d, T); ``certificate`` the relative Newton decrement.
    """
    Xl, yl, lossname = _prepare(Xs, ys, loss)
    lam = _check_scalar(lam, "lam", strict=False)
    rho = _check_scalar(rho, "rho", strict=True)
    tol, max_iter = _check_solver_options(tol, max_iter)
    T, d = len(Xl), Xl[0].shape[1]
    W = _check_start(W0, (d, T), "W0")

    def value_grad(V: np.ndarray):
        dev = V - V.mean(axis=1, keepdims=True)
        # centred twice: the rounding of V - vbar (eps ||V||) would leave a component along
        # the tasks' mean times 2 lam in the gradient, where the Hessian is soft; after the
        # second pass it is eps ||dev||: measured, the certificate reaches ~1e-12 at lam = 1e7
        dev -= dev.mean(axis=1, keepdims=True)
        f = lam * float(np.sum(dev * dev)) + rho * float(np.sum(V * V))
        G = 2.0 * lam * dev + 2.0 * rho * V
        Ds = []
        for t, (X, y) in enumerate(zip(Xl, yl)):
            ft, gt, D = _task_terms(X, y, V[:, t], lossname)
            f += ft
            G[:, t] += gt
            Ds.append(D)
        return f, G, lambda: [_hessian(X, D) for X, D in zip(Xl, Ds)]

    hist: list[float] | None = [] if record_history else None
    W, n_iter, cert = _newton(value_grad, lambda Hs: _MeanRegSystem(Hs, lam, rho), W, tol, max_iter, hist,
                              quadratic=lossname == "squared")
    return _result(W, value_grad(W)[0], n_iter, cert, tol, hist)
