r"""Fast solvers of the standard multi-task baselines (numpy and scipy only).

``W`` is d x T with column ``w_t``; ``L_t`` is the task's *mean* loss,
``1/(2 n_t) ||y_t - X_t w||^2`` (squared) or ``mean(log(1 + exp(-y_t * X_t w)))``
(logistic, labels in {-1, +1}). The problems, with their exact scaling::

    pooled              min_w  sum_t L_t(w) + lam ||w||^2
    mean-regularised    min_W  sum_t L_t(w_t) + lam sum_t ||w_t - wbar||^2 + rho ||W||_F^2
                               (wbar = the mean of the columns of W)
    l2,1 (penalty="l21")     min_W  sum_t L_t(w_t) + lam sum_j ||W[j, :]||_2 + rho ||W||_F^2
    trace (penalty="trace")  min_W  sum_t L_t(w_t) + lam ||W||_*           + rho ||W||_F^2
    l1 (penalty="l1")        min_W  sum_t L_t(w_t) + lam sum_jt |W[j, t]|   + rho ||W||_F^2
    GO-MTL codes        min_S  sum_t L_t(L s_t) + mu ||S||_1      (L fixed: T lasso-type problems in X_t L)
    GO-MTL basis        min_L  sum_t L_t(L s_t) + lam ||L||_F^2   (S fixed)

Algorithms and certificates
---------------------------
Smooth problems (pooled, mean-regularised, GO-MTL basis) stop on the **relative Newton
decrement** ``sqrt(g'H^{-1}g)(x) / sqrt(g'H^{-1}g)(0)`` (``g`` the gradient, ``H`` the
Hessian: the gradient measured in the Hessian's inverse metric; the value at 0 does not
depend on the start; when it is 0, ``x = 0`` is the minimiser and the denominator is
taken as 1). For a quadratic its square is ``(F(x) - F*) / (F(0) - F*)`` exactly, so it
means the same at every scale, and it is not inflated by the rounding of stiff
directions, as the plain gradient norm is: with ``lam = 1e7`` the mean-regularised
gradient is known only to ``eps * 2 lam ||W||`` and its relative norm stalls near 1e-8.
The squared losses are solved directly (a dense Cholesky factorisation of the constant
Hessian, then iterative refinement with gradients computed from the data, not from the
Gram matrices); the logistic losses by Newton's method with an Armijo line search.

The mean-regularised Hessian ``blockdiag(H_t) + 2 lam (P kron I_d) + 2 rho I`` (``P``
the T x T centring matrix) is never formed: with ``A_t = H_t + 2 (lam + rho) I`` the
system ``H_t x_t + 2 lam (x_t - xbar) + 2 rho x_t = r_t`` gives
``x_t = A_t^{-1} (r_t + 2 lam xbar)``, and averaging over the tasks

    [ sum_t A_t^{-1} (H_t + 2 rho I) ] xbar = sum_t A_t^{-1} r_t,

a d x d system (written without the cancellation of ``I - 2 lam/T sum_t A_t^{-1}``; its
matrix is symmetric because ``A_t`` and ``H_t`` commute, with eigenvalues at least
``T rho / (lam + rho)``). One eigendecomposition of each ``H_t`` serves all of it: the
cost is ``O(T d^3)``, not ``O((d T)^3)``.

The nonsmooth penalties are solved by proximal Newton (:mod:`solvers.prox_newton`:
quadratic models with the tasks' Hessians, each minimised without passes over the data):
the l2,1 and trace norms with either loss, l1 with the logistic loss. On usps1.mat
(10 tasks, 88 PCA features, 10,000 rows) FISTA on the logistic loss needed 20,000
iterations (69 s, one BLAS thread) at ``lam = 1e-4 lambda_max`` and did not certify;
proximal Newton certifies it (gap 4e-10) in 15 outer iterations, 1.7 s, from zero, or 6
from the solution at the next larger ``lam`` of the default grid. With the squared loss
the Hessians are the Grams ``X_t'X_t / n_t``, constant and computed once, so the model is
the problem itself; the inner solves end with Newton's method on the row support (l2,1)
or on the manifold of the current rank (trace norm), which FISTA alone needed thousands
of iterations to approach: on ``amtl_cvx.make_tabular_tasks(random_state=0)`` (140 tasks,
28 badly scaled, collinear features, half the tasks with fewer rows than features) the
trace-norm fit at ``lam = 1e-4 lambda_max`` of the warm-started default path took 20,240
FISTA iterations (16 s) and takes two proximal Newton iterations (1.3 s), its gap
3e-12; the default grids (13 warm-started fits) fell from 24 s to 0.9 s (l2,1) and from
44 s to 3.8 s (trace norm), same run, one BLAS thread, the other core busy, 2026-11-30. The squared-loss l1 (used by no
baseline) is solved by FISTA with a constant step
``1 / Lip`` (``Lip = max_t ||X_t||_2^2 / n_t`` plus ``2 rho``) and O'Donoghue-Candes
gradient restarts, the gap checked every ``check_every`` iterations. Every fit stops on
the **relative duality gap** ``(P(W) - D(theta)) / P(W) <= tol``, evaluated from the data:
it bounds the relative suboptimality ``(P(W) - P*) / P*`` by ``tol / (1 - tol)`` whatever
the scale of the data.
The dual point is ``theta_t = -grad ell_t(X_t w_t)`` (the loss as a function of the
scores), so ``Z = [X_t' theta_t] = -grad_W sum_t L_t``, and

    D(theta) = sum_t -ell_t^*(-theta_t) - h^*(Z),      h = rho ||.||_F^2 + lam Omega,

with ``-ell_t^*(-theta) = theta'y - n_t ||theta||^2 / 2`` (squared) or
``1/n_t sum_i H(n_t y_i theta_i)`` (logistic, ``H`` the binary entropy in nats), and
``h^*(Z) = sum_a (a - lam)_+^2 / (4 rho)`` over the "atoms" ``a`` of ``Z`` (row norms,
singular values or absolute entries) when ``rho > 0``; with ``rho = 0``, ``h^*`` is the
indicator of ``max_a a <= lam`` and ``theta`` is scaled by ``min(1, lam / max_a a)``
(with ``rho > 0`` both the scaled and the unscaled point are tried, the larger bound
kept).

The GO-MTL codes are T independent l1 problems with k (the number of latent tasks, small)
unknowns each, for which FISTA is the wrong tool: its step is set by the largest curvature
of ``X_t L``, so columns of ``L`` of very different scales or nearly collinear ones stall
it (on the ill-conditioned instance of ``tests/test_baselines_multitask.py``, squared
loss, FISTA stopped at a relative gap of 0.18 after 100,000 iterations, its objective 4%
above the optimum). They are solved exactly on the support by an active-set method
batched over the tasks (one solve there, certificate 3e-12), inside proximal Newton for
the logistic loss, and certified by the largest per-task relative duality gap
(:class:`GOMTLSteps`). The logistic GO-MTL basis is solved by Newton's method whose
``dk x dk`` systems are solved by conjugate gradients preconditioned with the inverse of an
earlier Hessian (kept from call to call, renewed when the extra iterations it costs add up
to a renewal), each product with the Hessian two passes over the data; its relative Newton
decrement is certified from above (``g'H^{-1}g <= (2 g'p - p'Hp) + ||g - Hp||^2 / (2 lam)``
for any ``p``, with a fresh product ``Hp``) over its value at 0 from below
(``2 g'p - p'Hp``), so a certificate below ``tol`` certifies the exact decrement. On the
logistic ``usps1.mat`` (10 tasks, 88 features, 1000 rows each; k = 8, one BLAS thread)
an L-step took about 110 ms when each of its ~4 Newton steps, and the reference at 0,
rebuilt the Hessian from the 10,000 rows and factorised it (704 x 704), and takes about
40 ms (~25 products, a renewal every few calls).
"""

from __future__ import annotations

from solvers.baselines.gomtl import GOMTLSteps, gomtl_balance, solve_gomtl_basis, solve_gomtl_codes
from solvers.baselines.penalized import (
    PENALTIES,
    lambda_max,
    penalized_objective,
    penalty_value,
    relative_duality_gap,
    solve_penalized,
)
from solvers.baselines.smooth import solve_mean_regularized, solve_pooled

__all__ = [
    "PENALTIES",
    "penalty_value",
    "lambda_max",
    "solve_pooled",
    "solve_mean_regularized",
    "solve_penalized",
    "GOMTLSteps",
    "solve_gomtl_codes",
    "solve_gomtl_basis",
    "gomtl_balance",
    "penalized_objective",
    "relative_duality_gap",
]

