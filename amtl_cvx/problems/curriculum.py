r"""Curriculum step statement (Algorithm 2): a new task and its incoming edges, jointly.

With the tasks learned so far (the set ``S``) frozen at ``W_S`` and their sending prices
``q_s = mu c_s L_s(w_s)``, the new task t solves, jointly in ``(w, b)``::

    min_{w, b >= 0}  L_t(w) + lam * ||w - W_S b||^2 + q' b + ridge * ||w||^2

(jointly convex: a convex function of an affine map of ``(w, b)``). The statement is
built once per task over all T potential sources: ``b`` has length T and a 0/1
parameter ``blocked`` forces ``b_s = 0`` for every task not in ``S`` (including t),
so one DPP statement serves every step. DPP form: parameters ``sl = sqrt(lam)``,
``sW = sqrt(lam) W_S`` (zero columns outside ``S``), ``q``, ``blocked``, ``ridge``.
Scaling (squared loss): ``y``, ``w`` and ``W_S`` are divided by ``sigma`` and ``q`` by
``sigma^2``; the objective is ``sigma^2`` times the statement's value.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from amtl_cvx._validation import check_array, check_scalar
from amtl_cvx.problems._loss import loss_expression, target_scale
from amtl_cvx.problems.base import StatedProblem

__all__ = ["CurriculumStepProblem"]


class CurriculumStepProblem(StatedProblem):
    """One curriculum step for the task with data ``(X, y)`` among ``n_tasks`` tasks.

    Parameters
    ----------
    X : numpy.ndarray, shape (n, d)
    y : numpy.ndarray, shape (n,)
    n_tasks : int
        Total number of tasks (length of ``b``).
    task : int
        Index of the new task (always blocked as its own source).
    loss : {"squared", "logistic"}
    """

    name = "curriculum step"

    def __init__(self, X: np.ndarray, y: np.ndarray, n_tasks: int, task: int, loss: str = "squared") -> None:
        X = check_array(X, "X", ndim=2)
        y = check_array(y, "y", ndim=1)
        if X.shape[0] != y.shape[0] or X.shape[0] == 0:
            raise ValueError("X and y must have the same, nonzero number of rows")
        if not 0 <= task < n_tasks:
            raise ValueError(f"task must be in 0..{n_tasks - 1}, got {task}")
        self.loss, self.task, self.n_tasks = loss, int(task), int(n_tasks)
        self.default_solver = "OSQP" if loss == "squared" else "ECOS"
        d = X.shape[1]
        self.n_rows = X.shape[0]
        self.sigma = target_scale([y], loss)
        self.scale = self.sigma**2
        self.w = cp.Variable(d, name="w")
        self.b = cp.Variable(n_tasks, nonneg=True, name="b")
        self.sl = cp.Parameter(nonneg=True, name="sqrt_lam")
        self.sW = cp.Parameter((d, n_tasks), name="sqrt_lam_W_S")
        self.q = cp.Parameter(n_tasks, nonneg=True, name="q")
        self.blocked = cp.Parameter(n_tasks, nonneg=True, name="blocked")
        self.ridge = cp.Parameter(nonneg=True, name="ridge")
        objective = (
            loss_expression(X, y / self.sigma, self.w, loss)
            + cp.sum_squares(self.sl * self.w - self.sW @ self.b)
            + self.q @ self.b
            + self.ridge * cp.sum_squares(self.w)
        )
        self.problem = cp.Problem(cp.Minimize(objective), [cp.multiply(self.blocked, self.b) == 0])
        self._finish_build()

    def set(
        self, W: np.ndarray, learned: np.ndarray, q: np.ndarray, lam: float, ridge: float = 0.0
    ) -> "CurriculumStepProblem":
        """Set the frozen ``W`` (d x T; only columns in ``learned`` are used), the
        boolean mask ``learned`` (T,), prices ``q`` (T,), ``lam > 0`` and ``ridge``."""
        T = self.n_tasks
        W = check_array(W, "W", ndim=2)
        if W.shape != self.sW.shape:
            raise ValueError(f"W must have shape {self.sW.shape}, got {W.shape}")
        learned = np.asarray(learned, dtype=bool)
        if learned.shape != (T,):
            raise ValueError(f"learned must be a boolean mask of length {T}")
        if learned[self.task]:
            raise ValueError(f"task {self.task} cannot be among the learned tasks of its own step")
        q = check_array(q, "q", ndim=1)
        if q.shape != (T,) or np.any(q < 0):
            raise ValueError(f"q must be a nonnegative vector of length {T}")
        lam = check_scalar(lam, "lam", strict=True)
        self.sl.value = np.sqrt(lam)
        self.sW.value = np.sqrt(lam) * np.where(learned, W, 0.0) / self.sigma
        self.q.value = np.where(learned, q, 0.0) / self.scale
        self.blocked.value = (~learned).astype(np.float64)
        self.ridge.value = check_scalar(ridge, "ridge")
        return self

    def _dpp_fits(self, path: str) -> bool:
        # One statement per new task, built once: its DPP form is the only one (its map,
        # ``d T^2`` entries, is counted by the memory model; _check_memory still applies).
        return True

    def _memory_args(self) -> dict:
        d, T = self.sW.shape
        return dict(statement="curriculum", n_tasks=T, n_features=d, n_rows=self.n_rows)

    def objective_at(self, w: np.ndarray, b: np.ndarray) -> float:
        """The statement's objective at ``(w, b)``, in original units (for checking)."""
        self.w.value = np.asarray(w, dtype=np.float64) / self.sigma
        self.b.value = np.asarray(b, dtype=np.float64)
        return float(self.scale * self.problem.objective.value)

    def _solution(self) -> tuple[np.ndarray, np.ndarray]:
        b = np.maximum(self.b.value, 0.0)
        b[self.blocked.value > 0] = 0.0
        return self.sigma * self.w.value, b
