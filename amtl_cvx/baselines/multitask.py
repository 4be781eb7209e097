r"""Standard multi-task baselines, each stated in CVXPY and solved exactly, with a fast path.

``W`` is d x T with column ``w_t``; ``L_t`` is task t's mean loss, as everywhere in the
package: ``1/(2 n_t) ||y_t - X_t w||^2`` (squared) or ``mean(log(1 + exp(-y_t * X_t w)))``
(logistic, labels in {-1, +1}). The tasks are weighted equally (a sum of per-task mean
losses, like AMTL's objective). The models, with their exact scaling:

=====================  ==========================================================================
``pooled``             ``min_w sum_t L_t(w) + lam ||w||^2`` (one model; ``W`` has equal columns)
``mean_regularized``   ``min_W sum_t L_t(w_t) + lam sum_t ||w_t - wbar||^2 + rho ||W||_F^2``,
                       ``wbar`` the mean of the columns (Evgeniou & Pontil, KDD 2004)
``l21``                ``min_W sum_t L_t(w_t) + lam sum_j ||W[j, :]||_2 + rho ||W||_F^2``
                       (joint feature selection; Argyriou, Evgeniou & Pontil 2008)
``trace_norm``         ``min_W sum_t L_t(w_t) + lam ||W||_* + rho ||W||_F^2`` (low rank)
``gomtl``              ``min_{L, S} sum_t L_t(L s_t) + mu ||S||_1 + lam ||L||_F^2``, ``W = L S``,
                       ``L`` d x k (Kumar & Daume III, ICML 2012)
=====================  ==========================================================================

Hyperparameters: ``lam > 0`` (``lam >= 0`` for the mean-regularised model, whose
``rho > 0`` makes it strictly convex); ``rho >= 0`` for the norms, default 0 (the
standard formulations; with ``rho = 0`` the minimiser need not be unique when tasks have
fewer rows than features, though the objective value is); ``mu > 0``, ``lam > 0`` and
``1 <= k <= d`` for GO-MTL.

Limits that the tests check: the mean-regularised model with ``lam = 0`` is single-task
ridge with penalty ``rho`` (:func:`~amtl_cvx.baselines.fit_single_task`), and as
``lam -> inf`` it tends to the pooled model with ``lam_pooled = T rho`` (all columns
equal, ``rho ||W||_F^2 = T rho ||w||^2``); the l2,1 / trace-norm / l1 models give
``W = 0`` exactly when ``lam >= lambda_max`` (:func:`solvers.baselines.lambda_max`).

Backends
--------
``backend="cvxpy"`` solves the statements of :mod:`amtl_cvx.problems.baselines` with the
exact solvers (:mod:`amtl_cvx.exact`; cvxpy is imported only then). ``backend="fast"``
(the default) uses :mod:`solvers.baselines` (numpy / scipy): closed forms for the
squared-loss pooled and mean-regularised models (a d x d system, see that module), Newton
for their logistic versions (relative Newton decrement <= 1e-10), proximal Newton for the
l2,1 and trace norms (:mod:`solvers.prox_newton`; with the squared loss its Hessians are
the constant Grams and its inner solves end with Newton's method on the row support or
on the rank manifold, which badly scaled, collinear features need; relative duality gap
<= ``tol``, default 1e-9: a bound on the relative suboptimality of the objective whatever
the data's scale), and for the GO-MTL steps an exact active-set solve of the codes
(proximal Newton for the logistic loss; largest per-task relative duality gap <= 1e-10)
and a direct solve / Newton for the basis (:class:`solvers.baselines.GOMTLSteps`). A fast
solve that misses its tolerance warns (:class:`~amtl_cvx.backends.ConvergenceWarning`);
``backend="cvxpy"`` is the independent route.

GO-MTL alternates an S-step (the codes; T independent l1-regularised problems) and an
L-step (the basis; one ridge-type problem in ``L``), each solved exactly, from ``L`` =
the top-k left singular vectors of the single-task ridge solution (penalty
``init_ridge``; deterministic, the sign of each vector fixed so that its largest entry is
positive) and ``S = 0``. A step that would raise the objective (only by rounding: each
step is solved to its optimum) is not taken, so the history is non-increasing; the fit
stops when an alternation lowers the objective by at most ``tol`` relative, and warns at
``max_iter``. The objective is invariant under ``(L, S) -> (c L, S / c)`` with
``(mu, lam) -> (mu c, lam / c^2)``: only ``mu^2 lam`` sets the regularisation, so the
default grid varies ``mu`` (and ``k``) and holds ``lam`` at two values.

Registry
--------
:data:`MULTITASK_BASELINES` maps a name to a :class:`MultiTaskBaseline`: the fit
function, its hyperparameter names, the numpy objective and a default grid
(:meth:`MultiTaskBaseline.param_grid`; for the norm penalties relative to
``lambda_max`` of the data, the one weight where the model becomes ``W = 0``).

scikit-learn estimators
-----------------------
:class:`PooledRegressor`, :class:`MeanRegularizedRegressor`, :class:`L21Regressor`,
:class:`TraceNormRegressor`, :class:`GOMTLRegressor` and their ``...Classifier``
counterparts share the data layout (a task column) of :mod:`amtl_cvx.estimators`;
``transfer_matrix_`` is zero.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from amtl_cvx._validation import check_array, check_scalar
from amtl_cvx.backends import ConvergenceWarning
from amtl_cvx.baselines.single_task import fit_single_task
from amtl_cvx.data import MultiTaskData
from amtl_cvx.estimators import _ClassifierBase, _RegressorBase
from amtl_cvx.fit import AMTLFit, blas_limit
from amtl_cvx.objective import imbalance_weights, task_loss, task_losses
from solvers import baselines as fast

__all__ = [
    "fit_pooled",
    "fit_mean_regularized",
    "fit_l21",
    "fit_trace_norm",
    "fit_gomtl",
    "GOMTLFit",
    "gomtl_initial_basis",
    "pooled_objective",
    "mean_regularized_objective",
    "l21_objective",
    "trace_norm_objective",
    "gomtl_objective",
    "MultiTaskBaseline",
    "MULTITASK_BASELINES",
    "PooledRegressor",
    "PooledClassifier",
    "MeanRegularizedRegressor",
    "MeanRegularizedClassifier",
    "L21Regressor",
    "L21Classifier",
    "TraceNormRegressor",
    "TraceNormClassifier",
    "GOMTLRegressor",
    "GOMTLClassifier",
]


# ============================================================ checks
def _check_data(data: Any, loss: str) -> MultiTaskData:
    if not isinstance(data, MultiTaskData):
        raise ValueError(f"data must be a MultiTaskData, got {type(data).__name__}")
    data.check_labels(loss)
    return data


#: The baselines' solvers: their fast solvers or their CVXPY statements (the first-order
#: family of :mod:`solvers` covers AMTL's subproblems, not the baselines').
_BASELINE_BACKENDS = ("fast", "cvxpy")


def _check_backend(backend: Any, solver: Any) -> None:
    if backend not in _BASELINE_BACKENDS:
        raise ValueError(f"backend must be one of {_BASELINE_BACKENDS}, got {backend!r}")
    if solver is not None and (not isinstance(solver, str) or backend != "cvxpy"):
        raise ValueError(
            f"solver names a CVXPY solver and applies only to backend='cvxpy', got "
            f"solver={solver!r} with backend={backend!r}"
        )


def _check_int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return int(value)


def _warn_unless(result, what: str) -> None:
    if not result.converged:
        warnings.warn(
            f"{what}: the fast solver stopped after {result.n_iter} iterations with certificate "
            f"{result.certificate:.2e} > tol {result.tol:.1e}; raise max_iter, or use backend='cvxpy'",
            ConvergenceWarning,
            stacklevel=3,
        )


# ======================================================== objectives
def _W(W: Any, data: MultiTaskData) -> np.ndarray:
    W = check_array(W, "W", ndim=2)
    if W.shape != (data.n_features, data.n_tasks):
        raise ValueError(f"W must have shape {(data.n_features, data.n_tasks)}, got {W.shape}")
    return W


def pooled_objective(W: Any, data: MultiTaskData, *, lam: float, loss: str = "squared") -> float:
    """``sum_t L_t(w) + lam ||w||^2`` at ``w`` (d,) or at ``W`` (d x T) with equal columns."""
    w = check_array(W, "W")
    if w.ndim == 2:
        w = _W(w, data)
        if not np.all(w == w[:, :1]):
            raise ValueError("W must have equal columns (the pooled model)")
        w = w[:, 0]
    if w.shape != (data.n_features,):
        raise ValueError(f"w must have shape ({data.n_features},), got {w.shape}")
    W = np.repeat(w[:, None], data.n_tasks, axis=1)
    return float(task_losses(W, data, loss).sum() + lam * (w @ w))


def mean_regularized_objective(W: Any, data: MultiTaskData, *, lam: float, rho: float, loss: str = "squared") -> float:
    """``sum_t L_t(w_t) + lam sum_t ||w_t - wbar||^2 + rho ||W||_F^2``."""
    W = _W(W, data)
    dev = W - W.mean(axis=1, keepdims=True)
    return float(task_losses(W, data, loss).sum() + lam * np.sum(dev * dev) + rho * np.sum(W * W))


def l21_objective(W: Any, data: MultiTaskData, *, lam: float, rho: float = 0.0, loss: str = "squared") -> float:
    """``sum_t L_t(w_t) + lam sum_j ||W[j, :]||_2 + rho ||W||_F^2``."""
    W = _W(W, data)
    return float(task_losses(W, data, loss).sum() + lam * np.sum(np.sqrt(np.sum(W * W, axis=1)))
                 + rho * np.sum(W * W))


def trace_norm_objective(W: Any, data: MultiTaskData, *, lam: float, rho: float = 0.0, loss: str = "squared") -> float:
    """``sum_t L_t(w_t) + lam ||W||_* + rho ||W||_F^2``."""
    W = _W(W, data)
    return float(task_losses(W, data, loss).sum() + lam * np.sum(np.linalg.svd(W, compute_uv=False))
                 + rho * np.sum(W * W))


def _gomtl_value(L: np.ndarray, S: np.ndarray, data: MultiTaskData, mu: float, lam: float, loss: str) -> float:
    """:func:`gomtl_objective` without its checks, with the same arithmetic (``task_losses``
    is ``task_loss`` over the tasks), so equal to it to the last bit: ``fit_gomtl``'s
    history, evaluated twice per alternation."""
    W = L @ S
    if loss == "squared":  # task_loss's squared branch, inlined (the same operations, in order)
        losses = np.empty(W.shape[1])
        for t, (X, y) in enumerate(zip(data.Xs, data.ys)):
            r = y - X @ W[:, t]
            losses[t] = float(r @ r) / (2.0 * X.shape[0])
    else:
        losses = np.array([task_loss(X, y, W[:, t], loss) for t, (X, y) in enumerate(zip(data.Xs, data.ys))])
    return float(losses.sum() + mu * np.sum(np.abs(S)) + lam * np.sum(L * L))


def gomtl_objective(L: Any, S: Any, data: MultiTaskData, *, mu: float, lam: float, loss: str = "squared") -> float:
    """``sum_t L_t(L s_t) + mu ||S||_1 + lam ||L||_F^2``."""
    L = check_array(L, "L", ndim=2)
    S = check_array(S, "S", ndim=2)
    W = _W(L @ S, data)
    return float(task_losses(W, data, loss).sum() + mu * np.sum(np.abs(S)) + lam * np.sum(L * L))


# ====================================================== fit functions
def fit_pooled(
    data: MultiTaskData, lam: float, loss: str = "squared", *, backend: str = "fast", solver: str | None = None
) -> np.ndarray:
    """One model for all tasks: ``min_w sum_t L_t(w) + lam ||w||^2``; return ``W`` (d x T)
    with equal columns.

    Parameters
    ----------
    data : MultiTaskData
    lam : float
        ``lam > 0``.
    loss : {"squared", "logistic"}
    backend : {"fast", "cvxpy"}
        ``"fast"``: the closed form ``(sum_t X_t'X_t / n_t + 2 lam I) w = sum_t X_t'y_t / n_t``
        (squared) or Newton (logistic), :func:`solvers.baselines.solve_pooled`;
        ``"cvxpy"``: :class:`amtl_cvx.problems.baselines.PooledProblem`.
    solver : str, optional
        The CVXPY solver (``backend="cvxpy"`` only; default: the ladder).
    """
    data = _check_data(data, loss)
    lam = check_scalar(lam, "lam", strict=True)
    _check_backend(backend, solver)
    if backend == "cvxpy":
        from amtl_cvx.problems.baselines import PooledProblem

        return PooledProblem(data, loss).set(lam).solve(solver).solution
    result = fast.solve_pooled(data.Xs, data.ys, lam, loss=loss)
    _warn_unless(result, "fit_pooled")
    return np.repeat(result.solution[:, None], data.n_tasks, axis=1)


def fit_mean_regularized(
    data: MultiTaskData,
    lam: float,
    rho: float,
    loss: str = "squared",
    *,
    backend: str = "fast",
    solver: str | None = None,
) -> np.ndarray:
    """Mean-regularised MTL: ``min_W sum_t L_t(w_t) + lam sum_t ||w_t - wbar||^2 + rho ||W||_F^2``.

    Parameters
    ----------
    data : MultiTaskData
    lam : float
        ``lam >= 0``: pull of every task towards the mean model ``wbar``.
    rho : float
        ``rho > 0``: ridge on every task.
    loss : {"squared", "logistic"}
    backend : {"fast", "cvxpy"}
        ``"fast"``: the one linear system (squared; reduced to a d x d system, cost
        ``O(T d^3)``) or Newton on it (logistic), :func:`solvers.baselines.solve_mean_regularized`;
        ``"cvxpy"``: :class:`amtl_cvx.problems.baselines.MeanRegularizedProblem`.
    solver : str, optional

    Returns
    -------
    numpy.ndarray, shape (d, T)
    """
    data = _check_data(data, loss)
    lam = check_scalar(lam, "lam")
    rho = check_scalar(rho, "rho", strict=True)
    _check_backend(backend, solver)
    if backend == "cvxpy":
        from amtl_cvx.problems.baselines import MeanRegularizedProblem

        return MeanRegularizedProblem(data, loss).set(lam, rho).solve(solver).solution
    result = fast.solve_mean_regularized(data.Xs, data.ys, lam, rho, loss=loss)
    _warn_unless(result, "fit_mean_regularized")
    return result.solution


def _fit_norm(data, lam, loss, rho, backend, solver, tol, max_iter, penalty, what, W0=None, blas_threads=1) -> np.ndarray:
    data = _check_data(data, loss)
    lam = check_scalar(lam, "lam", strict=True)
    rho = check_scalar(rho, "rho")
    _check_backend(backend, solver)
    if backend == "cvxpy":
        from amtl_cvx.problems.baselines import L21Problem, TraceNormProblem

        cls = L21Problem if penalty == "l21" else TraceNormProblem
        return cls(data, loss).set(lam, rho).solve(solver).solution
    tol = check_scalar(tol, "tol", strict=True)
    with blas_limit(blas_threads):
        result = fast.solve_penalized(
            data.Xs, data.ys, lam, penalty=penalty, rho=rho, loss=loss, W0=W0, tol=tol, max_iter=max_iter
        )
    _warn_unless(result, what)
    return result.solution


def fit_l21(
    data: MultiTaskData,
    lam: float,
    loss: str = "squared",
    *,
    rho: float = 0.0,
    backend: str = "fast",
    solver: str | None = None,
    tol: float = 1e-9,
    max_iter: int = 100_000,
    W0: np.ndarray | None = None,
    blas_threads: int | None = 1,
) -> np.ndarray:
    """Joint feature selection: ``min_W sum_t L_t(w_t) + lam sum_j ||W[j, :]||_2 + rho ||W||_F^2``.

    Parameters
    ----------
    data : MultiTaskData
    lam : float
        ``lam > 0``; ``W = 0`` for ``lam >= max_j ||G[j, :]||_2``, ``G`` the gradient of
        the losses at ``W = 0`` (:func:`solvers.baselines.lambda_max`).
    loss : {"squared", "logistic"}
    rho : float, default=0.0
        ``rho >= 0`` (0: the standard formulation).
    backend : {"fast", "cvxpy"}
        ``"fast"``: proximal Newton (squared loss: constant Hessians, Newton's method on
        the row support to finish) to a relative duality gap ``tol``
        (:func:`solvers.baselines.solve_penalized`);
        ``"cvxpy"``: :class:`amtl_cvx.problems.baselines.L21Problem`.
    solver : str, optional
    tol, max_iter :
        The fast solver's tolerance and iteration budget.
    W0 : numpy.ndarray, optional
        (d, T) start of the fast solver (a warm start, for instance the solution at a
        larger ``lam``); ignored by ``backend="cvxpy"``.
    blas_threads : int or None, default=1
        BLAS threads of the fast solver (:func:`amtl_cvx.fit.blas_limit`; ``None``: as
        configured): its products are small (d x d per task).

    Returns
    -------
    numpy.ndarray, shape (d, T)
    """
    return _fit_norm(data, lam, loss, rho, backend, solver, tol, max_iter, "l21", "fit_l21", W0, blas_threads)


def fit_trace_norm(
    data: MultiTaskData,
    lam: float,
    loss: str = "squared",
    *,
    rho: float = 0.0,
    backend: str = "fast",
    solver: str | None = None,
    tol: float = 1e-9,
    max_iter: int = 100_000,
    W0: np.ndarray | None = None,
    blas_threads: int | None = 1,
) -> np.ndarray:
    """Low rank: ``min_W sum_t L_t(w_t) + lam ||W||_* + rho ||W||_F^2``.

    Parameters are those of :func:`fit_l21`; ``W = 0`` for ``lam >= ||G||_2`` (the
    spectral norm of the gradient at 0). The CVXPY statement
    (:class:`amtl_cvx.problems.baselines.TraceNormProblem`) is a semidefinite program:
    Clarabel only, and its memory grows like ``(d + T)^4``.
    """
    return _fit_norm(data, lam, loss, rho, backend, solver, tol, max_iter, "trace", "fit_trace_norm", W0, blas_threads)


@dataclass(frozen=True)
class GOMTLFit:
    """A fitted GO-MTL model.

    Attributes
    ----------
    W : numpy.ndarray, shape (d, T)
        ``L @ S``.
    L : numpy.ndarray, shape (d, k)
        The latent basis.
    S : numpy.ndarray, shape (k, T)
        The sparse codes.
    objective : float
        ``sum_t L_t(L s_t) + mu ||S||_1 + lam ||L||_F^2``.
    objective_history : numpy.ndarray
        The objective at the start (``L`` initial, ``S = 0``) and after every
        alternation (the moves of :func:`fit_gomtl`, S-step, L-step): non-increasing.
    n_iter : int
        Alternations.
    converged : bool
        The last alternation lowered the objective by at most ``tol`` relative.
    """

    W: np.ndarray
    L: np.ndarray
    S: np.ndarray
    objective: float
    objective_history: np.ndarray
    n_iter: int
    converged: bool


def gomtl_initial_basis(data: MultiTaskData, n_latent: int, loss: str = "squared", init_ridge: float = 1e-2) -> np.ndarray:
    """GO-MTL's starting ``L``: the top-``n_latent`` left singular vectors of the single-task
    ridge ``W`` (penalty ``init_ridge``), each signed so that its largest entry is positive.

    The ridge ``W`` (T Newton solves for the logistic loss) does not depend on
    ``n_latent``: the last few are kept, keyed by a digest of the data's bytes, the loss
    and ``init_ridge``, so a grid over ``n_latent``, ``mu`` and ``lam`` fits it once."""
    import hashlib

    data = _check_data(data, loss)
    k = _check_int(n_latent, "n_latent", 1, data.n_features)
    init_ridge = check_scalar(init_ridge, "init_ridge", strict=True)
    digest = hashlib.blake2b(repr((loss, init_ridge)).encode(), digest_size=32)
    for X, y in zip(data.Xs, data.ys):
        for a in (X, y):
            a = np.ascontiguousarray(a, dtype=np.float64)
            digest.update(repr(a.shape).encode())
            digest.update(a.data)
    key = digest.hexdigest()
    cache = gomtl_initial_basis.__dict__.setdefault("_ridge_cache", {})
    if key not in cache:
        while len(cache) >= 8:  # the oldest first
            cache.pop(next(iter(cache)))
        W = fit_single_task(data, init_ridge, loss)
        W.setflags(write=False)
        cache[key] = W
    U = np.linalg.svd(cache[key], full_matrices=True)[0][:, :k]
    signs = np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(k)])
    return U * np.where(signs == 0, 1.0, signs)


def fit_gomtl(
    data: MultiTaskData,
    n_latent: int,
    mu: float,
    lam: float,
    loss: str = "squared",
    *,
    backend: str = "fast",
    solver: str | None = None,
    tol: float = 1e-6,
    max_iter: int = 500,
    init_ridge: float = 1e-2,
    L_init: np.ndarray | None = None,
    blas_threads: int | None = 1,
    accelerate: bool = True,
) -> GOMTLFit:
    """GO-MTL: ``min_{L, S} sum_t L_t(L s_t) + mu ||S||_1 + lam ||L||_F^2``, ``W = L S``.

    Alternating exact steps (module docstring): S-step
    (:class:`~amtl_cvx.problems.baselines.GOMTLCodesProblem` or
    :class:`solvers.baselines.GOMTLSteps`, largest per-task relative duality gap 1e-10;
    warm-started from the previous codes), L-step
    (:class:`~amtl_cvx.problems.baselines.GOMTLBasisProblem` or
    :class:`solvers.baselines.GOMTLSteps`, relative Newton decrement 1e-10).

    **Acceleration** (``accelerate=True``). Plain alternation crawls: on the logistic
    ``usps1.mat`` (k = 2, mu = 0.0074, lam = 0.001) consecutive changes of ``(L, S)`` keep a
    cosine of 1.0000 and a ratio of 0.996, and it takes 347 alternations to its stopping
    rule. Two moves, each taken only when it lowers the objective, precede the exact steps
    of every alternation:

    * from the third alternation on, an extrapolation along the change of ``(L, S)`` over
      the last two alternations, to ``(L, S) + beta (dL, dS)``, ``beta`` searched on the
      objective (the last accepted ``beta``, doubled while the objective falls, or
      quartered up to three times until it falls);
    * the best rescaling of the latent tasks, ``(L c, S / c)``
      (:func:`solvers.baselines.gomtl_balance`: ``W = L S`` and the loss do not change, the
      penalty falls), a direction along which the objective changes only through the
      penalty and alternation moves slowly.

    The returned point is the output of an exact L-step after an exact S-step, the history
    is non-increasing, and the stopping rule is the plain one applied to the whole
    alternation (moves included): it stops when the moves and both exact steps together
    lowered the objective by at most ``tol``. On the instance above it stops after 20
    alternations; on the default grid of ``usps1.mat`` (70 fits) 2227 alternations in all,
    6 fits at ``max_iter=100`` instead of 34. The problem is not convex and another
    trajectory can end at another stationary point: on that grid the final objective was
    lower in 47 fits and higher in 5 (by up to 3%). ``accelerate=False``: plain
    alternation. The decisions inside an alternation use the objective evaluated from
    the prepared data (:meth:`solvers.baselines.GOMTLSteps.objective`, or the steps' own
    values); the history is :func:`gomtl_objective` at the end of each alternation, and an
    alternation that would raise it (rounding) keeps its start.

    Parameters
    ----------
    data : MultiTaskData
    n_latent : int
        ``k``, in ``1..d``.
    mu : float
        ``mu > 0``: sparsity of the codes.
    lam : float
        ``lam > 0``: ridge on the basis.
    loss : {"squared", "logistic"}
    backend : {"fast", "cvxpy"}
    solver : str, optional
        The CVXPY solver of both steps (``backend="cvxpy"`` only).
    tol : float, default=1e-6
        Stop when an alternation lowers the objective by at most ``tol`` relative.
    max_iter : int, default=500
        Alternations; reaching it warns (:class:`~amtl_cvx.backends.ConvergenceWarning`).
        On the default grid of ``make_tabular_tasks()`` the slowest fits (smallest ``mu``,
        ``n_latent`` 3 to 8) meet the stopping rule after 101 to 249 alternations, with
        objectives up to 2.6e-3 (relative) below where 100 left them.
    init_ridge : float, default=1e-2
        Penalty of the single-task ridge whose singular vectors start ``L``.
    L_init : numpy.ndarray, optional
        (d, k) starting basis instead.
    blas_threads : int or None, default=1
        BLAS threads during the fit (:func:`amtl_cvx.fit.blas_limit`; ``None``: as
        configured). The steps make many small products and factorisations (the L-step's
        is ``dk x dk``); with two threads on a machine whose other core was busy a
        168 x 168 Cholesky factorisation took 120 ms instead of 0.2 ms. The starting
        basis (:func:`gomtl_initial_basis`) is computed under the same limit.
    accelerate : bool, default=True
        Extrapolate and rescale before the exact steps of each alternation (above).

    Returns
    -------
    GOMTLFit
    """
    data = _check_data(data, loss)
    d, T = data.n_features, data.n_tasks
    k = _check_int(n_latent, "n_latent", 1, d)
    mu = check_scalar(mu, "mu", strict=True)
    lam = check_scalar(lam, "lam", strict=True)
    tol = check_scalar(tol, "tol")
    max_iter = _check_int(max_iter, "max_iter", 1, 2**31)
    _check_backend(backend, solver)
    if L_init is not None:
        L = check_array(L_init, "L_init", ndim=2)
        if L.shape != (d, k):
            raise ValueError(f"L_init must have shape {(d, k)}, got {L.shape}")
    S = np.zeros((k, T))

    def F(L_: np.ndarray, S_: np.ndarray) -> float:
        return _gomtl_value(L_, S_, data, mu, lam, loss)

    steps = fast.GOMTLSteps(data.Xs, data.ys, loss)  # the data prepared once for all steps

    def value(L_: np.ndarray, S_: np.ndarray) -> float:  # F from the prepared data: the decisions
        return steps.objective(L_, S_, mu, lam)

    if backend == "cvxpy":
        from amtl_cvx.problems.baselines import GOMTLBasisProblem, GOMTLCodesProblem

        codes, basis = GOMTLCodesProblem(data, k, loss), GOMTLBasisProblem(data, k, loss)

        def s_step(L_, S_):
            S_new = codes.set(L_, mu).solve(solver).solution
            return S_new, value(L_, S_new)

        def l_step(L_, S_):
            L_new = basis.set(S_, lam).solve(solver).solution
            return L_new, value(L_new, S_)
    else:

        def s_step(L_, S_):  # warm-started from the previous codes (their support and signs)
            result = steps.codes(L_, mu, S0=S_)
            _warn_unless(result, "fit_gomtl (S-step)")
            return result.solution, result.objective + lam * float(np.sum(L_ * L_))

        def l_step(L_, S_):
            result = steps.basis(S_, lam, L0=L_)
            _warn_unless(result, "fit_gomtl (L-step)")
            return result.solution, result.objective + mu * float(np.sum(np.abs(S_)))

    def move(L_, S_, f, dL, dS, beta):
        """The extrapolation (docstring): ``(L, S, value, next beta)``; unmoved unless the value falls."""
        best_f, best_b, b = f, 0.0, beta
        f_b = value(L_ + b * dL, S_ + b * dS)
        if f_b < best_f:
            best_f, best_b = f_b, b
            while b < 1024.0:
                b *= 2.0
                f_b = value(L_ + b * dL, S_ + b * dS)
                if not f_b < best_f:
                    break
                best_f, best_b = f_b, b
        else:
            for _ in range(3):
                b /= 4.0
                f_b = value(L_ + b * dL, S_ + b * dS)
                if f_b < best_f:
                    best_f, best_b = f_b, b
                    break
        if best_b == 0.0:
            return L_, S_, f, max(beta / 4.0, 1.0 / 64.0)
        return L_ + best_b * dL, S_ + best_b * dS, best_f, best_b

    def balance(L_, S_, f):
        """The best rescaling of the latent tasks (:func:`solvers.baselines.gomtl_balance`:
        ``W = L S`` and the loss do not change), taken when the penalty falls beyond rounding."""
        L_c, S_c, drop = fast.gomtl_balance(L_, S_, mu, lam)
        return (L_c, S_c, f - drop) if drop > 64 * np.finfo(float).eps * abs(f) else (L_, S_, f)

    with blas_limit(blas_threads):
        if L_init is None:
            L = gomtl_initial_basis(data, k, loss, init_ridge)
        history = [F(L, S)]
        f = value(L, S)
        converged, it = False, 0
        starts: list = []  # where the last two alternations' exact steps started
        beta = 1.0
        while it < max_iter:
            it += 1
            L_prev, S_prev, f_prev = L, S, f
            if accelerate and len(starts) == 2:
                L, S, f, beta = move(L, S, f, L - starts[0][0], S - starts[0][1], beta)
            if accelerate and it > 1:
                L, S, f = balance(L, S, f)
            starts = (starts + [(L, S)])[-2:]
            S_new, f_new = s_step(L, S)
            if f_new <= f:  # an exact step cannot raise F; a rise is rounding: keep S
                S, f = S_new, f_new
            L_new, f_new = l_step(L, S)
            if f_new <= f:
                L, f = L_new, f_new
            f_exact = F(L, S)
            if f_exact > history[-1]:  # rounding (the two evaluations of F): keep the start
                L, S, f, f_exact = L_prev, S_prev, f_prev, history[-1]
            history.append(f_exact)
            if history[-2] - f_exact <= tol * abs(history[-2]):
                converged = True
                break
    if not converged:
        warnings.warn(
            f"fit_gomtl stopped after {it} alternations (max_iter={max_iter}); the last lowered "
            f"the objective by {(history[-2] - history[-1]) / abs(history[-2]):.2e} relative > tol {tol:.1e}",
            ConvergenceWarning,
            stacklevel=2,
        )
    return GOMTLFit(L @ S, L, S, history[-1], np.array(history), it, converged)


# =========================================================== registry
@dataclass(frozen=True)
class MultiTaskBaseline:
    """One baseline of :data:`MULTITASK_BASELINES`.

    Attributes
    ----------
    name : str
    function : callable
        ``function(data, *params, loss, backend=..., solver=...)``: the fit function
        (:func:`fit_gomtl` returns a :class:`GOMTLFit`, the others ``W``).
    params : tuple of str
        Hyperparameter names: ``function``'s positional hyperparameters in order, then
        those in ``keyword_params``.
    objective : callable
        The numpy objective, ``objective(W, data, **params, loss=...)`` (GO-MTL:
        ``objective(L, S, data, ...)``).
    grid : mapping
        Default values per hyperparameter; for the names in ``relative`` they are
        multiples of ``lambda_max(data)`` (see :meth:`param_grid`).
    keyword_params : tuple of str
        Hyperparameters ``function`` takes by keyword, with a default (``rho`` of the
        norms).
    relative : tuple of str
        Hyperparameters whose grid is relative to the data.
    penalty : str
        For ``relative``: the penalty of :func:`solvers.baselines.lambda_max` giving the
        scale (``"l1"`` for GO-MTL: the largest entry of the gradient at ``W = 0``).
    description : str
    warm_start : str, optional
        The hyperparameter along which a grid is walked with warm starts (``function``
        takes ``W0``; :func:`amtl_cvx.selection.select_baseline` fits decreasing values
        from the previous ``W``).
    """

    name: str
    function: Callable[..., Any]
    params: tuple[str, ...]
    objective: Callable[..., float]
    grid: Mapping[str, tuple[float, ...]]
    keyword_params: tuple[str, ...] = ()
    relative: tuple[str, ...] = ()
    penalty: str = ""
    description: str = ""
    warm_start: str | None = None

    def param_grid(self, data: MultiTaskData | None = None, loss: str = "squared") -> dict[str, list]:
        """The default grid (a ``ParameterGrid``-style dict of lists).

        Parameters
        ----------
        data : MultiTaskData, optional
            Needed when the grid has relative entries (the norms, GO-MTL's ``mu``);
            GO-MTL's ``n_latent`` values are clipped to ``1..d``.
        loss : {"squared", "logistic"}
        """
        grid = {k: list(v) for k, v in self.grid.items()}
        if self.relative or "n_latent" in grid:
            if data is None:
                raise ValueError(f"the {self.name} grid is relative to the data: pass data")
            data = _check_data(data, loss)
        if self.relative:
            scale = fast.lambda_max(data.Xs, data.ys, penalty=self.penalty, loss=loss)
            scale = scale if scale > 0 else 1.0
            for key in self.relative:
                grid[key] = [v * scale for v in grid[key]]
        if "n_latent" in grid:
            grid["n_latent"] = [k for k in grid["n_latent"] if k <= data.n_features] or [data.n_features]
        return grid

    def fit(self, data: MultiTaskData, loss: str = "squared", *, backend: str = "fast",
            solver: str | None = None, W0: np.ndarray | None = None, **params: Any) -> np.ndarray:
        """``W`` (d x T) of this baseline with hyperparameters ``params`` (by name);
        ``W0``: a warm start of the fast backend (baselines with ``warm_start`` only)."""
        if W0 is not None:
            if self.warm_start is None:
                raise ValueError(f"{self.name} takes no warm start W0")
            params["W0"] = W0
        missing = [p for p in self.params if p not in params and p not in self.keyword_params]
        if missing:
            raise ValueError(f"{self.name} needs the hyperparameters {missing}")
        unknown = [p for p in params if p not in self.params and p != "W0"]
        if unknown:
            raise ValueError(f"{self.name} has no hyperparameters {unknown} (it has {list(self.params)})")
        positional = [params.pop(p) for p in self.params if p not in self.keyword_params]
        result = self.function(data, *positional, loss, backend=backend, solver=solver, **params)
        return result.W if isinstance(result, GOMTLFit) else result


_RIDGE_GRID = tuple(float(v) for v in np.logspace(-5, 2, 15))

#: The baselines by name (see :class:`MultiTaskBaseline`).
MULTITASK_BASELINES: dict[str, MultiTaskBaseline] = {
    b.name: b
    for b in (
        MultiTaskBaseline(
            "pooled", fit_pooled, ("lam",), pooled_objective, {"lam": _RIDGE_GRID},
            description="one ridge / L2-logistic model for all tasks",
        ),
        MultiTaskBaseline(
            "mean_regularized", fit_mean_regularized, ("lam", "rho"), mean_regularized_objective,
            {"lam": tuple(float(v) for v in np.logspace(-4, 2, 7)), "rho": tuple(float(v) for v in np.logspace(-5, 1, 7))},
            description="tasks pulled towards their mean (Evgeniou & Pontil 2004)",
        ),
        MultiTaskBaseline(
            "l21", fit_l21, ("lam", "rho"), l21_objective,
            {"lam": tuple(float(v) for v in np.logspace(-4, 0, 13)), "rho": (0.0,)},
            keyword_params=("rho",), relative=("lam",), penalty="l21", warm_start="lam",
            description="joint feature selection, l2,1 norm of the rows of W",
        ),
        MultiTaskBaseline(
            "trace_norm", fit_trace_norm, ("lam", "rho"), trace_norm_objective,
            {"lam": tuple(float(v) for v in np.logspace(-4, 0, 13)), "rho": (0.0,)},
            keyword_params=("rho",), relative=("lam",), penalty="trace", warm_start="lam",
            description="low rank, nuclear norm of W",
        ),
        MultiTaskBaseline(
            "gomtl", fit_gomtl, ("n_latent", "mu", "lam"), gomtl_objective,
            {"n_latent": (1, 2, 3, 5, 8), "mu": tuple(float(v) for v in np.logspace(-3, 0, 7)), "lam": (1e-3, 1e-1)},
            relative=("mu",), penalty="l1",
            description="W = L S, sparse codes over a latent basis (Kumar & Daume III 2012)",
        ),
    )
}


# ======================================================== estimators
def _as_fit(W: np.ndarray, objective: float, data: MultiTaskData, history=None, n_iter: int = 1,
            converged: bool = True) -> AMTLFit:
    T = data.n_tasks
    hist = np.array([objective] if history is None else history, dtype=np.float64)
    return AMTLFit(W, np.zeros((T, T)), float(objective), hist, int(n_iter), bool(converged),
                   c=imbalance_weights(data.n_samples))


class _BaselineSolver:
    """``_solve`` through a fit function of this module; ``B = 0``."""

    _hyper: tuple[tuple[str, bool], ...] = ()  # (name, strictly positive)

    def _check_solver_params(self) -> None:
        for name, strict in self._hyper:
            check_scalar(getattr(self, name), name, strict=strict)
        _check_backend(self.backend, self.solver)

    def _fit_W(self, data: MultiTaskData) -> np.ndarray:
        raise NotImplementedError

    def _objective(self, W: np.ndarray, data: MultiTaskData) -> float:
        raise NotImplementedError

    def _solve(self, data: MultiTaskData) -> AMTLFit:
        W = self._fit_W(data)
        return _as_fit(W, self._objective(W, data), data)


class _PooledSolver(_BaselineSolver):
    _hyper = (("lam", True),)

    def __init__(self, *, lam: float = 1.0, backend: str = "fast", solver: str | None = None,
                 fit_intercept: bool = True, task_column: int | str | None = 0, random_state=None) -> None:
        self.lam = lam
        self.backend = backend
        self.solver = solver
        self.fit_intercept = fit_intercept
        self.task_column = task_column
        self.random_state = random_state

    def _fit_W(self, data):
        return fit_pooled(data, self.lam, self._loss, backend=self.backend, solver=self.solver)

    def _objective(self, W, data):
        return pooled_objective(W[:, 0], data, lam=self.lam, loss=self._loss)


class _MeanRegularizedSolver(_BaselineSolver):
    _hyper = (("lam", False), ("rho", True))

    def __init__(self, *, lam: float = 1.0, rho: float = 0.1, backend: str = "fast", solver: str | None = None,
                 fit_intercept: bool = True, task_column: int | str | None = 0, random_state=None) -> None:
        self.lam = lam
        self.rho = rho
        self.backend = backend
        self.solver = solver
        self.fit_intercept = fit_intercept
        self.task_column = task_column
        self.random_state = random_state

    def _fit_W(self, data):
        return fit_mean_regularized(data, self.lam, self.rho, self._loss, backend=self.backend, solver=self.solver)

    def _objective(self, W, data):
        return mean_regularized_objective(W, data, lam=self.lam, rho=self.rho, loss=self._loss)


class _NormSolver(_BaselineSolver):
    _hyper = (("lam", True), ("rho", False))
    _fit_function: Callable[..., np.ndarray]
    _objective_function: Callable[..., float]

    def __init__(self, *, lam: float = 0.1, rho: float = 0.0, backend: str = "fast", solver: str | None = None,
                 fit_intercept: bool = True, task_column: int | str | None = 0, random_state=None) -> None:
        self.lam = lam
        self.rho = rho
        self.backend = backend
        self.solver = solver
        self.fit_intercept = fit_intercept
        self.task_column = task_column
        self.random_state = random_state

    def _fit_W(self, data):
        return type(self)._fit_function(data, self.lam, self._loss, rho=self.rho, backend=self.backend,
                                        solver=self.solver)

    def _objective(self, W, data):
        return type(self)._objective_function(W, data, lam=self.lam, rho=self.rho, loss=self._loss)


class _L21Solver(_NormSolver):
    _fit_function = fit_l21
    _objective_function = l21_objective


class _TraceNormSolver(_NormSolver):
    _fit_function = fit_trace_norm
    _objective_function = trace_norm_objective


class _GOMTLSolver(_BaselineSolver):
    _hyper = (("mu", True), ("lam", True), ("tol", False))

    def __init__(self, *, n_latent: int = 3, mu: float = 0.1, lam: float = 0.1, backend: str = "fast",
                 solver: str | None = None, tol: float = 1e-6, max_iter: int = 100, fit_intercept: bool = True,
                 task_column: int | str | None = 0, random_state=None) -> None:
        self.n_latent = n_latent
        self.mu = mu
        self.lam = lam
        self.backend = backend
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.fit_intercept = fit_intercept
        self.task_column = task_column
        self.random_state = random_state

    def _check_solver_params(self) -> None:
        super()._check_solver_params()
        _check_int(self.n_latent, "n_latent", 1, 2**31)
        _check_int(self.max_iter, "max_iter", 1, 2**31)

    def _solve(self, data):
        fit = fit_gomtl(data, self.n_latent, self.mu, self.lam, self._loss, backend=self.backend,
                        solver=self.solver, tol=self.tol, max_iter=self.max_iter)
        self.basis_, self.codes_ = fit.L, fit.S
        return _as_fit(fit.W, fit.objective, data, fit.objective_history, fit.n_iter, fit.converged)


_EST_DOC = """{what}, with the AMTL estimators' interface (:mod:`amtl_cvx.estimators`).

    Fits :func:`amtl_cvx.baselines.multitask.{function}` ({loss} loss); the data layout, the
    intercept (a regularised ones column) and ``task_column`` are those of
    :class:`amtl_cvx.estimators.{amtl}`. ``transfer_matrix_`` is zero and
    ``objective_`` the baseline's own objective.

    Parameters
    ----------
{params}
    backend : {{"fast", "cvxpy"}}, default="fast"
    solver : str, optional
        The CVXPY solver (``backend="cvxpy"`` only).
    fit_intercept : bool, default=True
    task_column : int, str or None, default=0
    random_state : None
        Accepted for compatibility; unused.
"""

_P_LAM_POOLED = "    lam : float, default=1.0\n        ``lam > 0``, the ridge on the shared model."
_P_MEANREG = ("    lam : float, default=1.0\n        ``lam >= 0``, pull towards the mean model.\n"
              "    rho : float, default=0.1\n        ``rho > 0``, ridge on every task.")
_P_NORM = ("    lam : float, default=0.1\n        ``lam > 0``, weight of the norm.\n"
           "    rho : float, default=0.0\n        ``rho >= 0``, ridge on ``W``.")
_P_GOMTL = ("    n_latent : int, default=3\n        ``k``, latent basis tasks (``<= d``).\n"
            "    mu : float, default=0.1\n        ``mu > 0``, sparsity of the codes.\n"
            "    lam : float, default=0.1\n        ``lam > 0``, ridge on the basis.\n"
            "    tol, max_iter : float, int\n        Stopping rule of :func:`fit_gomtl`.")


def _doc(what, function, params, regressor):
    return _EST_DOC.format(what=what, function=function, params=params,
                           loss="squared" if regressor else "logistic",
                           amtl="AMTLRegressor" if regressor else "AMTLClassifier")


class PooledRegressor(_PooledSolver, _RegressorBase):
    __doc__ = _doc("One ridge model for all tasks", "fit_pooled", _P_LAM_POOLED, True)


class PooledClassifier(_PooledSolver, _ClassifierBase):
    __doc__ = _doc("One L2-logistic model for all tasks", "fit_pooled", _P_LAM_POOLED, False)


class MeanRegularizedRegressor(_MeanRegularizedSolver, _RegressorBase):
    __doc__ = _doc("Mean-regularised multi-task regression", "fit_mean_regularized", _P_MEANREG, True)


class MeanRegularizedClassifier(_MeanRegularizedSolver, _ClassifierBase):
    __doc__ = _doc("Mean-regularised multi-task classification", "fit_mean_regularized", _P_MEANREG, False)


class L21Regressor(_L21Solver, _RegressorBase):
    __doc__ = _doc("Joint feature selection (l2,1) regression", "fit_l21", _P_NORM, True)


class L21Classifier(_L21Solver, _ClassifierBase):
    __doc__ = _doc("Joint feature selection (l2,1) classification", "fit_l21", _P_NORM, False)


class TraceNormRegressor(_TraceNormSolver, _RegressorBase):
    __doc__ = _doc("Trace-norm (low-rank) regression", "fit_trace_norm", _P_NORM, True)


class TraceNormClassifier(_TraceNormSolver, _ClassifierBase):
    __doc__ = _doc("Trace-norm (low-rank) classification", "fit_trace_norm", _P_NORM, False)


class GOMTLRegressor(_GOMTLSolver, _RegressorBase):
    __doc__ = _doc("GO-MTL regression", "fit_gomtl", _P_GOMTL, True)


class GOMTLClassifier(_GOMTLSolver, _ClassifierBase):
    __doc__ = _doc("GO-MTL classification", "fit_gomtl", _P_GOMTL, False)
