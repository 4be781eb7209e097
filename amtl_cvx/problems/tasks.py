r"""W-step statement: the task parameters for a fixed transfer graph B.

Objective (original units), with loss weights ``a_t = 1 + mu c_t ||B[t, :]||_1``::

    min_W  sum_t a_t * L_t(w_t) + lam * ||W (I - B)||_F^2 + ridge * ||W||_F^2

``L_t`` is ``1/(2 n_t) ||y_t - X_t w_t||^2`` (a QP, default solver OSQP) or
``mean(log(1 + exp(-y_t * X_t w_t)))`` (exponential cone, default solver ECOS).

DPP form: the parameters are ``a`` (T,), ``C = sqrt(lam) (I - B)`` (T x T) and
``ridge``, so ``lam ||W (I - B)||^2 = ||W C||^2`` is a variable times a parameter. Its
compiled size grows like ``d T^2`` on the QP path, but like ``d T^4`` (squared loss,
ECOS) or ``T^3 N`` (logistic loss) on the cone path (measured: 5.9 GB at T = 40 for the
logistic W-step). Where the memory model (:mod:`amtl_cvx.problems.memory`) predicts more
than its DPP budget, the statement is restated with constant data, ``C`` as a *sparse*
constant: its size then grows like ``d (nnz(I - B) + N)``, with the support of ``B``
and the ``N`` training rows, not with ``T^2``.
Scaling (squared loss): targets are divided by ``sigma`` (see
:func:`amtl_cvx.problems._loss.target_scale`), the solver finds ``W / sigma`` and
the objective is ``sigma^2`` times the statement's value.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from amtl_cvx._validation import check_array, check_scalar, check_transfer_matrix
from amtl_cvx.data.container import MultiTaskData
from amtl_cvx.problems._loss import loss_expression, target_scale
from amtl_cvx.problems.base import StatedProblem

__all__ = ["TasksProblem"]


class TasksProblem(StatedProblem):
    """The W-step over all tasks of ``data`` (see the module docstring).

    Parameters
    ----------
    data : MultiTaskData
        Training data (constants of the statement).
    loss : {"squared", "logistic"}
    """

    name = "W-step"

    def __init__(self, data: MultiTaskData, loss: str = "squared") -> None:
        data.check_labels(loss)
        self.data, self.loss = data, loss
        self.default_solver = "OSQP" if loss == "squared" else "ECOS"
        d, T = data.n_features, data.n_tasks
        self.sigma = target_scale(data.ys, loss)
        self.W = cp.Variable((d, T), name="W")
        self.a = cp.Parameter(T, nonneg=True, name="a")
        self.C = cp.Parameter((T, T), name="C")
        self.ridge = cp.Parameter(nonneg=True, name="ridge")
        self._losses = [
            loss_expression(X, y / self.sigma, self.W[:, t], loss)
            for t, (X, y) in enumerate(zip(data.Xs, data.ys))
        ]
        self.scale = self.sigma**2
        self._coupling_nnz: int | None = None
        self.parametric = self._dpp_fits("cone" if loss == "logistic" else "qp")
        if self.parametric:
            self.problem = self._statement(self.a, self.C, self.ridge)
            self._finish_build()

    def _statement(self, a, C, ridge) -> cp.Problem:
        terms = [a[t] * L for t, L in enumerate(self._losses)]
        objective = cp.sum(cp.hstack(terms)) + cp.sum_squares(self.W @ C) + ridge * cp.sum_squares(self.W)
        return cp.Problem(cp.Minimize(objective))

    def set(
        self, B: np.ndarray, lam: float, weights: np.ndarray, ridge: float = 0.0
    ) -> "TasksProblem":
        """Set ``B`` (T x T, >= 0, zero diagonal), ``lam > 0``, ``weights`` ``a`` and ``ridge``."""
        T = self.data.n_tasks
        B = check_transfer_matrix(B, T)
        lam = check_scalar(lam, "lam", strict=True)
        a = check_array(weights, "weights", ndim=1)
        if a.shape != (T,) or np.any(a < 0):
            raise ValueError(f"weights must be a nonnegative vector of length {T}")
        self.a.value = a
        self.C.value = np.sqrt(lam) * (np.eye(T) - B)
        self.ridge.value = check_scalar(ridge, "ridge")
        self._coupling_nnz = int(np.count_nonzero(self.C.value))
        if not self.parametric:
            self.problem = self._constant_problem()
        return self

    def _constant_problem(self) -> cp.Problem:
        problem = self._statement(self.a.value, sp.csr_matrix(self.C.value), float(self.ridge.value))
        if not problem.is_dcp():  # pragma: no cover - a statement bug
            raise AssertionError(f"the {self.name} statement is not DCP")
        return problem

    def _memory_args(self) -> dict:
        return dict(statement="wstep", n_tasks=self.data.n_tasks, n_features=self.data.n_features,
                    n_rows=int(sum(self.data.n_samples)), coupling_nnz=self._coupling_nnz, loss=self.loss)

    def objective_at(self, W: np.ndarray) -> float:
        """The statement's objective at ``W`` (d x T), in original units (for checking)."""
        self.W.value = np.asarray(W, dtype=np.float64) / self.sigma
        return float(self.scale * self.problem.objective.value)

    def _solution(self) -> np.ndarray:
        return self.sigma * self.W.value
