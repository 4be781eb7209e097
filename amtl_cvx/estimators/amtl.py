"""The AMTL estimators: :class:`AMTLRegressor` and :class:`AMTLClassifier` over
:func:`~amtl_cvx.algorithms.fit_alternating` (Algorithm 1) and
:func:`~amtl_cvx.algorithms.fit_curriculum` (Algorithm 2), and
:func:`estimator_from_fit` (the estimator equivalent to an
:class:`~amtl_cvx.algorithms.result.AMTLFit`)."""

from __future__ import annotations

import logging
import numbers

import numpy as np

from amtl_cvx._validation import check_scalar
from amtl_cvx.algorithms.alternating import fit_alternating
from amtl_cvx.algorithms.backends import BACKENDS
from amtl_cvx.algorithms.curriculum import SELECTIONS, fit_curriculum
from amtl_cvx.algorithms.hyperparameters import check_transfer_ridge, resolve_ridge
from amtl_cvx.algorithms.result import AMTLFit
from amtl_cvx.data.container import MultiTaskData
from amtl_cvx.estimators.base import _ClassifierBase, _RegressorBase
from amtl_cvx.estimators.layout import _check_bool

__all__ = ["AMTLRegressor", "AMTLClassifier", "estimator_from_fit", "ALGORITHMS"]

logger = logging.getLogger(__name__)

#: Algorithms an AMTL estimator can run.
ALGORITHMS = ("alternating", "curriculum")


class _AMTLSolver:
    """``_solve`` through :func:`fit_alternating` / :func:`fit_curriculum`."""

    def __init__(
        self,
        *,
        lam: float = 1.0,
        mu: float = 0.1,
        algorithm: str = "alternating",
        backend: str = "fast",
        solver: str | None = None,
        ridge: float | str = "auto",
        transfer_ridge: float | str = "auto",
        s: float = 1.0,
        sigma: float = 0.0,
        selection: str = "greedy",
        max_iter: int | None = None,
        tol: float = 1e-6,
        fit_intercept: bool = True,
        task_column: int | str | None = 0,
        warm_start: bool = False,
        random_state=None,
        variant=None,
    ) -> None:
        self.lam = lam
        self.mu = mu
        self.algorithm = algorithm
        self.backend = backend
        self.solver = solver
        self.ridge = ridge
        self.transfer_ridge = transfer_ridge
        self.s = s
        self.sigma = sigma
        self.selection = selection
        self.max_iter = max_iter
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.task_column = task_column
        self.warm_start = warm_start
        self.random_state = random_state
        self.variant = variant

    def _check_solver_params(self) -> None:
        resolve_ridge(self.ridge, check_scalar(self.lam, "lam", strict=True))
        check_transfer_ridge(self.transfer_ridge)
        check_scalar(self.mu, "mu")
        check_scalar(self.s, "s")
        check_scalar(self.sigma, "sigma")
        check_scalar(self.tol, "tol")
        if self.max_iter is not None and (
            isinstance(self.max_iter, bool) or not isinstance(self.max_iter, numbers.Integral) or self.max_iter < 1
        ):
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        exact = self.backend == "cvxpy" or self.variant is not None
        if self.solver is not None and (not isinstance(self.solver, str) or not exact):
            raise ValueError(
                f"solver names a CVXPY solver and applies only to backend='cvxpy' or a variant's "
                f"statements, got solver={self.solver!r} with backend={self.backend!r}"
            )
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        _check_bool(self.warm_start, "warm_start")
        if self.variant is not None:
            from amtl_cvx.problems.custom import Variant

            if not isinstance(self.variant, Variant):
                raise ValueError(f"variant must be an amtl_cvx.Variant or None, got {type(self.variant).__name__}")
            self.variant.check()

    def _warm_start_point(self, data: MultiTaskData) -> dict:
        """``W_init`` and ``B_init`` from the previous fit, if it fits."""
        if not (self.warm_start and self.algorithm == "alternating" and hasattr(self, "coef_")):
            return {}
        W = self._W()
        if W.shape != (data.n_features, data.n_tasks) or [str(t) for t in self.tasks_] != list(data.task_names):
            logger.debug("warm_start: previous fit has other tasks or features; starting cold")
            return {}
        return {"W_init": W, "B_init": self.transfer_matrix_}

    def _solve(self, data: MultiTaskData) -> AMTLFit:
        common = dict(
            lam=self.lam, mu=self.mu, loss=self._loss, ridge=self.ridge, s=self.s,
            sigma=self.sigma, backend=self.backend, solver=self.solver, variant=self.variant,
        )
        if self.algorithm == "curriculum":
            return fit_curriculum(data, selection=self.selection, **common)
        # fit_alternating warns (ConvergenceWarning) when it stops at max_iter
        return fit_alternating(
            data, max_iter=self.max_iter, tol=self.tol, transfer_ridge=self.transfer_ridge,
            **self._warm_start_point(data), **common
        )


_AMTL_PARAMS_DOC = """
    lam : float, default=1.0
        Weight of ``||W - W B||_F^2`` (``> 0``); with ``B = 0`` it is the ridge penalty.
    mu : float, default=0.1
        Weight of the loss-weighted sparsity of the outgoing edges (``>= 0``).
    algorithm : {"alternating", "curriculum"}, default="alternating"
        Algorithm 1 (:func:`~amtl_cvx.algorithms.fit_alternating`) or Algorithm 2
        (:func:`~amtl_cvx.algorithms.fit_curriculum`).
    backend : {"fast", "first-order", "cvxpy"}, default="fast"
        The subproblem solvers: the exact active-set, Cholesky and Newton solvers of
        ``solvers`` (``"fast"``), its first-order solvers (``"first-order"``:
        accelerated gradient; ``docs/first_order.md``), or the exact
        CVXPY statements.
    solver : str, optional
        The CVXPY solver name (``backend="cvxpy"`` only); default: the ladder of
        ``docs/algorithms.md``.
    ridge : float or "auto", default="auto"
        Weight of ``ridge ||W||_F^2``; ``"auto"`` is ``0.1 * lam``
        (:data:`amtl_cvx.algorithms.hyperparameters.AUTO_RIDGE_RATIO`), which keeps the
        problem well posed whatever ``B`` is; ``0`` is the paper's objective.
    transfer_ridge : float or "auto", default="auto"
        Weight of ``transfer_ridge ||B||_F^2`` (``algorithm="alternating"`` only);
        ``"auto"`` is ``0.1 * lam * mean_t ||w_t||^2`` over the single-task models
        (:func:`amtl_cvx.algorithms.hyperparameters.resolve_transfer_ridge`), which keeps
        every B-step's minimiser unique and ``B`` bounded; ``0`` (with ``ridge=0``) is the
        paper's objective. ``"auto"`` is 0 with a ``variant``.
    s, sigma : float, default=1.0, 0.0
        Imbalance weights ``c_t = s / n_t**sigma``; the default gives ``c_t = 1``.
    selection : {"greedy", "static"}, default="greedy"
        Curriculum task selection (``algorithm="curriculum"`` only).
    max_iter : int, optional
        Maximum L-BFGS iterations (default 1000) or alternations (default 100) of
        :func:`~amtl_cvx.algorithms.fit_alternating` (``algorithm="alternating"``).
    tol : float, default=1e-6
        Tolerance on the fit's KKT certificate (``algorithm="alternating"``).
    fit_intercept : bool, default=True
        Append a ones column; its (regularised, coupled) coefficient is ``intercept_``.
    task_column : int, str or None, default=0
        The column of ``X`` holding each row's integer task id (see the module
        docstring); None: the tasks share all rows.
    warm_start : bool, default=False
        Start Algorithm 1 from the previous fit's ``W`` when the tasks and features match.
    random_state : int, RandomState or None, default=None
        Accepted for scikit-learn compatibility; the algorithms are deterministic and
        do not use it.
    variant : amtl_cvx.Variant, optional
        An AMTL variant (custom CVXPY statements of some steps, see
        ``docs/prototyping.md``): passed to the fit functions as ``variant=``; its steps
        are solved by CVXPY (``solver`` applies to them), the others by ``backend``.
        A variant is cloned like any parameter, and its own hyperparameters can be
        searched as ``variant__<name>``.
"""

_FITTED_DOC = """
    coef_ : numpy.ndarray, shape (n_tasks, n_features)
        Row k: the weights of task ``tasks_[k]`` (the task column and the bias excluded).
    intercept_ : numpy.ndarray, shape (n_tasks,)
        The bias row of ``W`` (zeros when ``fit_intercept=False``).
    transfer_matrix_ : numpy.ndarray, shape (n_tasks, n_tasks)
        ``B``: ``B[s, t] > 0`` is transfer from task ``tasks_[s]`` to task ``tasks_[t]``.
    tasks_ : numpy.ndarray
        The task labels, in the order of the rows of ``coef_``.
    n_tasks_ : int
    objective_ : float
        The final AMTL objective ``F(W, B)``.
    objective_history_ : numpy.ndarray
        ``F`` at the start and after each alternation (Algorithm 1), or after each
        curriculum step (Algorithm 2).
    n_iter_ : int
        Alternations or curriculum steps.
    converged_ : bool
    order_ : numpy.ndarray
        Curriculum: task positions in the order learned; alternating: empty.
    imbalance_weights_ : numpy.ndarray, shape (n_tasks,)
        ``c_t`` used.
    n_features_in_ : int
        Columns of ``X`` seen by ``fit`` (the task column included).
    feature_names_in_ : numpy.ndarray
        Column names, when ``X`` was a DataFrame with string column names.
"""


class AMTLRegressor(_AMTLSolver, _RegressorBase):
    __doc__ = (
        """Asymmetric multi-task regression (squared loss), scikit-learn style.

    A thin layer over :func:`amtl_cvx.algorithms.fit_alternating` and
    :func:`amtl_cvx.algorithms.fit_curriculum`; the data layout (a task column) is described in
    :mod:`amtl_cvx.estimators`.

    Parameters
    ----------"""
        + _AMTL_PARAMS_DOC
        + """
    Attributes
    ----------"""
        + _FITTED_DOC
        + """
    Examples
    --------
    >>> from amtl_cvx import make_regression_tasks
    >>> from amtl_cvx.estimators import AMTLRegressor, stack_tasks
    >>> ds = make_regression_tasks(n_tasks=6, n_features=5, random_state=0)
    >>> X, y = stack_tasks(ds.train)
    >>> model = AMTLRegressor(lam=0.1, mu=1.0).fit(X, y)
    >>> model.coef_.shape
    (6, 5)
    """
    )


class AMTLClassifier(_AMTLSolver, _ClassifierBase):
    __doc__ = (
        """Asymmetric multi-task classification (logistic loss), scikit-learn style.

    Binary tasks with a task column, or (``task_column=None``) multi-class as one-vs-all
    tasks sharing all rows with argmax prediction, as in the original USPS experiment.
    A thin layer over :func:`amtl_cvx.algorithms.fit_alternating` and
    :func:`amtl_cvx.algorithms.fit_curriculum`.

    Parameters
    ----------"""
        + _AMTL_PARAMS_DOC
        + """
    Attributes
    ----------
    classes_ : numpy.ndarray
        The labels; with binary tasks ``classes_[1]`` is the positive label.
"""
        + _FITTED_DOC
    )


def estimator_from_fit(fit: AMTLFit, data: MultiTaskData, *, loss: str, **params):
    """The fitted estimator equivalent to an :class:`~amtl_cvx.algorithms.result.AMTLFit` on ``data``.

    So that a model fitted through the functional API (or by ``amtl-cvx fit``) can be
    saved with :func:`amtl_cvx.save_model`, read back with :func:`amtl_cvx.load_model`
    and used like any fitted estimator. Squared loss gives an :class:`AMTLRegressor`
    whose ``X`` carries the task id (0..T-1) in column 0; logistic loss on tasks that
    share their rows (one-vs-all, the release's USPS layout) gives an
    :class:`AMTLClassifier` with ``task_column=None`` and classes 0..T-1, and logistic
    loss on tasks with their own rows an :class:`AMTLClassifier` whose tasks are binary
    with classes -1 and +1. ``data.add_bias`` becomes ``fit_intercept``.

    Parameters
    ----------
    fit : AMTLFit
    data : MultiTaskData
        The training data of ``fit``.
    loss : {"squared", "logistic"}
        The loss ``fit`` was fitted with.
    **params
        Estimator parameters (``lam``, ``mu``, ``ridge``, ``sigma``, ``algorithm`` ...)
        recorded in the estimator.

    Returns
    -------
    AMTLRegressor or AMTLClassifier
    """
    if not isinstance(fit, AMTLFit) or not isinstance(data, MultiTaskData):
        raise ValueError("fit must be an AMTLFit and data the MultiTaskData it was fitted on")
    W = np.asarray(fit.W, dtype=np.float64)
    if W.shape != (data.n_features, data.n_tasks):
        raise ValueError(
            f"fit.W has shape {W.shape}, data has {data.n_features} features and {data.n_tasks} tasks"
        )
    if loss not in ("squared", "logistic"):
        raise ValueError(f"loss must be 'squared' or 'logistic', got {loss!r}")
    logistic = loss == "logistic"
    shared = logistic and all(X is data.Xs[0] or np.array_equal(X, data.Xs[0]) for X in data.Xs)
    if shared and data.n_tasks == 2:
        raise ValueError(
            "two one-vs-all tasks on shared rows have no AMTLClassifier equivalent (with two "
            "classes it fits a single task)"
        )
    cls = AMTLClassifier if logistic else AMTLRegressor
    est = cls(fit_intercept=bool(data.add_bias), task_column=None if shared else 0, **params)
    est._check_layout_params()
    est._check_solver_params()
    est._set_fit_attributes(fit, np.arange(data.n_tasks))
    est.n_features_in_ = est.coef_.shape[1] + (0 if shared else 1)
    est._y_2d = False
    if logistic:
        est.classes_ = est.tasks_.copy() if shared else np.array([-1.0, 1.0])
    return est
