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
path but ``d T^3`` on ECOS's cone path (2.3 GB at T = 140, d = 28); beyond, it is
restated with constant data (``d T^2`` entries on every path).

Answers are polished and checked. A solver's tolerance is absolute in these units, so a
column far smaller than the largest is solved only roughly; every answer is therefore
polished column by column on the support the solver found and certified by the B-step's
per-entry KKT residual, or the solve raises :class:`~amtl_cvx.problems.exact.ExactSolveError`
(see ``_TransferBase._solve_with``). :class:`TransferColumnProblem` states one column
in its own units and resolves what the whole statement cannot.
"""

from __future__ import annotations

from dataclasses import replace

import cvxpy as cp
import numpy as np

from amtl_cvx._validation import check_array, check_scalar
from amtl_cvx.problems.exact import ExactSolveError
from amtl_cvx.problems.base import ExactResult, StatedProblem

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
        self._W, self._p, self._lam = W, p, lam
        sigma = float(np.max(np.abs(W))) or 1.0
        norms = np.linalg.norm(W, axis=0)
        nz = norms[norms > 0]
        self._spread = float(nz.max() / nz.min()) if nz.size else 1.0
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

    def _columns(self) -> np.ndarray:
        """The columns ``t`` of ``B`` this statement solves."""
        raise NotImplementedError

    def _solve_with(self, solver: str, options: dict) -> ExactResult:
        """Solve, polish the answer on its support, and check it entry by entry.

        The solver's tolerance is absolute in the statement's units, so a column whose
        norm is far below the largest is solved only roughly (its whole objective may be
        below the tolerance). Each column is therefore polished on the support the
        solver found (:func:`_polish_column`, in unit-norm columns) and the result is
        certified by the B-step's per-entry KKT residual on this statement's columns
        (:func:`solvers.transfer.transfer_kkt_residual`); above :data:`KKT_TOL` the solve is an
        :class:`~amtl_cvx.problems.exact.ExactSolveError` (the automatic ladder then tries the
        next solver), never a silently wrong answer.
        """
        from solvers.transfer import transfer_kkt_residual

        raw = super()._solve_with(solver, options)
        W, p, lam = self._W, self._p, self._lam
        cols = self._columns()
        whole = raw.solution.ndim == 2
        B = np.zeros((self.n_tasks, self.n_tasks))
        for t in cols:
            B[:, t] = _polish_column(W, p, lam, int(t), raw.solution[:, t] if whole else raw.solution)
        cert = transfer_kkt_residual(W, B, p, lam, columns=cols)
        if not cert <= KKT_TOL:
            raise ExactSolveError(
                f"{solver} reported 'optimal' on the {self.name}, but its solution fails the "
                f"per-entry KKT check even polished on its support (certificate {cert:.1e} > "
                f"{KKT_TOL:g}; the columns of W span {self._spread:.1e} in norm)"
                + ("; solve the columns one by one (TransferColumnProblem)" if whole else "")
            )
        R = W[:, cols] - W @ B[:, cols]
        objective = float(lam * np.sum(R * R) + p @ B[:, cols].sum(axis=1))
        note = (raw.stats.note + "; " if raw.stats.note else "") + f"polished on its support (KKT {cert:.1e})"
        return ExactResult(B if whole else B[:, cols[0]], objective, replace(raw.stats, note=note))

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

    def _columns(self) -> np.ndarray:
        return np.arange(self.n_tasks)

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

    def _columns(self) -> np.ndarray:
        return np.array([self.task])

    def set(self, W: np.ndarray, penalty: np.ndarray, lam: float) -> "TransferColumnProblem":
        """Set the parameters from ``W`` (d x T), ``penalty`` ``p`` (T,) and ``lam``.

        Stated in the column's own units: every column of ``W`` divided by its norm
        (``A = W D^{-1}``), the target ``w_t`` by its norm ``n_t``, the variable
        ``c = D b / n_t``, prices ``p / (lam D n_t)`` and the objective by
        ``lam n_t^2``, so the solver's tolerance is relative to this column, however
        small it is next to the others. A price above 2 keeps its entry at zero at the
        optimum (the gradient of that entry is at least ``price - 2 ||u - A c|| >=
        price - 2``), so prices are capped at 4: the same minimiser, and no price of
        1e18 next to entries of order one for the solver (Clarabel reported
        ``unbounded`` on such columns). The objective is recomputed in original units.
        """
        super().set(W, penalty, lam)
        n_t = float(np.linalg.norm(self._W[:, self.task])) or 1.0
        self._n_t = n_t
        self.scale = self._lam * n_t**2
        self.Y.value = self._W / n_t
        self.A.value = self._W / self.D
        self.price.value = np.minimum(self._p / (self.D * self.scale / n_t), 4.0)
        return self

    def objective_at(self, b: np.ndarray) -> float:
        """The statement's objective at ``b``, in original units (for checking)."""
        self.c.value = self.D * np.asarray(b, dtype=np.float64) / self._n_t
        return float(self.scale * self.problem.objective.value)

    def _solution(self) -> np.ndarray:
        b = np.maximum(self.c.value, 0.0) * self._n_t / self.D
        b[self.task] = 0.0
        return b


#: Largest per-entry KKT certificate (:func:`solvers.transfer.transfer_kkt_residual`)
#: accepted from a polished exact B-step.
KKT_TOL = 1e-7


def _polish_column(W: np.ndarray, p: np.ndarray, lam: float, t: int, b: np.ndarray) -> np.ndarray:
    """Column ``t`` of ``B`` solved exactly on the support the solver found.

    In unit-norm columns (``a_s = w_s / ||w_s||``, ``u = w_t / ||w_t||``, ``y_s =
    b_s ||w_s|| / ||w_t||``, prices ``q_s = p_s / (lam ||w_s|| ||w_t||)``):

    1. the support is ``{s : y_s > 1e-6 max(1, max y)}``;
    2. while ``A_P`` has dependent columns (an interior-point solver returns a point in
       the relative interior of a non-unique optimal face), step along a null vector
       ``delta`` of ``A_P`` with ``q_P'delta <= 0`` until a coordinate reaches zero and
       drop it (Caratheodory: ``A_P y_P`` is unchanged and the price does not rise);
    3. on the remaining support, ``min ||u - A_P y||^2 + q_P'y`` is solved by least
       squares on ``[A_P; a']`` with target ``[u; eta]``, ``a = -q_P / (2 eta)``,
       ``eta = 1e8`` (the same problem up to ``(a'y)^2``, below rounding); while the
       solution leaves the orthant its most negative coordinate is dropped.

    The rest of the column is zero.
    """
    T = W.shape[1]
    norms = np.linalg.norm(W, axis=0)
    out = np.zeros(T)
    if norms[t] == 0.0:
        return out
    scale = np.where(norms > 0, norms, 1.0)
    y = np.where(norms > 0, b * scale / norms[t], 0.0)
    y[t] = 0.0
    P = np.flatnonzero(y > 1e-6 * max(1.0, float(y.max())))
    A = W / scale
    u = W[:, t] / norms[t]
    q = p / (lam * scale * norms[t])
    yP = y[P]
    while P.size:
        _, sv, Vt = np.linalg.svd(A[:, P], full_matrices=True)
        rank = int(np.sum(sv > 1e-10 * sv[0])) if sv.size else 0
        if rank == P.size:
            break
        delta = Vt[-1]
        if q[P] @ delta > 0 or (q[P] @ delta == 0 and not np.any(delta < 0)):
            delta = -delta
        neg = delta < 0
        ratios = np.where(neg, yP / np.where(neg, -delta, 1.0), np.inf)
        i = int(np.argmin(ratios))
        yP = np.delete(yP + ratios[i] * delta, i)
        P = np.delete(P, i)
    eta = 1e8
    while P.size:
        M = np.vstack([A[:, P], -q[P][None, :] / (2.0 * eta)])
        z, *_ = np.linalg.lstsq(M, np.append(u, eta), rcond=None)
        if np.all(z > 0):
            out[P] = z * norms[t] / scale[P]
            return out
        P = np.delete(P, int(np.argmin(z)))
    return out
