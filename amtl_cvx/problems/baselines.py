r"""CVXPY statements of the standard multi-task baselines.

``W`` is d x T with column ``w_t``; ``L_t`` is the task's mean loss,
``1/(2 n_t) ||y_t - X_t w||^2`` (squared) or ``mean(log(1 + exp(-y_t * X_t w)))``
(logistic), as in :func:`amtl_cvx.problems._loss.loss_expression`. Objectives (original
units)::

    PooledProblem            min_w  sum_t L_t(w) + lam ||w||^2
    MeanRegularizedProblem   min_W  sum_t L_t(w_t) + lam sum_t ||w_t - wbar||^2 + rho ||W||_F^2
    L21Problem               min_W  sum_t L_t(w_t) + lam sum_j ||W[j, :]||_2 + rho ||W||_F^2
    TraceNormProblem         min_W  sum_t L_t(w_t) + lam ||W||_* + rho ||W||_F^2
    GOMTLCodesProblem        min_S  sum_t L_t(L s_t) + mu ||S||_1        (L fixed)
    GOMTLBasisProblem        min_L  sum_t L_t(L s_t) + lam ||L||_F^2     (S fixed)

(``wbar`` the mean of the columns of ``W``.) Every statement is DPP: the weights are
scalar ``cp.Parameter`` s and the data are constants, except in the GO-MTL steps, whose
fixed factor is a parameter (``M_t = X_t L`` for the codes, ``S`` for the basis), so one
statement serves every alternation.

Scaling (squared loss), as in :mod:`amtl_cvx.problems.tasks`: targets are divided by
``sigma`` (:func:`~amtl_cvx.problems._loss.target_scale`), the variables are the
solution divided by ``sigma`` (the GO-MTL steps: the free factor; the fixed factor is not
scaled), and the objective is ``sigma^2`` times the statement's value. The quadratic
penalties keep their weights; the 1-homogeneous ones (l2,1, trace, l1) are divided by
``sigma``: ``lam Omega(sigma V) / sigma^2 = (lam / sigma) Omega(V)``.

Solvers: the ladder of :meth:`StatedProblem.solve` (``solver=None``) depends on the cones:
QPs (pooled, mean-regularised, GO-MTL steps; squared loss) climb OSQP -> Clarabel, the
second-order-cone l2,1 statement Clarabel -> ECOS -> Clarabel at 1e-8, the trace norm
(a semidefinite cone: only Clarabel among the exact solvers) Clarabel at 1e-9 then 1e-8,
and the logistic statements ECOS -> Clarabel -> Clarabel at 1e-8 (Clarabel only with
the trace norm).

Memory: :mod:`amtl_cvx.problems.memory` knows the AMTL statements only, and this module
may not extend it. The parameters here are scalars (or, in the GO-MTL steps, one factor
entering linearly), so the DPP form costs about what the constant form costs; the
statements are always DPP (``_dpp_fits`` is True) and their peak is predicted with the
*constant-data W-step* model, the closest statement the model knows: ``d`` features,
``T`` tasks, ``N`` rows and the coupling's nonzeros (``T`` for uncoupled columns, ``2 T``
for the mean coupling, ``d`` for the rows of the l2,1 norm) -- plus, for the trace norm,
Clarabel's dense factor of the semidefinite cone of order ``d + T``
(``8 ((d + T)(d + T + 1) / 2)^2`` bytes), which the W-step model has no term for.
"""

from __future__ import annotations

from typing import Any

import cvxpy as cp
import numpy as np

from amtl_cvx._validation import check_array, check_scalar
from amtl_cvx.data.container import MultiTaskData
from amtl_cvx.problems.exact import AUTO_LADDER
from amtl_cvx.problems import memory
from amtl_cvx.problems._loss import loss_expression, target_scale
from amtl_cvx.problems.base import ExactResult, StatedProblem

__all__ = [
    "PooledProblem",
    "MeanRegularizedProblem",
    "L21Problem",
    "TraceNormProblem",
    "GOMTLCodesProblem",
    "GOMTLBasisProblem",
]


_CLARABEL_LOOSE = {"tol_gap_abs": 1e-8, "tol_gap_rel": 1e-8, "tol_feas": 1e-8}


class _BaselineProblem(StatedProblem):
    """Shared machinery: data, scaling, parameters, ladder, memory (module docstring)."""

    #: Coupling nonzeros reported to the W-step memory model (None: T).
    _coupling: int | None = None

    def __init__(self, data: MultiTaskData, loss: str) -> None:
        if not isinstance(data, MultiTaskData):
            raise ValueError(f"data must be a MultiTaskData, got {type(data).__name__}")
        data.check_labels(loss)
        self.data, self.loss = data, loss
        self.default_solver = self.ladder[0][0]
        self.sigma = target_scale(data.ys, loss)
        self.scale = self.sigma**2
        self._ys = [y / self.sigma for y in data.ys]

    # ----------------------------------------------------------- building
    def _params(self) -> tuple[cp.Parameter, ...]:
        raise NotImplementedError

    def _statement(self, *params) -> cp.Problem:
        raise NotImplementedError

    def _build(self) -> None:
        self.problem = self._statement(*self._params())
        self._finish_build()

    def _constant_problem(self) -> cp.Problem:
        problem = self._statement(*(p.value for p in self._params()))
        if not problem.is_dcp():  # pragma: no cover - a statement bug
            raise AssertionError(f"the {self.name} statement is not DCP")
        return problem

    # ------------------------------------------------------------- memory
    def _memory_args(self) -> dict[str, Any]:
        d, T = self.data.n_features, self.data.n_tasks
        return dict(statement="wstep", n_tasks=T, n_features=d, n_rows=int(sum(self.data.n_samples)),
                    coupling_nnz=T if self._coupling is None else self._coupling, loss=self.loss)

    def _dpp_fits(self, path: str) -> bool:
        return True  # scalar (or linearly entering) parameters: the DPP map is small

    def _extra_peak(self) -> float:
        return 0.0

    def predicted_peak(self, solver: str, form: str | None = None) -> float:
        """Predicted peak memory (bytes) with ``solver`` (module docstring: the
        constant-data W-step model, whatever the form)."""
        path = memory.solver_path(solver, self.loss)
        args = dict(self._memory_args())
        return memory.predict_peak(args.pop("statement"), "constant", path, **args) + self._extra_peak()

    # ------------------------------------------------------------ solving
    def solve(self, solver: str | None = None, **options: Any) -> ExactResult:
        """As :meth:`StatedProblem.solve` (with this statement's :attr:`ladder`), after
        checking that every parameter is set."""
        if any(p.value is None for p in self._params()):
            raise RuntimeError(f"the {self.name} statement has unset parameters: call set() first")
        return super().solve(solver, **options)

    def _losses(self, w_of_t) -> list[cp.Expression]:
        return [loss_expression(X, y, w_of_t(t), self.loss) for t, (X, y) in enumerate(zip(self.data.Xs, self._ys))]

    def _value_at(self, variable: cp.Variable, value: np.ndarray) -> float:
        if variable.shape != value.shape:
            raise ValueError(f"{variable.name()} must have shape {variable.shape}, got {value.shape}")
        if any(p.value is None for p in self._params()):
            raise RuntimeError(f"the {self.name} statement has unset parameters: call set() first")
        variable.value = value / self.sigma
        return float(self.scale * self.problem.objective.value)


# =============================================================== pooled
class PooledProblem(_BaselineProblem):
    """``min_w sum_t L_t(w) + lam ||w||^2``; the solution is ``W`` (d x T, equal columns).

    Parameters
    ----------
    data : MultiTaskData
    loss : {"squared", "logistic"}
    """

    name = "pooled model"

    def __init__(self, data: MultiTaskData, loss: str = "squared") -> None:
        super().__init__(data, loss)
        self.w = cp.Variable(data.n_features, name="w")
        self.lam = cp.Parameter(nonneg=True, name="lam")
        self._L = self._losses(lambda t: self.w)
        self._build()

    def _params(self):
        return (self.lam,)

    def _statement(self, lam) -> cp.Problem:
        return cp.Problem(cp.Minimize(cp.sum(cp.hstack(self._L)) + lam * cp.sum_squares(self.w)))

    def set(self, lam: float) -> "PooledProblem":
        """Set ``lam > 0``."""
        self.lam.value = check_scalar(lam, "lam", strict=True)
        return self

    def objective_at(self, w: np.ndarray) -> float:
        """The objective at ``w`` (d,), original units."""
        return self._value_at(self.w, check_array(w, "w", ndim=1))

    def _solution(self) -> np.ndarray:
        return np.repeat((self.sigma * self.w.value)[:, None], self.data.n_tasks, axis=1)


# ===================================================== mean-regularised
class MeanRegularizedProblem(_BaselineProblem):
    """``min_W sum_t L_t(w_t) + lam sum_t ||w_t - wbar||^2 + rho ||W||_F^2`` (Evgeniou &
    Pontil 2004); ``lam >= 0``, ``rho > 0``.

    Parameters
    ----------
    data : MultiTaskData
    loss : {"squared", "logistic"}
    """

    name = "mean-regularised model"

    def __init__(self, data: MultiTaskData, loss: str = "squared") -> None:
        super().__init__(data, loss)
        d, T = data.n_features, data.n_tasks
        self._coupling = 2 * T
        self.W = cp.Variable((d, T), name="W")
        self.lam = cp.Parameter(nonneg=True, name="lam")
        self.rho = cp.Parameter(nonneg=True, name="rho")
        self._L = self._losses(lambda t: self.W[:, t])
        wbar = cp.sum(self.W, axis=1, keepdims=True) / T
        self._dev = self.W - wbar @ np.ones((1, T))
        self._build()

    def _params(self):
        return (self.lam, self.rho)

    def _statement(self, lam, rho) -> cp.Problem:
        objective = cp.sum(cp.hstack(self._L)) + lam * cp.sum_squares(self._dev) + rho * cp.sum_squares(self.W)
        return cp.Problem(cp.Minimize(objective))

    def set(self, lam: float, rho: float) -> "MeanRegularizedProblem":
        """Set ``lam >= 0`` and ``rho > 0``."""
        self.lam.value = check_scalar(lam, "lam")
        self.rho.value = check_scalar(rho, "rho", strict=True)
        return self

    def objective_at(self, W: np.ndarray) -> float:
        """The objective at ``W`` (d x T), original units."""
        return self._value_at(self.W, check_array(W, "W", ndim=2))

    def _solution(self) -> np.ndarray:
        return self.sigma * self.W.value


# ============================================================ norms
class _NormProblem(_BaselineProblem):
    """``min_W sum_t L_t(w_t) + lam Omega(W) + rho ||W||_F^2`` (``lam > 0``, ``rho >= 0``)."""

    def __init__(self, data: MultiTaskData, loss: str = "squared") -> None:
        super().__init__(data, loss)
        self.W = cp.Variable((data.n_features, data.n_tasks), name="W")
        self.lam = cp.Parameter(nonneg=True, name="lam_over_sigma")
        self.rho = cp.Parameter(nonneg=True, name="rho")
        self._L = self._losses(lambda t: self.W[:, t])
        self._build()

    def _norm(self) -> cp.Expression:
        raise NotImplementedError

    def _params(self):
        return (self.lam, self.rho)

    def _statement(self, lam, rho) -> cp.Problem:
        objective = cp.sum(cp.hstack(self._L)) + lam * self._norm() + rho * cp.sum_squares(self.W)
        return cp.Problem(cp.Minimize(objective))

    def set(self, lam: float, rho: float = 0.0):
        """Set ``lam > 0`` (the parameter holds ``lam / sigma``) and ``rho >= 0``."""
        self.lam.value = check_scalar(lam, "lam", strict=True) / self.sigma
        self.rho.value = check_scalar(rho, "rho")
        return self

    def objective_at(self, W: np.ndarray) -> float:
        """The objective at ``W`` (d x T), original units."""
        return self._value_at(self.W, check_array(W, "W", ndim=2))

    def _solution(self) -> np.ndarray:
        return self.sigma * self.W.value


class L21Problem(_NormProblem):
    """Joint feature selection: ``Omega(W) = sum_j ||W[j, :]||_2`` (rows: features).

    Parameters
    ----------
    data : MultiTaskData
    loss : {"squared", "logistic"}
    """

    name = "l2,1 model"

    def __init__(self, data: MultiTaskData, loss: str = "squared") -> None:
        self._coupling = data.n_tasks + data.n_features
        super().__init__(data, loss)

    @property
    def ladder(self):
        if self.loss == "logistic":
            return AUTO_LADDER["exp_cone"]
        return [("CLARABEL", {}), ("ECOS", {}), ("CLARABEL", _CLARABEL_LOOSE)]

    def _norm(self) -> cp.Expression:
        return cp.sum(cp.norm(self.W, 2, axis=1))


class TraceNormProblem(_NormProblem):
    """Low rank: ``Omega(W) = ||W||_*`` (a semidefinite cone: Clarabel only).

    Parameters
    ----------
    data : MultiTaskData
    loss : {"squared", "logistic"}
    """

    name = "trace-norm model"

    @property
    def ladder(self):
        return [("CLARABEL", {}), ("CLARABEL", _CLARABEL_LOOSE)]

    def _norm(self) -> cp.Expression:
        return cp.normNuc(self.W)

    def _extra_peak(self) -> float:
        n = self.data.n_features + self.data.n_tasks
        return 8.0 * (n * (n + 1) / 2.0) ** 2


# ============================================================ GO-MTL
class GOMTLCodesProblem(_BaselineProblem):
    """GO-MTL S-step: ``min_S sum_t L_t(L s_t) + mu ||S||_1`` with the basis ``L`` fixed.

    DPP parameters: ``M_t = X_t L`` (n_t x k, one per task) and ``mu / sigma``; the
    variable is ``S / sigma`` (k x T). The T problems are independent; one statement
    holds them all.

    Parameters
    ----------
    data : MultiTaskData
    n_latent : int
        ``k``, the number of latent basis tasks.
    loss : {"squared", "logistic"}
    """

    name = "GO-MTL S-step"

    def __init__(self, data: MultiTaskData, n_latent: int, loss: str = "squared") -> None:
        super().__init__(data, loss)
        k, T = int(n_latent), data.n_tasks
        self.n_latent = k
        self._coupling = T
        self.S = cp.Variable((k, T), name="S")
        self.M = [cp.Parameter((int(n), k), name=f"XL_{t}") for t, n in enumerate(data.n_samples)]
        self.mu = cp.Parameter(nonneg=True, name="mu_over_sigma")
        self._build()

    def _memory_args(self) -> dict[str, Any]:
        # the W-step model with k "features" per task (the codes)
        return dict(super()._memory_args(), n_features=self.n_latent)

    def _params(self):
        return (*self.M, self.mu)

    def _statement(self, *params) -> cp.Problem:
        *Ms, mu = params
        losses = [loss_expression(M, y, self.S[:, t], self.loss) for t, (M, y) in enumerate(zip(Ms, self._ys))]
        return cp.Problem(cp.Minimize(cp.sum(cp.hstack(losses)) + mu * cp.sum(cp.abs(self.S))))

    def set(self, L: np.ndarray, mu: float) -> "GOMTLCodesProblem":
        """Set the basis ``L`` (d x k) and ``mu > 0``."""
        L = check_array(L, "L", ndim=2)
        if L.shape != (self.data.n_features, self.n_latent):
            raise ValueError(f"L must have shape {(self.data.n_features, self.n_latent)}, got {L.shape}")
        for M, X in zip(self.M, self.data.Xs):
            M.value = X @ L
        self.mu.value = check_scalar(mu, "mu", strict=True) / self.sigma
        return self

    def objective_at(self, S: np.ndarray) -> float:
        """The objective at ``S`` (k x T), original units."""
        return self._value_at(self.S, check_array(S, "S", ndim=2))

    def _solution(self) -> np.ndarray:
        return self.sigma * self.S.value


class GOMTLBasisProblem(_BaselineProblem):
    """GO-MTL L-step: ``min_L sum_t L_t(L s_t) + lam ||L||_F^2`` with the codes ``S`` fixed.

    DPP parameters: ``S`` (k x T) and ``lam``; the variable is ``L / sigma`` (d x k).

    Parameters
    ----------
    data : MultiTaskData
    n_latent : int
        ``k``.
    loss : {"squared", "logistic"}
    """

    name = "GO-MTL L-step"

    def __init__(self, data: MultiTaskData, n_latent: int, loss: str = "squared") -> None:
        super().__init__(data, loss)
        d, k, T = data.n_features, int(n_latent), data.n_tasks
        self.n_latent = k
        self._coupling = 1
        self.L = cp.Variable((d, k), name="L")
        self.S = cp.Parameter((k, T), name="S")
        self.lam = cp.Parameter(nonneg=True, name="lam")
        self._build()

    def _memory_args(self) -> dict[str, Any]:
        # the W-step model with one "task" of d k features (vec L), seen by every row
        return dict(super()._memory_args(), n_tasks=1, n_features=self.data.n_features * self.n_latent)

    def _params(self):
        return (self.S, self.lam)

    def _statement(self, S, lam) -> cp.Problem:
        losses = [loss_expression(X, y, self.L @ S[:, t], self.loss) for t, (X, y) in enumerate(zip(self.data.Xs, self._ys))]
        return cp.Problem(cp.Minimize(cp.sum(cp.hstack(losses)) + lam * cp.sum_squares(self.L)))

    def set(self, S: np.ndarray, lam: float) -> "GOMTLBasisProblem":
        """Set the codes ``S`` (k x T) and ``lam > 0``."""
        S = check_array(S, "S", ndim=2)
        if S.shape != (self.n_latent, self.data.n_tasks):
            raise ValueError(f"S must have shape {(self.n_latent, self.data.n_tasks)}, got {S.shape}")
        self.S.value = S
        self.lam.value = check_scalar(lam, "lam", strict=True)
        return self

    def objective_at(self, L: np.ndarray) -> float:
        """The objective at ``L`` (d x k), original units."""
        return self._value_at(self.L, check_array(L, "L", ndim=2))

    def _solution(self) -> np.ndarray:
        return self.sigma * self.L.value
