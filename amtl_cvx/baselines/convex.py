"""The convex multi-task baselines: pooled, mean-regularised, l2,1 and trace norm.

Each is stated in CVXPY (:mod:`amtl_cvx.problems.baselines`, ``backend="cvxpy"``) and
solved fast by :mod:`solvers.baselines` (``backend="fast"``, the default); see
:mod:`amtl_cvx.baselines.multitask` for the models, their scaling and the solvers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from amtl_cvx._validation import check_scalar
from amtl_cvx.baselines._common import _check_backend, _check_data, _warn_unless
from amtl_cvx.data import MultiTaskData
from amtl_cvx.algorithms import blas_limit
from solvers import baselines as fast

__all__ = ["fit_pooled", "fit_mean_regularized", "fit_l21", "fit_trace_norm"]


def fit_pooled(
    data: MultiTaskData, lam: float, loss: str = "squared", *, backend: str = "fast", solver: str | None = None
) -> np.ndarray:
    """One model for all tasks: ``min_w sum_t L_t(w) + lam ||w||^2``; return ``W`` (d x T)
    with equal columns.

    Parameters
    ----------
    data : MultiTaskData
    lam : float
        ``lam > 0``.
    loss : {"squared", "logistic"}
    backend : {"fast", "cvxpy"}
        ``"fast"``: the closed form ``(sum_t X_t'X_t / n_t + 2 lam I) w = sum_t X_t'y_t / n_t``
        (squared) or Newton (logistic), :func:`solvers.baselines.solve_pooled`;
        ``"cvxpy"``: :class:`amtl_cvx.problems.baselines.PooledProblem`.
    solver : str, optional
        The CVXPY solver (``backend="cvxpy"`` only; default: the ladder).
    """
    data = _check_data(data, loss)
    lam = check_scalar(lam, "lam", strict=True)
    _check_backend(backend, solver)
    if backend == "cvxpy":
        from amtl_cvx.problems.baselines import PooledProblem

        return PooledProblem(data, loss).set(lam).solve(solver).solution
    result = fast.solve_pooled(data.Xs, data.ys, lam, loss=loss)
    _warn_unless(result, "fit_pooled")
    return np.repeat(result.solution[:, None], data.n_tasks, axis=1)


def fit_mean_regularized(
    data: MultiTaskData,
    lam: float,
    rho: float,
    loss: str = "squared",
    *,
    backend: str = "fast",
    solver: str | None = None,
) -> np.ndarray:
    """Mean-regularised MTL: ``min_W sum_t L_t(w_t) + lam sum_t ||w_t - wbar||^2 + rho ||W||_F^2``.

    Parameters
    ----------
    data : MultiTaskData
    lam : float
        ``lam >= 0``: pull of every task towards the mean model ``wbar``.
    rho : float
        ``rho > 0``: ridge on every task.
    loss : {"squared", "logistic"}
    backend : {"fast", "cvxpy"}
        ``"fast"``: the one linear system (squared; reduced to a d x d system, cost
        ``O(T d^3)``) or Newton on it (logistic), :func:`solvers.baselines.solve_mean_regularized`;
        ``"cvxpy"``: :class:`amtl_cvx.problems.baselines.MeanRegularizedProblem`.
    solver : str, optional

    Returns
    -------
    numpy.ndarray, shape (d, T)
    """
    data = _check_data(data, loss)
    lam = check_scalar(lam, "lam")
    rho = check_scalar(rho, "rho", strict=True)
    _check_backend(backend, solver)
    if backend == "cvxpy":
        from amtl_cvx.problems.baselines import MeanRegularizedProblem

        return MeanRegularizedProblem(data, loss).set(lam, rho).solve(solver).solution
    result = fast.solve_mean_regularized(data.Xs, data.ys, lam, rho, loss=loss)
    _warn_unless(result, "fit_mean_regularized")
    return result.solution


def _fit_norm(penalty: str, what: str, data: Any, lam: Any, loss: str, options: dict) -> np.ndarray:
    """:func:`fit_l21` (``penalty="l21"``) or :func:`fit_trace_norm` (``"trace"``); ``what``
    names the caller in warnings; ``options`` holds the callers' keyword arguments."""
    rho, backend, solver = options["rho"], options["backend"], options["solver"]
    data = _check_data(data, loss)
    lam = check_scalar(lam, "lam", strict=True)
    rho = check_scalar(rho, "rho")
    _check_backend(backend, solver)
    if backend == "cvxpy":
        from amtl_cvx.problems.baselines import L21Problem, TraceNormProblem

        cls = L21Problem if penalty == "l21" else TraceNormProblem
        return cls(data, loss).set(lam, rho).solve(solver).solution
    tol = check_scalar(options["tol"], "tol", strict=True)
    with blas_limit(options["blas_threads"]):
        result = fast.solve_penalized(
            data.Xs, data.ys, lam, penalty=penalty, rho=rho, loss=loss, W0=options["W0"], tol=tol,
            max_iter=options["max_iter"]
        )
    _warn_unless(result, what)
    return result.solution


def fit_l21(data: MultiTaskData, lam: float, loss: str = "squared", *, rho: float = 0.0, backend: str = "fast",
            solver: str | None = None, tol: float = 1e-9, max_iter: int = 100_000, W0: np.ndarray | None = None,
            blas_threads: int | None = 1) -> np.ndarray:
    """Joint feature selection: ``min_W sum_t L_t(w_t) + lam sum_j ||W[j, :]||_2 + rho ||W||_F^2``.

    Parameters
    ----------
    data : MultiTaskData
    lam : float
        ``lam > 0``; ``W = 0`` for ``lam >= max_j ||G[j, :]||_2``, ``G`` the gradient of
        the losses at ``W = 0`` (:func:`solvers.baselines.lambda_max`).
    loss : {"squared", "logistic"}
    rho : float, default=0.0
        ``rho >= 0`` (0: the standard formulation).
    backend : {"fast", "cvxpy"}
        ``"fast"``: proximal Newton (squared loss: constant Hessians, Newton's method on
        the row support to finish) to a relative duality gap ``tol``
        (:func:`solvers.baselines.solve_penalized`);
        ``"cvxpy"``: :class:`amtl_cvx.problems.baselines.L21Problem`.
    solver : str, optional
    tol, max_iter :
        The fast solver's tolerance and iteration budget.
    W0 : numpy.ndarray, optional
        (d, T) start of the fast solver (a warm start, for instance the solution at a
        larger ``lam``); ignored by ``backend="cvxpy"``.
    blas_threads : int or None, default=1
        BLAS threads of the fast solver (:func:`amtl_cvx.algorithms.blas_limit`; ``None``: as
        configured): its products are small (d x d per task).

    Returns
    -------
    numpy.ndarray, shape (d, T)
    """
    return _fit_norm("l21", "fit_l21", data, lam, loss, dict(
        rho=rho, backend=backend, solver=solver, tol=tol, max_iter=max_iter, W0=W0, blas_threads=blas_threads))


def fit_trace_norm(data: MultiTaskData, lam: float, loss: str = "squared", *, rho: float = 0.0, backend: str = "fast",
                   solver: str | None = None, tol: float = 1e-9, max_iter: int = 100_000, W0: np.ndarray | None = None,
                   blas_threads: int | None = 1) -> np.ndarray:
    """Low rank: ``min_W sum_t L_t(w_t) + lam ||W||_* + rho ||W||_F^2``.

    Parameters are those of :func:`fit_l21`; ``W = 0`` for ``lam >= ||G||_2`` (the
    spectral norm of the gradient at 0). The CVXPY statement
    (:class:`amtl_cvx.problems.baselines.TraceNormProblem`) is a semidefinite program:
    Clarabel only, and its memory grows like ``(d + T)^4``.
    """
    return _fit_norm("trace", "fit_trace_norm", data, lam, loss, dict(
        rho=rho, backend=backend, solver=solver, tol=tol, max_iter=max_iter, W0=W0, blas_threads=blas_threads))
