"""The W-step problem: input checks, objective, gradient and the solvers' result.

:class:`_WStep` is a checked W-step (tasks, coupling, ``lam``, loss, weights, ridge);
both W-step solvers
(:mod:`solvers.tasks`, :mod:`solvers.first_order_tasks`) start from
:func:`_setup` / :func:`_start` and end with :meth:`_WStep.result`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from solvers.losses import Loss, _check_array, _check_scalar, _check_tasks, _check_transfer, get_loss
from solvers.result import SolverResult
from solvers.wstep.coupling import TaskGrams, _Coupling, _grams
from solvers.wstep.linalg import _dot


def _prepare(
    Xs: Sequence[Any],
    ys: Sequence[Any],
    B: Any,
    lam: Any,
    loss: str | Loss,
    weights: Any,
    ridge: Any,
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | sp.csr_matrix, float, Loss, np.ndarray, float]:
    lossf = get_loss(loss)
    Xl, yl = _check_tasks(Xs, ys, lossf)
    T = len(Xl)
    Bv = _check_transfer(B, T, "B")
    lam_f = _check_scalar(lam, "lam", strict=True)
    ridge_f = _check_scalar(ridge, "ridge", strict=False)
    if weights is None:
        a = np.ones(T)
    else:
        a = _check_array(weights, "weights", ndim=1)
        if a.shape != (T,):
            raise ValueError(f"weights must have shape ({T},), got {a.shape}")
        if np.any(a < 0):
            raise ValueError("weights must be nonnegative")
    return Xl, yl, Bv, lam_f, lossf, a, ridge_f



def _check_W(W: Any, d: int, T: int, name: str) -> np.ndarray:
    Wa = _check_array(W, name, ndim=2)
    if Wa.shape != (d, T):
        raise ValueError(f"{name} must have shape ({d}, {T}), got {Wa.shape}")
    return Wa



def _loss_values_grads(
    Xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], V: np.ndarray, lossf: Loss
) -> tuple[np.ndarray, np.ndarray]:
    T = len(Xs)
    vals = np.empty(T)
    grads = np.empty_like(V)
    for t in range(T):
        vals[t], grads[t] = lossf.value_and_gradient(Xs[t], ys[t], V[t])
    return vals, grads



def _objective_v(
    Xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    V: np.ndarray,
    cp: _Coupling,
    lam: float,
    lossf: Loss,
    a: np.ndarray,
    ridge: float,
) -> float:
    vals = np.array([lossf.value(Xs[t], ys[t], V[t]) for t in range(len(Xs))])
    U = cp.ibt(V)
    return float(a @ vals + lam * _dot(U, U) + ridge * _dot(V, V))



def tasks_objective(
    Xs: Sequence[Any],
    ys: Sequence[Any],
    W: Any,
    B: Any,
    lam: float,
    *,
    loss: str = "squared",
    weights: Any = None,
    ridge: float = 0.0,
) -> float:
    """Evaluate the W-step objective.

    ::

        F(W) = sum_t a_t * L_t(w_t) + lam * ||W (I - B)||_F^2 + ridge * ||W||_F^2

    Parameters
    ----------
    Xs, ys : sequence of numpy.ndarray
        T tasks, ``Xs[t]`` (n_t, d), ``ys[t]`` (n_t,).
    W : numpy.ndarray
        (d, T), column ``w_t``.
    B : numpy.ndarray or scipy.sparse matrix
        (T, T) transfer matrix, ``B >= 0`` with zero diagonal.
    lam : float
        Coupling weight, ``lam > 0``.
    loss : {"squared", "logistic"}
        Mean per-task loss ``L_t``.
    weights : numpy.ndarray, optional
        (T,) loss weights ``a_t >= 0``; ``None`` means all ones.
    ridge : float
        ``ridge >= 0``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On invalid input (the message names the argument).
    """
    Xl, yl, Bv, lam_f, lossf, a, ridge_f = _prepare(Xs, ys, B, lam, loss, weights, ridge)
    Wa = _check_W(W, Xl[0].shape[1], len(Xl), "W")
    return _objective_v(Xl, yl, Wa.T, _Coupling(Bv), lam_f, lossf, a, ridge_f)



def tasks_gradient(
    Xs: Sequence[Any],
    ys: Sequence[Any],
    W: Any,
    B: Any,
    lam: float,
    *,
    loss: str = "squared",
    weights: Any = None,
    ridge: float = 0.0,
) -> np.ndarray:
    """Gradient of the W-step objective (see :func:`tasks_objective`).

    Column t is ``a_t * grad L_t(w_t) + 2 lam [W (I-B)(I-B)']_t + 2 ridge w_t``.

    Returns
    -------
    numpy.ndarray
        (d, T).
    """
    Xl, yl, Bv, lam_f, lossf, a, ridge_f = _prepare(Xs, ys, B, lam, loss, weights, ridge)
    Wa = _check_W(W, Xl[0].shape[1], len(Xl), "W")
    V = Wa.T
    _, gl = _loss_values_grads(Xl, yl, V, lossf)
    g = a[:, None] * gl + 2.0 * lam_f * _Coupling(Bv).m(V) + 2.0 * ridge_f * V
    return np.ascontiguousarray(g.T)



def _unit_grams(grams: TaskGrams | None, Xl, yl) -> tuple[TaskGrams, TaskGrams, float]:
    """The squared W-step's Gram matrices (checked, or computed), the same in units where
    ``max |y| = 1``, and that unit ``sigma``. The step is homogeneous in the targets
    (``W / sigma``, the objective ``/ sigma^2``, the same certificate), so targets of
    1e-160 or 1e154 neither underflow nor overflow on the way."""
    T, d = len(Xl), Xl[0].shape[1]
    if grams is None:
        grams = _grams(Xl, yl)
    elif not isinstance(grams, TaskGrams) or grams.gram.shape != (T, d, d):
        raise ValueError(f"grams must be a TaskGrams for {T} tasks with {d} features")
    sigma = max(float(np.max(np.abs(y))) for y in yl)
    if sigma in (0.0, 1.0):
        sigma = 1.0
    return grams, TaskGrams(gram=grams.gram, xty=grams.xty / sigma, n=grams.n), sigma


@dataclass(frozen=True)
class _WStep:
    """A checked W-step: tasks ``Xs``/``ys`` (lists of arrays), coupling ``cp`` of ``B``,
    ``lam``, loss ``lossf``, loss weights ``a`` and ``ridge`` (see :func:`_prepare`)."""

    Xs: list[np.ndarray]
    ys: list[np.ndarray]
    cp: _Coupling
    lam: float
    lossf: Loss
    a: np.ndarray
    ridge: float

    def result(self, V: np.ndarray, n_iter: int, cert: float, tol: float, hist: list[float]) -> SolverResult:
        """The W-step's :class:`SolverResult` at ``V`` (T x d); an objective that
        overflows float64 at a finite ``V`` is a ``ValueError``."""
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below
            obj = _objective_v(self.Xs, self.ys, V, self.cp, self.lam, self.lossf, self.a, self.ridge)
        if not np.isfinite(obj) and np.all(np.isfinite(V)):
            raise ValueError(
                "the W-step objective overflows float64 (targets or lam near 1e154 and beyond); "
                "rescale the data or lam"
            )
        return SolverResult(
            solution=np.ascontiguousarray(V.T),
            objective=obj,
            n_iter=n_iter,
            converged=bool(cert <= tol),
            certificate=float(cert),
            tol=tol,
            history=tuple(hist),
        )


def _setup(
    Xs: Sequence[Any], ys: Sequence[Any], B: Any, lam: Any, loss: str | Loss, weights: Any, ridge: Any
) -> _WStep:
    """The checked W-step (:func:`_prepare`) with the coupling of ``B``."""
    Xl, yl, Bv, lam_f, lossf, a, ridge_f = _prepare(Xs, ys, B, lam, loss, weights, ridge)
    return _WStep(Xl, yl, _Coupling(Bv), lam_f, lossf, a, ridge_f)


def _start(prob: _WStep, W0: Any) -> np.ndarray:
    """The starting ``V = W0'`` (T x d; zeros without ``W0``), checked and copied."""
    T, d = len(prob.Xs), prob.Xs[0].shape[1]
    return np.zeros((T, d)) if W0 is None else _check_W(W0, d, T, "W0").T.copy()
