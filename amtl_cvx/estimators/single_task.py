"""Single-task baselines with the AMTL estimators' interface: :class:`SingleTaskRegressor`
and :class:`SingleTaskClassifier` (AMTL's objective at ``B = 0``, every task alone)."""

from __future__ import annotations

import numpy as np

from amtl_cvx._validation import check_scalar
from amtl_cvx.algorithms.result import AMTLFit
from amtl_cvx.algorithms.single_task import fit_single_task
from amtl_cvx.data.container import MultiTaskData
from amtl_cvx.estimators.base import _ClassifierBase, _RegressorBase
from amtl_cvx.problems.objective import amtl_objective, imbalance_weights

__all__ = ["SingleTaskRegressor", "SingleTaskClassifier"]


class _SingleTaskSolver:
    """``_solve`` through :func:`fit_single_task`; ``B = 0``."""

    def __init__(
        self,
        *,
        lam: float = 1.0,
        fit_intercept: bool = True,
        task_column: int | str | None = 0,
        random_state=None,
    ) -> None:
        self.lam = lam
        self.fit_intercept = fit_intercept
        self.task_column = task_column
        self.random_state = random_state

    def _check_solver_params(self) -> None:
        check_scalar(self.lam, "lam", strict=True)

    def _solve(self, data: MultiTaskData) -> AMTLFit:
        W = fit_single_task(data, self.lam, self._loss)
        T = data.n_tasks
        B = np.zeros((T, T))
        objective = amtl_objective(W, B, data, lam=self.lam, mu=0.0, loss=self._loss)
        return AMTLFit(W, B, objective, np.array([objective]), 1, True, c=imbalance_weights(data.n_samples))


class SingleTaskRegressor(_SingleTaskSolver, _RegressorBase):
    """Single-task ridge regression per task, with the AMTL estimators' interface.

    Each task solves ``min 1/(2 n_t) ||y_t - X_t w||^2 + lam ||w||^2`` alone
    (:func:`amtl_cvx.baselines.fit_single_task`): AMTL's objective at ``B = 0``.

    Parameters
    ----------
    lam : float, default=1.0
        Penalty on ``||w_t||^2`` (``> 0``), the same scaling as AMTL's ``lam``.
    fit_intercept : bool, default=True
        Append a ones column; its (regularised) coefficient is ``intercept_``.
    task_column : int, str or None, default=0
        As for :class:`AMTLRegressor`.
    random_state : int, RandomState or None, default=None
        Accepted for compatibility; unused.

    Attributes
    ----------
    coef_, intercept_, tasks_, n_tasks_, objective_, objective_history_, n_iter_,
    converged_, n_features_in_ :
        As for :class:`AMTLRegressor` (``n_iter_ = 1``).
    transfer_matrix_ : numpy.ndarray
        All zeros (no transfer).
    """


class SingleTaskClassifier(_SingleTaskSolver, _ClassifierBase):
    """Single-task L2-logistic regression per task, with the AMTL estimators' interface.

    Each task solves ``min mean(log(1 + exp(-y x'w))) + lam ||w||^2`` alone
    (:func:`amtl_cvx.baselines.fit_single_task`): AMTL's objective at ``B = 0``.

    Parameters
    ----------
    lam : float, default=1.0
        Penalty on ``||w_t||^2`` (``> 0``).
    fit_intercept : bool, default=True
    task_column : int, str or None, default=0
        As for :class:`AMTLClassifier` (None: one-vs-all multi-class).
    random_state : int, RandomState or None, default=None
        Accepted for compatibility; unused.

    Attributes
    ----------
    classes_, coef_, intercept_, tasks_, n_tasks_, objective_, objective_history_,
    n_iter_, converged_, n_features_in_ :
        As for :class:`AMTLClassifier`.
    transfer_matrix_ : numpy.ndarray
        All zeros (no transfer).
    """
