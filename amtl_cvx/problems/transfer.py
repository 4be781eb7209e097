r"""B-step statements: the transfer graph for fixed task parameters W.

Objective (original units), with ``p_s = mu * c_s * L_s(w_s)``::

    min_B  lam * ||W - W B||_F^2 + sum_{s,t} p_s * B[s, t]
    s.t.   B >= 0, diag(B) = 0

Scaling: with ``sigma = max|W|`` the statement is posed in ``V = W / sigma`` and divided
by ``kappa = lam * sigma^2``::

    min_B  ||V - V B||_F^2 + sum_{s,t} (p_s / kappa) * B[s, t]

which has the same minimiser ``B``; its value times ``kappa`` is the original objective.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from amtl_cvx._validation import check_array, check_scalar
from amtl_cvx.problems.base import StatedProblem

__all__ = ["TransferProblem", "TransferColumnProblem"]


class _TransferBase(StatedProblem):
    default_solver = "OSQP"

    def __init__(self, n_features: int, n_tasks: int) -> None:
        if n_features < 1 or n_tasks < 1:
            raise ValueError("n_features and n_tasks must be positive")
        self.n_features, self.n_tasks = int(n_features), int(n_tasks)
        self.V = cp.Parameter((self.n_features, self.n_tasks), name="V")
        self.price = cp.Parameter(self.n_tasks, nonneg=True, name="price")

    def set(self, W: np.ndarray, penalty: np.ndarray, lam: float) -> "_TransferBase":
        """Set the parameters from ``W`` (d x T), ``penalty`` ``p`` (T,) and ``lam``."""
        W = check_array(W, "W", ndim=2)
        if W.shape != (self.n_features, self.n_tasks):
            raise ValueError(f"W must have shape {(self.n_features, self.n_tasks)}, got {W.shape}")
        p = check_array(penalty, "penalty", ndim=1)
        if p.shape != (self.n_tasks,) or np.any(p < 0):
            raise ValueError(f"penalty must be a nonnegative vector of length {self.n_tasks}")
        lam = check_scalar(lam, "lam", strict=True)
        sigma = float(np.max(np.abs(W))) or 1.0
        self.scale = lam * sigma**2
        self.V.value = W / sigma
        self.price.value = p / self.scale
        return self


class TransferProblem(_TransferBase):
    """The whole B-step, all T columns in one QP (see the module docstring).

    Parameters
    ----------
    n_features, n_tasks : int
        Shape of ``W``.
    """

    name = "B-step"

    def __init__(self, n_features: int, n_tasks: int) -> None:
        super().__init__(n_features, n_tasks)
        T = self.n_tasks
        self.B = cp.Variable((T, T), nonneg=True, name="B")
        objective = cp.sum_squares(self.V - self.V @ self.B) + self.price @ cp.sum(self.B, axis=1)
        self.problem = cp.Problem(cp.Minimize(objective), [cp.diag(self.B) == 0])
        self._finish_build()

    def objective_at(self, B: np.ndarray) -> float:
        """The statement's objective at ``B``, in original units (for checking)."""
        self.B.value = np.asarray(B, dtype=np.float64)
        return float(self.scale * self.problem.objective.value)

    def _solution(self) -> np.ndarray:
        # The solver's B is feasible up to its tolerance; return the exactly feasible
        # projection (the entries it changes are of the order of the tolerance).
        B = np.maximum(self.B.value, 0.0)
        np.fill_diagonal(B, 0.0)
        return B


class TransferColumnProblem(_TransferBase):
    """One column t of the B-step::

        min_{b >= 0, b_t = 0}  lam * ||w_t - W b||^2 + p' b

    Parameters
    ----------
    n_features, n_tasks : int
        Shape of ``W``.
    task : int
        The column ``t``.
    """

    name = "B-step column"

    def __init__(self, n_features: int, n_tasks: int, task: int) -> None:
        super().__init__(n_features, n_tasks)
        if not 0 <= task < self.n_tasks:
            raise ValueError(f"task must be in 0..{self.n_tasks - 1}, got {task}")
        self.task = int(task)
        self.b = cp.Variable(self.n_tasks, nonneg=True, name="b")
        objective = cp.sum_squares(self.V[:, self.task] - self.V @ self.b) + self.price @ self.b
        self.problem = cp.Problem(cp.Minimize(objective), [self.b[self.task] == 0])
        self._finish_build()

    def objective_at(self, b: np.ndarray) -> float:
        """The statement's objective at ``b``, in original units (for checking)."""
        self.b.value = np.asarray(b, dtype=np.float64)
        return float(self.scale * self.problem.objective.value)

    def _solution(self) -> np.ndarray:
        b = np.maximum(self.b.value, 0.0)
        b[self.task] = 0.0
        return b
