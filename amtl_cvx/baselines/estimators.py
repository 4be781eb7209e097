"""scikit-learn estimators of the multi-task baselines, with the AMTL estimators' interface.

:class:`PooledRegressor`, :class:`MeanRegularizedRegressor`, :class:`L21Regressor`,
:class:`TraceNormRegressor`, :class:`GOMTLRegressor` and their ``...Classifier``
counterparts share the data layout (a task column) of :mod:`amtl_cvx.estimators`;
``transfer_matrix_`` is zero. Each pair is one solver class (its hyperparameters and fit
function) combined with :mod:`amtl_cvx.estimators`' regressor or classifier base.

:class:`_GOMTLSolver`'s constructor keeps its 10 keyword parameters: scikit-learn reads an
estimator's hyperparameters from its constructor's signature.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from amtl_cvx._validation import check_scalar
from amtl_cvx.baselines._common import _check_backend, _check_int
from amtl_cvx.baselines.convex import fit_l21, fit_mean_regularized, fit_pooled, fit_trace_norm
from amtl_cvx.baselines.gomtl import fit_gomtl
from amtl_cvx.baselines.objectives import (
    l21_objective,
    mean_regularized_objective,
    pooled_objective,
    trace_norm_objective,
)
from amtl_cvx.data import MultiTaskData
from amtl_cvx.estimators.base import _ClassifierBase, _RegressorBase
from amtl_cvx.algorithms import AMTLFit
from amtl_cvx.problems.objective import imbalance_weights

__all__ = [
    "PooledRegressor",
    "PooledClassifier",
    "MeanRegularizedRegressor",
    "MeanRegularizedClassifier",
    "L21Regressor",
    "L21Classifier",
    "TraceNormRegressor",
    "TraceNormClassifier",
    "GOMTLRegressor",
    "GOMTLClassifier",
]


def _as_fit(W: np.ndarray, objective: float, data: MultiTaskData, history=None, n_iter: int = 1,
            converged: bool = True) -> AMTLFit:
    T = data.n_tasks
    hist = np.array([objective] if history is None else history, dtype=np.float64)
    return AMTLFit(W, np.zeros((T, T)), float(objective), hist, int(n_iter), bool(converged),
                   c=imbalance_weights(data.n_samples))


class _BaselineSolver:
    """``_solve`` through a fit function of this module; ``B = 0``."""

    _hyper: tuple[tuple[str, bool], ...] = ()  # (name, strictly positive)

    def _set_common(self, backend, solver, fit_intercept, task_column, random_state) -> None:
        """Store the constructor parameters every baseline estimator has."""
        self.backend = backend
        self.solver = solver
        self.fit_intercept = fit_intercept
        self.task_column = task_column
        self.random_state = random_state

    def _check_solver_params(self) -> None:
        for name, strict in self._hyper:
            check_scalar(getattr(self, name), name, strict=strict)
        _check_backend(self.backend, self.solver)

    def _fit_W(self, data: MultiTaskData) -> np.ndarray:
        raise NotImplementedError

    def _objective(self, W: np.ndarray, data: MultiTaskData) -> float:
        raise NotImplementedError

    def _solve(self, data: MultiTaskData) -> AMTLFit:
        W = self._fit_W(data)
        return _as_fit(W, self._objective(W, data), data)


class _PooledSolver(_BaselineSolver):
    _hyper = (("lam", True),)

    def __init__(self, *, lam: float = 1.0, backend: str = "fast", solver: str | None = None,
                 fit_intercept: bool = True, task_column: int | str | None = 0, random_state=None) -> None:
        self.lam = lam
        self._set_common(backend, solver, fit_intercept, task_column, random_state)

    def _fit_W(self, data):
        return fit_pooled(data, self.lam, self._loss, backend=self.backend, solver=self.solver)

    def _objective(self, W, data):
        return pooled_objective(W[:, 0], data, lam=self.lam, loss=self._loss)


class _MeanRegularizedSolver(_BaselineSolver):
    _hyper = (("lam", False), ("rho", True))

    def __init__(self, *, lam: float = 1.0, rho: float = 0.1, backend: str = "fast", solver: str | None = None,
                 fit_intercept: bool = True, task_column: int | str | None = 0, random_state=None) -> None:
        self.lam = lam
        self.rho = rho
        self._set_common(backend, solver, fit_intercept, task_column, random_state)

    def _fit_W(self, data):
        return fit_mean_regularized(data, self.lam, self.rho, self._loss, backend=self.backend, solver=self.solver)

    def _objective(self, W, data):
        return mean_regularized_objective(W, data, lam=self.lam, rho=self.rho, loss=self._loss)


class _NormSolver(_BaselineSolver):
    _hyper = (("lam", True), ("rho", False))
    _fit_function: Callable[..., np.ndarray]
    _objective_function: Callable[..., float]

    def __init__(self, *, lam: float = 0.1, rho: float = 0.0, backend: str = "fast", solver: str | None = None,
                 fit_intercept: bool = True, task_column: int | str | None = 0, random_state=None) -> None:
        self.lam = lam
        self.rho = rho
        self._set_common(backend, solver, fit_intercept, task_column, random_state)

    def _fit_W(self, data):
        return type(self)._fit_function(data, self.lam, self._loss, rho=self.rho, backend=self.backend,
                                        solver=self.solver)

    def _objective(self, W, data):
        return type(self)._objective_function(W, data, lam=self.lam, rho=self.rho, loss=self._loss)


class _L21Solver(_NormSolver):
    _fit_function = fit_l21
    _objective_function = l21_objective


class _TraceNormSolver(_NormSolver):
    _fit_function = fit_trace_norm
    _objective_function = trace_norm_objective


class _GOMTLSolver(_BaselineSolver):
    _hyper = (("mu", True), ("lam", True), ("tol", False))

    def __init__(self, *, n_latent: int = 3, mu: float = 0.1, lam: float = 0.1, backend: str = "fast",
                 solver: str | None = None, tol: float = 1e-6, max_iter: int = 100, fit_intercept: bool = True,
                 task_column: int | str | None = 0, random_state=None) -> None:
        self.n_latent = n_latent
        self.mu = mu
        self.lam = lam
        self.tol = tol
        self.max_iter = max_iter
        self._set_common(backend, solver, fit_intercept, task_column, random_state)

    def _check_solver_params(self) -> None:
        super()._check_solver_params()
        _check_int(self.n_latent, "n_latent", 1, 2**31)
        _check_int(self.max_iter, "max_iter", 1, 2**31)

    def _solve(self, data):
        fit = fit_gomtl(data, self.n_latent, self.mu, self.lam, self._loss, backend=self.backend,
                        solver=self.solver, tol=self.tol, max_iter=self.max_iter)
        self.basis_, self.codes_ = fit.L, fit.S
        return _as_fit(fit.W, fit.objective, data, fit.objective_history, fit.n_iter, fit.converged)


_EST_DOC = """{what}, with the AMTL estimators' interface (:mod:`amtl_cvx.estimators`).

    Fits :func:`amtl_cvx.baselines.multitask.{function}` ({loss} loss); the data layout, the
    intercept (a regularised ones column) and ``task_column`` are those of
    :class:`amtl_cvx.estimators.{amtl}`. ``transfer_matrix_`` is zero and
    ``objective_`` the baseline's own objective.

    Parameters
    ----------
{params}
    backend : {{"fast", "cvxpy"}}, default="fast"
    solver : str, optional
        The CVXPY solver (``backend="cvxpy"`` only).
    fit_intercept : bool, default=True
    task_column : int, str or None, default=0
    random_state : None
        Accepted for compatibility; unused.
"""

_P_LAM_POOLED = "    lam : float, default=1.0\n        ``lam > 0``, the ridge on the shared model."
_P_MEANREG = ("    lam : float, default=1.0\n        ``lam >= 0``, pull towards the mean model.\n"
              "    rho : float, default=0.1\n        ``rho > 0``, ridge on every task.")
_P_NORM = ("    lam : float, default=0.1\n        ``lam > 0``, weight of the norm.\n"
           "    rho : float, default=0.0\n        ``rho >= 0``, ridge on ``W``.")
_P_GOMTL = ("    n_latent : int, default=3\n        ``k``, latent basis tasks (``<= d``).\n"
            "    mu : float, default=0.1\n        ``mu > 0``, sparsity of the codes.\n"
            "    lam : float, default=0.1\n        ``lam > 0``, ridge on the basis.\n"
            "    tol, max_iter : float, int\n        Stopping rule of :func:`fit_gomtl`.")


def _doc(what, function, params, regressor):
    return _EST_DOC.format(what=what, function=function, params=params,
                           loss="squared" if regressor else "logistic",
                           amtl="AMTLRegressor" if regressor else "AMTLClassifier")



def _pair(prefix: str, solver: type, function: str, params: str, regressor: str, classifier: str) -> tuple[type, type]:
    """The classes ``<prefix>Regressor`` (squared loss) and ``<prefix>Classifier`` (logistic)
    of one baseline: its solver class with the AMTL regressor's or classifier's base, each
    documented by :func:`_doc` with the description ``regressor`` or ``classifier``."""
    return tuple(
        type(name, (solver, base), {"__doc__": _doc(what, function, params, is_regressor),
                                    "__module__": __name__, "__qualname__": name})
        for name, base, what, is_regressor in ((prefix + "Regressor", _RegressorBase, regressor, True),
                                               (prefix + "Classifier", _ClassifierBase, classifier, False))
    )


PooledRegressor, PooledClassifier = _pair(
    "Pooled", _PooledSolver, "fit_pooled", _P_LAM_POOLED,
    "One ridge model for all tasks", "One L2-logistic model for all tasks")
MeanRegularizedRegressor, MeanRegularizedClassifier = _pair(
    "MeanRegularized", _MeanRegularizedSolver, "fit_mean_regularized", _P_MEANREG,
    "Mean-regularised multi-task regression", "Mean-regularised multi-task classification")
L21Regressor, L21Classifier = _pair(
    "L21", _L21Solver, "fit_l21", _P_NORM,
    "Joint feature selection (l2,1) regression", "Joint feature selection (l2,1) classification")
TraceNormRegressor, TraceNormClassifier = _pair(
    "TraceNorm", _TraceNormSolver, "fit_trace_norm", _P_NORM,
    "Trace-norm (low-rank) regression", "Trace-norm (low-rank) classification")
GOMTLRegressor, GOMTLClassifier = _pair(
    "GOMTL", _GOMTLSolver, "fit_gomtl", _P_GOMTL, "GO-MTL regression", "GO-MTL classification")
