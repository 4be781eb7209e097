"""Subproblem backends: the same three steps solved exactly (CVXPY) or fast (``solvers``).

A backend answers three questions, always in original units:

- ``transfer(W, penalty, lam, B0, ridge)`` -> B, the B-step (``ridge``: the transfer
  ridge ``rho ||B||_F^2``, 0 in the paper's objective);
- ``tasks(B, lam, weights, ridge, W0)`` -> W, the W-step;
- ``curriculum(task, W, learned, q, lam, ridge)`` -> (w, b), one curriculum step
  (``b`` of length T, zero outside ``learned``).

The CVXPY backend builds each statement once per fit and re-solves it with new
parameter values (DPP), so compilation is paid once. :class:`FirstOrderBackend` answers
the same questions with the first-order solvers (``solvers.first_order``,
``solvers.first_order_tasks``, ``solvers.first_order_curriculum``), held to the same
certificates as the fast exact solvers. :class:`VariantBackend` solves the
steps a :class:`~amtl_cvx.problems.custom.Variant` replaces with its statements and
hands the others to a fast or CVXPY backend.
"""

from __future__ import annotations

import logging
import warnings
from typing import Protocol

import numpy as np

from amtl_cvx.algorithms.result import ConvergenceWarning
from amtl_cvx.data.container import MultiTaskData

__all__ = ["Backend", "CvxpyBackend", "FastBackend", "FirstOrderBackend", "VariantBackend", "make_backend",
           "BACKENDS", "ConvergenceWarning"]

logger = logging.getLogger(__name__)

BACKENDS = ("fast", "cvxpy", "first-order")


class Backend(Protocol):
    def transfer(
        self, W: np.ndarray, penalty: np.ndarray, lam: float, B0: np.ndarray | None, ridge: float = 0.0
    ) -> np.ndarray: ...

    def tasks(
        self, B: np.ndarray, lam: float, weights: np.ndarray, ridge: float, W0: np.ndarray | None
    ) -> np.ndarray: ...

    def curriculum(
        self, task: int, W: np.ndarray, learned: np.ndarray, q: np.ndarray, lam: float, ridge: float
    ) -> tuple[np.ndarray, np.ndarray]: ...


class CvxpyBackend:
    """Exact solves of the CVXPY statements of :mod:`amtl_cvx.problems`.

    Parameters
    ----------
    data : MultiTaskData
    loss : {"squared", "logistic"}
    solver : str, optional
        One solver for every step; default OSQP for the QPs and ECOS for the
        exponential-cone (logistic) steps.
    """

    def __init__(self, data: MultiTaskData, loss: str, solver: str | None = None) -> None:
        from amtl_cvx.problems import CurriculumStepProblem, TasksProblem, TransferProblem

        self.data, self.loss, self.solver = data, loss, solver
        self._transfer = TransferProblem(data.n_features, data.n_tasks)
        self._transfer_ridge = None  # built at the first B-step with a transfer ridge
        self._tasks = TasksProblem(data, loss)
        self._curriculum = [
            CurriculumStepProblem(X, y, data.n_tasks, t, loss)
            for t, (X, y) in enumerate(zip(data.Xs, data.ys))
        ]
        self.stats: list = []

    def _solve(self, problem):
        result = problem.solve(self.solver)
        self.stats.append(result.stats)
        return result.solution

    def transfer(self, W, penalty, lam, B0=None, ridge=0.0):
        """The B-step. With a transfer ridge ``rho > 0`` it is the ridge-free statement for
        ``[W; sqrt(rho / lam) I]`` (the same minimiser: ``lam ||w_t - W b||^2 + rho ||b||^2``
        is ``lam ||[w_t; sqrt(rho / lam) e_t] - [W; sqrt(rho / lam) I] b||^2 - rho`` when
        ``b_t = 0``), so the ridge is stated, solved and certified by the same machinery."""
        if ridge == 0.0:
            return self._solve(self._transfer.set(W, penalty, lam))
        from amtl_cvx.problems import TransferProblem

        T = self.data.n_tasks
        if self._transfer_ridge is None:
            self._transfer_ridge = TransferProblem(self.data.n_features + T, T)
        aug = np.vstack([W, np.sqrt(ridge / lam) * np.eye(T)])
        return self._solve(self._transfer_ridge.set(aug, penalty, lam))

    def tasks(self, B, lam, weights, ridge, W0=None):
        return self._solve(self._tasks.set(B, lam, weights, ridge))

    def curriculum(self, task, W, learned, q, lam, ridge):
        return self._solve(self._curriculum[task].set(W, learned, q, lam, ridge))


class FastBackend:
    """The fast exact solvers of the ``solvers`` package, warm-started.

    A solve that stops before its certificate reaches ``tol`` emits a
    :class:`~amtl_cvx.algorithms.result.ConvergenceWarning` (its result is still used).

    Parameters
    ----------
    data : MultiTaskData
    loss : {"squared", "logistic"}
    tol : float, default=1e-9
        Certificate tolerance passed to every solver (a relative KKT residual or
        gradient norm; see each solver). 1e-9 sits above the rounding floor of
        badly scaled B-steps: on the imbalanced release data (task norms from 17 to
        221, sending prices from 3e-5 to 6) the B-step's certificate stalls between
        1e-10 and 1e-9 however long it runs.
    """

    def __init__(self, data: MultiTaskData, loss: str, tol: float = 1e-9) -> None:
        from solvers.tasks import precompute_grams

        self.data, self.loss, self.tol = data, loss, tol
        self.stats: list = []
        # X_t'X_t and X_t'y_t once per fit, reused by every squared-loss W-step
        self._grams = precompute_grams(data.Xs, data.ys) if loss == "squared" else None

    #: the family named in warnings
    _label = "fast"

    @staticmethod
    def _solvers():
        """The B-step, W-step and curriculum-step solvers of this family."""
        from solvers.curriculum import solve_curriculum_step
        from solvers.tasks import solve_tasks
        from solvers.transfer import solve_transfer

        return solve_transfer, solve_tasks, solve_curriculum_step

    def _transfer_options(self) -> dict:
        return {}

    def _check(self, result, what: str):
        self.stats.append(result)
        if not result.converged:
            warnings.warn(
                f"{self._label} {what} solver stopped after {result.n_iter} iterations with "
                f"certificate {result.certificate:.2e} > tol {result.tol:.1e}",
                ConvergenceWarning,
                stacklevel=3,
            )
        return result.solution

    def transfer(self, W, penalty, lam, B0=None, ridge=0.0):
        result = self._solvers()[0](W, penalty, lam, B0=B0, tol=self.tol, ridge=ridge, **self._transfer_options())
        return np.asarray(self._check(result, "B-step"))

    def tasks(self, B, lam, weights, ridge, W0=None):
        result = self._solvers()[1](
            self.data.Xs, self.data.ys, B, lam,
            loss=self.loss, weights=weights, ridge=ridge, W0=W0, tol=self.tol, grams=self._grams,
        )
        return self._check(result, "W-step")

    def curriculum(self, task, W, learned, q, lam, ridge):
        idx = np.flatnonzero(learned)
        result = self._solvers()[2](
            self.data.Xs[task], self.data.ys[task], W[:, idx], q[idx], lam,
            loss=self.loss, ridge=ridge, tol=self.tol,
        )
        w, b_S = self._check(result, "curriculum")
        b = np.zeros(self.data.n_tasks)
        b[idx] = b_S
        return w, b


class FirstOrderBackend(FastBackend):
    """The first-order solvers of the ``solvers`` package, warm-started.

    - B-step: :func:`solvers.first_order.solve_transfer_first_order` (working-set
      FISTA, finished on the identified support);
    - W-step: :func:`solvers.first_order_tasks.solve_tasks_first_order` (accelerated
      gradient with restart in a per-task metric for the squared loss, preconditioned
      L-BFGS for the logistic);
    - curriculum step: :func:`solvers.first_order_curriculum.solve_curriculum_step_first_order`
      (accelerated projected gradient in ``(w, b)``).

    Each stops on the same certificate as the fast exact solver of its step. A solve
    that stops before its certificate reaches ``tol`` emits a
    :class:`~amtl_cvx.algorithms.result.ConvergenceWarning` (its result is still used), and every
    :class:`~solvers.result.SolverResult` is kept in ``stats``, as with
    :class:`FastBackend`.

    Parameters
    ----------
    data : MultiTaskData
    loss : {"squared", "logistic"}
    tol : float, default=1e-9
        Certificate tolerance passed to every solver (see :class:`FastBackend`).
    client : dask.distributed.Client, optional
        Passed to the B-step, which then solves its column blocks on the cluster.
    """

    def __init__(self, data: MultiTaskData, loss: str, tol: float = 1e-9, client=None) -> None:
        super().__init__(data, loss, tol)
        self.client = client

    _label = "first-order"

    @staticmethod
    def _solvers():
        from solvers.first_order import solve_transfer_first_order
        from solvers.first_order_curriculum import solve_curriculum_step_first_order
        from solvers.first_order_tasks import solve_tasks_first_order

        return solve_transfer_first_order, solve_tasks_first_order, solve_curriculum_step_first_order

    def _transfer_options(self) -> dict:
        return {"sparse_output": False, "client": self.client}


def make_backend(backend: str, data: MultiTaskData, loss: str, solver: str | None = None, tol: float = 1e-9,
                 client=None):
    """Build the backend named ``backend`` (one of :data:`BACKENDS`).

    Parameters
    ----------
    backend : {"fast", "cvxpy", "first-order"}
    data : MultiTaskData
    loss : {"squared", "logistic"}
    solver : str, optional
        A CVXPY solver (``backend="cvxpy"`` only).
    tol : float, default=1e-9
        Certificate tolerance of the fast and first-order solvers.
    client : dask.distributed.Client, optional
        Cluster for the first-order B-step (``backend="first-order"`` only).
    """
    if client is not None and backend != "first-order":
        raise ValueError("client applies only to backend='first-order' (its B-step)")
    if backend == "cvxpy":
        return CvxpyBackend(data, loss, solver)
    if backend in ("fast", "first-order"):
        if solver is not None:
            raise ValueError("solver names a CVXPY solver; it applies only to backend='cvxpy'")
        if backend == "fast":
            return FastBackend(data, loss, tol)
        return FirstOrderBackend(data, loss, tol, client=client)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


class VariantBackend:
    """The steps of a :class:`~amtl_cvx.problems.custom.Variant`: its own statements for
    the steps it replaces (solved exactly, see :mod:`amtl_cvx.problems.custom`), ``base``
    (a fast or CVXPY backend) for the others.

    Parameters
    ----------
    variant : Variant
    base : FastBackend or CvxpyBackend
        Solves the steps the variant does not replace.
    data : MultiTaskData
    loss : {"squared", "logistic"}
    lam, mu, ridge : float
        The fit's hyperparameters (constants of the custom statements).
    c : numpy.ndarray
        Imbalance weights.
    solver : str, optional
        One CVXPY solver for the custom statements; default: the automatic ladder.
    """

    def __init__(self, variant, base, data: MultiTaskData, loss: str, *, lam: float, mu: float,
                 c: np.ndarray, ridge: float, solver: str | None = None) -> None:
        from amtl_cvx.problems.custom_statements import CustomTasksStatement, CustomTransferStatement

        self.variant, self.base, self.data, self.loss, self.solver = variant, base, data, loss, solver
        self._consts = dict(lam=lam, mu=mu, c=c, ridge=ridge)
        self.stats = base.stats
        self.custom_transfer = (CustomTransferStatement(variant, data, loss, **self._consts)
                                if variant.customises("transfer") else None)
        self.custom_tasks = (CustomTasksStatement(variant, data, loss, **self._consts)
                             if variant.customises("tasks") else None)
        self._curriculum: dict[int, object] = {}

    def _solve(self, statement):
        result = statement.solve(self.solver)
        self.stats.append(result.stats)
        return result

    def transfer(self, W, penalty, lam, B0=None, ridge=0.0):
        if ridge != 0.0:  # fit_alternating resolves a variant's transfer ridge to 0
            raise ValueError("a variant's fit has no transfer ridge (write it into the variant's statement)")
        if self.custom_transfer is None:
            return self.base.transfer(W, penalty, lam, B0)
        return self._solve(self.custom_transfer.set(W, penalty, lam)).solution

    def tasks(self, B, lam, weights, ridge, W0=None):
        if self.custom_tasks is None:
            return self.base.tasks(B, lam, weights, ridge, W0)
        return self._solve(self.custom_tasks.set(B, lam, weights, ridge)).solution

    def curriculum_statement(self, task: int):
        """The variant's curriculum statement for ``task`` (built at its first use)."""
        from amtl_cvx.problems.custom_statements import CustomCurriculumStatement

        if task not in self._curriculum:
            self._curriculum[task] = CustomCurriculumStatement(
                self.variant, self.data, self.loss, task, **self._consts)
        return self._curriculum[task]

    def curriculum_step(self, task, W, learned, q, lam, ridge, B=None):
        """One curriculum step by the variant's statement: ``(w, b, objective)``, the
        objective being the statement's own at its solution (original units)."""
        result = self._solve(self.curriculum_statement(task).set(W, learned, q, lam, ridge, B))
        w, b = result.solution
        return w, b, result.objective

    def curriculum(self, task, W, learned, q, lam, ridge):
        w, b, _ = self.curriculum_step(task, W, learned, q, lam, ridge)
        return w, b
