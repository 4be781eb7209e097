r"""B-step statements: the transfer graph for fixed task parameters W.

Objective (original units), with ``p_s = mu * c_s * L_s(w_s)``::

    min_B  lam * ||W - W B||_F^2 + sum_{s,t} p_s * B[s, t]
    s.t.   B >= 0, diag(B) = 0

Scaling. Two changes of units make the statement well conditioned for the solvers:
the columns of ``B`` are measured in units of the sending task's norm,
``C[s, t] = D_s B[s, t]`` with ``D_s = ||w_s||`` (1 for a zero column), and the
objective is divided by ``kappa = lam * sigma^2`` with ``sigma = max|W|``. With
``Y = W / sigma`` and ``A = W D^{-1} / sigma`` (unit-norm columns over sigma)::

    min_C  ||Y - A C||_F^2 + sum_{s,t} (p_s / (D_s kappa)) * C[s, t]
    s.t.   C >= 0, diag(C) = 0

has the minimiser ``C = D B``; its value times ``kappa`` is the original objective.
(Measured: without the column units, Clarabel stops with ``InsufficientProgress`` on the
imbalanced release data, where the 5-row tasks' parameters are ~100 times smaller than
the 500-row tasks'.)

The whole-B statement is DPP while the memory model (:mod:`amtl_cvx.problems.memory`)
predicts its DPP form within budget: ``A @ C`` compiles to ``d T^2`` entries on the QP
path but ``d T^3`` on ECOS's cone path (2.4 GB at T = 140, d = 28); beyond, it is
restated with constant data (``d T^2`` entries on every path).
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
        self.Y = cp.Parameter((self.n_features, self.n_tasks), name="Y")
        self.A = cp.Parameter((self.n_features, self.n_tasks), name="A")
        self.price = cp.Parameter(self.n_tasks, nonneg=True, name="price")
        self.D = np.ones(self.n_tasks)

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
        norms = np.linalg.norm(W, axis=0)
        self.D = np.where(norms > 0, norms, 1.0)
        self.scale = lam * sigma**2
        self.Y.value = W / sigma
        self.A.value = W / (self.D * sigma)
        self.price.value = p / (self.D * self.scale)
        if not self.parametric:
            self.problem = self._constant_problem()
        return self

    def _statement(self, Y, A, price) -> cp.Problem:
        raise NotImplementedError

    def _constant_problem(self) -> cp.Problem:
        problem = self._statement(self.Y.value, self.A.value, self.price.value)
        if not problem.is_dcp():  # pragma: no cover - a statement bug
            raise AssertionError(f"the {self.name} statement is not DCP")
        return problem


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
        self.C = cp.Variable((T, T), nonneg=True, name="C")
        self.parametric = self._dpp_fits("qp")
        if self.parametric:
            self.problem = self._statement(self.Y, self.A, self.price)
            self._finish_build()

    def _statement(self, Y, A, price) -> cp.Problem:
        objective = cp.sum_squares(Y - A @ self.C) + price @ cp.sum(self.C, axis=1)
        return cp.Problem(cp.Minimize(objective), [cp.diag(self.C) == 0])

    def _memory_args(self) -> dict:
        return dict(statement="bstep", n_tasks=self.n_tasks, n_features=self.n_features)

    def objective_at(self, B: np.ndarray) -> float:
        """The statement's objective at ``B``, in original units (for checking)."""
        self.C.value = self.D[:, None] * np.asarray(B, dtype=np.float64)
        return float(self.scale * self.problem.objective.value)

    def _solution(self) -> np.ndarray:
        # The solver's B is feasible up to its tolerance; return the exactly feasible
        # projection (the entries it changes are of the order of the tolerance).
        B = np.maximum(self.C.value, 0.0) / self.D[:, None]
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
        self.c = cp.Variable(self.n_tasks, nonneg=True, name="c")
        self.problem = self._statement(self.Y, self.A, self.price)
        self._finish_build()

    def _statement(self, Y, A, price) -> cp.Problem:
        objective = cp.sum_squares(Y[:, self.task] - A @ self.c) + price @ self.c
        return cp.Problem(cp.Minimize(objective), [self.c[self.task] == 0])

    def _memory_args(self) -> dict:
        return dict(statement="bstep-column", n_tasks=self.n_tasks, n_features=self.n_features)

    def objective_at(self, b: np.ndarray) -> float:
        """The statement's objective at ``b``, in original units (for checking)."""
        self.c.value = self.D * np.asarray(b, dtype=np.float64)
        return float(self.scale * self.problem.objective.value)

    def _solution(self) -> np.ndarray:
        b = np.maximum(self.c.value, 0.0) / self.D
        b[self.task] = 0.0
        return b
