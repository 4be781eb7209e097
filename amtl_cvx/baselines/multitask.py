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
exact solvers (:mod:`amtl_cvx.problems.exact`; cvxpy is imported only then). ``backend="fast"``
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
solve that misses its tolerance warns (:class:`~amtl_cvx.algorithms.ConvergenceWarning`);
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

Modules
-------
This module gathers the names of :mod:`amtl_cvx.baselines.objectives` (the numpy
objectives), :mod:`amtl_cvx.baselines.convex` (pooled, mean-regularised, l2,1, trace
norm), :mod:`amtl_cvx.baselines.gomtl`, :mod:`amtl_cvx.baselines.registry` and
:mod:`amtl_cvx.baselines.estimators`; import them from here.
"""

from __future__ import annotations

from amtl_cvx.baselines.convex import fit_l21, fit_mean_regularized, fit_pooled, fit_trace_norm
from amtl_cvx.baselines.estimators import (
    GOMTLClassifier,
    GOMTLRegressor,
    L21Classifier,
    L21Regressor,
    MeanRegularizedClassifier,
    MeanRegularizedRegressor,
    PooledClassifier,
    PooledRegressor,
    TraceNormClassifier,
    TraceNormRegressor,
)
from amtl_cvx.baselines.gomtl import GOMTLFit, fit_gomtl, gomtl_initial_basis
from amtl_cvx.baselines.objectives import (
    gomtl_objective,
    l21_objective,
    mean_regularized_objective,
    pooled_objective,
    trace_norm_objective,
)
from amtl_cvx.baselines.registry import MULTITASK_BASELINES, MultiTaskBaseline

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
