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

from typing import Any, Callable, Sequence

import numpy as np
import scipy.linalg as sla
import scipy.linalg.lapack as _lapack
from scipy.special import entr, expit

from solvers.prox_newton import prox_newton
from solvers.losses import _check_array, _check_scalar, _check_solver_options, _check_tasks, get_loss
from solvers.result import SolverResult
from solvers.transfer import _nnqp_psd

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

#: Nonsmooth penalties of :func:`solve_penalized`.
PENALTIES = ("l21", "trace", "l1")

_EPS = np.finfo(np.float64).eps


# ----------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------


def _prepare(Xs: Sequence[Any], ys: Sequence[Any], loss: str) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    lossf = get_loss(loss)
    Xl, yl = _check_tasks(Xs, ys, lossf)
    return Xl, yl, lossf.name


def _check_start(W0: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    if W0 is None:
        return np.zeros(shape)
    W = _check_array(W0, name, ndim=len(shape))
    if W.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {W.shape}")
    return W.copy()


def _task_terms(X: np.ndarray, y: np.ndarray, w: np.ndarray, loss: str) -> tuple[float, np.ndarray, np.ndarray | None]:
    """``(L(w), grad L(w), D)`` of one task: ``Hess = X' diag(D) X / n`` (``D = None``:
    ones, the squared loss)."""
    n = X.shape[0]
    z = X @ w
    if loss == "squared":
        r = z - y
        return float(r @ r) / (2.0 * n), X.T @ r / n, None
    m = y * z
    s = expit(-m)
    return float(np.sum(np.logaddexp(0.0, -m))) / n, -(X.T @ (y * s)) / n, s * expit(m)


def _hessian(X: np.ndarray, D: np.ndarray | None) -> np.ndarray:
    """``X' diag(D) X / n`` (``D = None``: all ones, the squared loss)."""
    return (X.T @ X if D is None else (X.T * D) @ X) / X.shape[0]


def _newton(
    value_grad: Callable[[np.ndarray], tuple[float, np.ndarray, Callable[[], Any]]],
    factorize: Callable[[Any], Callable[[np.ndarray], np.ndarray]],
    x: np.ndarray,
    tol: float,
    max_iter: int,
    history: list[float] | None,
    *,
    quadratic: bool = False,
) -> tuple[np.ndarray, int, float]:
    """Damped Newton, certified by the relative Newton decrement.

    ``value_grad(x) -> (f, g, hess)`` with ``hess()`` the Hessian (evaluated only where a
    step is computed); ``factorize(H) -> (g -> H^{-1} g)``. With ``quadratic=True`` the
    Hessian is constant and factorised once: the first step is the direct solve, the
    next ones iterative refinement.

    The certificate is ``sqrt(g'H^{-1}g)(x) / sqrt(g'H^{-1}g)(0)``; for a quadratic its
    square is ``(F(x) - F*) / (F(0) - F*)`` exactly, so it means the same at every scale of
    the data and of the weights; unlike ``||g||``, it is not inflated by the rounding of
    stiff directions (the mean-regularised model at ``lam = 1e7`` computes its gradient
    only to ``eps * lam ||W||``). Armijo backtracking; where ``F`` no longer resolves the
    decrease (below rounding), a step is also accepted when it does not raise ``F`` beyond
    rounding and shrinks ``||g||``. Returns ``(x, iterations, certificate)``; the
    certificate is that of the returned point.
    """
    f0, g0, hess0 = value_grad(np.zeros_like(x))
    solver0 = factorize(hess0())
    dec0 = float(np.vdot(g0, solver0(g0)))
    ref = np.sqrt(dec0) if dec0 > 0 else 1.0
    f, g, hess = (f0, g0, hess0) if not np.any(x) else value_grad(x)
    it = 0
    while True:
        p = (solver0 if quadratic else factorize(hess()))(g)
        dec = float(np.vdot(g, p))
        cert = np.sqrt(max(dec, 0.0)) / ref
        if history is not None:
            history.append(cert)
        if cert <= tol or it >= max_iter or not dec > 0:
            break
        step = _armijo(value_grad, x, p, dec, f, g)
        it += 1
        if step is None:
            break
        x, f, g, hess = step
    return x, it, cert


def _armijo(value_grad, x: np.ndarray, p: np.ndarray, dec: float, f: float, g: np.ndarray):
    """Backtracking along ``-p`` (``dec = g'p``): ``(x_new, f_new, g_new, extra)`` of the
    first ``alpha = 1, 1/2, ...`` with ``F`` lowered by ``1e-4 alpha dec``, or (where ``F``
    no longer resolves the decrease) not raised beyond rounding with a smaller gradient;
    ``None`` below ``alpha = 1e-12``. ``value_grad(x) -> (f, g, extra)``."""
    alpha, gnorm = 1.0, float(np.linalg.norm(g))
    while alpha >= 1e-12:
        x_new = x - alpha * p
        f_new, g_new, extra = value_grad(x_new)
        if f_new <= f - 1e-4 * alpha * dec or (f_new <= f + 64 * _EPS * abs(f) and np.linalg.norm(g_new) < gnorm):
            return x_new, f_new, g_new, extra
        alpha *= 0.5
    return None


def _cholesky(H: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    factor = sla.cho_factor(H)
    return lambda g: sla.cho_solve(factor, g)


def _result(solution, objective, n_iter, cert, tol, history) -> SolverResult:
    return SolverResult(
        solution=solution,
        objective=float(objective),
        n_iter=int(n_iter),
        converged=bool(cert <= tol),
        certificate=float(cert),
        tol=float(tol),
        history=tuple(history or ()),
    )


# ----------------------------------------------------------------------------
# Pooled model
# ----------------------------------------------------------------------------


def solve_pooled(
    Xs: Sequence[Any],
    ys: Sequence[Any],
    lam: float,
    *,
    loss: str = "squared",
    w0: Any = None,
    tol: float = 1e-10,
    max_iter: int = 100,
    record_history: bool = False,
) -> SolverResult:
    """One model for all tasks: ``min_w sum_t L_t(w) + lam ||w||^2`` (``lam > 0``).

    Squared loss: ``(sum_t X_t'X_t / n_t + 2 lam I) w = sum_t X_t'y_t / n_t`` by Cholesky
    with iterative refinement; logistic loss: Newton. ``solution`` is ``w`` (d,);
    ``certificate`` the relative Newton decrement (see the module docstring); ``n_iter``
    counts steps (squared: the direct solve plus refinements; logistic: Newton steps).
    """
    Xl, yl, lossname = _prepare(Xs, ys, loss)
    lam = _check_scalar(lam, "lam", strict=True)
    tol, max_iter = _check_solver_options(tol, max_iter)
    d = Xl[0].shape[1]
    w = _check_start(w0, (d,), "w0")

    def value_grad(v: np.ndarray):
        f, g, Ds = lam * float(v @ v), 2.0 * lam * v, []
        for X, y in zip(Xl, yl):
            ft, gt, D = _task_terms(X, y, v, lossname)
            f, g = f + ft, g + gt
            Ds.append(D)
        return f, g, lambda: sum((_hessian(X, D) for X, D in zip(Xl, Ds)), 2.0 * lam * np.eye(d))

    hist: list[float] | None = [] if record_history else None
    w, n_iter, cert = _newton(value_grad, _cholesky, w, tol, max_iter, hist, quadratic=lossname == "squared")
    return _result(w, value_grad(w)[0], n_iter, cert, tol, hist)


# ----------------------------------------------------------------------------
# Mean-regularised MTL (Evgeniou & Pontil 2004)
# ----------------------------------------------------------------------------


class _MeanRegSystem:
    """Solves ``H_t x_t + 2 lam (x_t - xbar) + 2 rho x_t = r_t`` (all t) for given ``H_t``
    (one batched eigendecomposition of the stacked ``H_t``; every per-task solve batched)."""

    def __init__(self, Hs: list[np.ndarray], lam: float, rho: float) -> None:
        self.lam, self.rho = lam, rho
        h, U = np.linalg.eigh(np.stack(Hs))
        h = np.maximum(h, 0.0)
        self.U, self.inv = U, 1.0 / (h + 2 * (lam + rho))  # (T, d, d), (T, d)
        M = np.matmul(U * ((h + 2 * rho) * self.inv)[:, None, :], U.transpose(0, 2, 1)).sum(axis=0)
        self.M = sla.cho_factor(0.5 * (M + M.T))

    def _ainv(self, V: np.ndarray) -> np.ndarray:
        """``A_t^{-1} v_t`` for every column of ``V`` (d, T)."""
        c = np.matmul(self.U.transpose(0, 2, 1), V.T[:, :, None])[:, :, 0] * self.inv
        return np.matmul(self.U, c[:, :, None])[:, :, 0].T

    def __call__(self, R: np.ndarray) -> np.ndarray:
        if self.lam == 0.0:
            return self._ainv(R)
        xbar = sla.cho_solve(self.M, self._ainv(R).sum(axis=1))
        return self._ainv(R + 2 * self.lam * xbar[:, None])


def solve_mean_regularized(
    Xs: Sequence[Any],
    ys: Sequence[Any],
    lam: float,
    rho: float,
    *,
    loss: str = "squared",
    W0: Any = None,
    tol: float = 1e-10,
    max_iter: int = 100,
    record_history: bool = False,
) -> SolverResult:
    """``min_W sum_t L_t(w_t) + lam sum_t ||w_t - wbar||^2 + rho ||W||_F^2``.

    ``lam >= 0``, ``rho > 0``; ``wbar`` is the mean of the columns. Squared loss: the
    one linear system, solved through its d x d reduction (module docstring) with
    iterative refinement; logistic: Newton on the same structured Hessian.
    ``solution`` is ``W`` (d, T); ``certificate`` the relative Newton decrement.
    """
    Xl, yl, lossname = _prepare(Xs, ys, loss)
    lam = _check_scalar(lam, "lam", strict=False)
    rho = _check_scalar(rho, "rho", strict=True)
    tol, max_iter = _check_solver_options(tol, max_iter)
    T, d = len(Xl), Xl[0].shape[1]
    W = _check_start(W0, (d, T), "W0")

    def value_grad(V: np.ndarray):
        dev = V - V.mean(axis=1, keepdims=True)
        # centred twice: the rounding of V - vbar (eps ||V||) would leave a component along
        # the tasks' mean times 2 lam in the gradient, where the Hessian is soft; after the
        # second pass it is eps ||dev||: measured, the certificate reaches ~1e-12 at lam = 1e7
        dev -= dev.mean(axis=1, keepdims=True)
        f = lam * float(np.sum(dev * dev)) + rho * float(np.sum(V * V))
        G = 2.0 * lam * dev + 2.0 * rho * V
        Ds = []
        for t, (X, y) in enumerate(zip(Xl, yl)):
            ft, gt, D = _task_terms(X, y, V[:, t], lossname)
            f += ft
            G[:, t] += gt
            Ds.append(D)
        return f, G, lambda: [_hessian(X, D) for X, D in zip(Xl, Ds)]

    hist: list[float] | None = [] if record_history else None
    W, n_iter, cert = _newton(value_grad, lambda Hs: _MeanRegSystem(Hs, lam, rho), W, tol, max_iter, hist,
                              quadratic=lossname == "squared")
    return _result(W, value_grad(W)[0], n_iter, cert, tol, hist)


# ----------------------------------------------------------------------------
# Nonsmooth penalties: l2,1 / trace / l1, proximal Newton (or FISTA), duality-gap certificate
# ----------------------------------------------------------------------------


def _atoms(Z: np.ndarray, penalty: str) -> np.ndarray:
    """Row norms (l21), singular values (trace) or absolute entries (l1)."""
    if penalty == "l21":
        return np.linalg.norm(Z, axis=1)
    if penalty == "trace":
        return sla.svdvals(Z)
    return np.abs(Z).ravel()


def penalty_value(W: np.ndarray, penalty: str) -> float:
    """``Omega(W)``: ``sum_j ||W[j, :]||_2``, ``||W||_*`` or ``sum |W|``."""
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}")
    return float(np.sum(_atoms(np.asarray(W, dtype=np.float64), penalty)))


_GESVD_LWORK: dict[tuple[int, int], int] = {}


def _svd(V: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD by LAPACK's ``gesvd`` (``scipy.linalg.svd(..., lapack_driver="gesvd")``),
    called directly: the proximal solvers take tens of thousands of small SVDs, and the
    wrapper's checks cost twice the factorisation of a 88 x 10 matrix."""
    V = np.asarray(V, dtype=np.float64)
    if not np.all(np.isfinite(V)):
        raise ValueError("array must not contain infs or NaNs")
    m, n = V.shape
    if (m, n) not in _GESVD_LWORK:
        _GESVD_LWORK[(m, n)] = _lapack._compute_lwork(
            _lapack.get_lapack_funcs("gesvd_lwork", (V,)), m, n, compute_uv=1, full_matrices=0
        )
    U, s, Vt, info = _lapack.get_lapack_funcs("gesvd", (V,))(V, compute_uv=1, full_matrices=0, lwork=_GESVD_LWORK[(m, n)])
    if info != 0:  # did not converge (or a bad argument): scipy's wrapper raises the error
        return sla.svd(V, full_matrices=False, lapack_driver="gesvd")
    return U, s, Vt


def _prox(V: np.ndarray, tau: float, penalty: str) -> np.ndarray:
    """``argmin_W tau Omega(W) + 1/2 ||W - V||_F^2``."""
    if penalty == "l21":
        norms = np.linalg.norm(V, axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            shrink = np.where(norms > tau, 1.0 - tau / np.where(norms > 0, norms, 1.0), 0.0)
        return V * shrink
    if penalty == "trace":
        U, s, Vt = _svd(V)
        s = np.maximum(s - tau, 0.0)
        k = int(np.count_nonzero(s))
        return (U[:, :k] * s[:k]) @ Vt[:k]
    return np.sign(V) * np.maximum(np.abs(V) - tau, 0.0)


def _gradient_fn(Xl, yl, rho, lossname) -> Callable[[np.ndarray], np.ndarray]:
    """``W -> grad f(W)``; squared loss: through the stacked Gram matrices, one batched
    product for all tasks (the objective and the gap are computed from residuals)."""
    if lossname != "squared":  # logistic: all rows stacked, per-task sums by reduceat
        ns = np.array([X.shape[0] for X in Xl])
        Xall, yall = np.vstack(Xl), np.concatenate(yl)
        task = np.repeat(np.arange(len(Xl)), ns)
        starts = np.concatenate([[0], np.cumsum(ns)[:-1]])
        y_over_n = yall / np.repeat(ns, ns)

        def logistic_gradient(W: np.ndarray) -> np.ndarray:
            z = np.einsum("ij,ij->i", Xall, W.T[task])
            g = -y_over_n * expit(-yall * z)
            return np.add.reduceat(Xall * g[:, None], starts, axis=0).T + 2.0 * rho * W

        return logistic_gradient
    grams = np.stack([X.T @ X / X.shape[0] for X in Xl])
    C = np.column_stack([X.T @ y / X.shape[0] for X, y in zip(Xl, yl)])
    return lambda W: np.einsum("tij,jt->it", grams, W) - C + 2.0 * rho * W


def _smooth(Xl, yl, W, rho, lossname) -> tuple[float, np.ndarray]:
    """``f(W) = sum_t L_t(w_t) + rho ||W||^2`` and its gradient."""
    f = rho * float(np.sum(W * W))
    G = 2.0 * rho * W
    for t, (X, y) in enumerate(zip(Xl, yl)):
        ft, gt, _ = _task_terms(X, y, W[:, t], lossname)
        f += ft
        G[:, t] += gt
    return f, G


def _gap(Xl, yl, W, lam, rho, penalty, lossname) -> tuple[float, float]:
    """``(P(W), D(theta(W)))``: primal value and the dual bound of the module docstring."""
    T = len(Xl)
    Z = np.empty_like(W)
    losses = np.empty(T)
    parts = []  # per task, what -ell^*(-s theta) needs
    for t, (X, y) in enumerate(zip(Xl, yl)):
        n = X.shape[0]
        z = X @ W[:, t]
        if lossname == "squared":
            r = y - z
            losses[t] = float(r @ r) / (2.0 * n)
            Z[:, t] = X.T @ r / n
            parts.append((float(r @ y) / n, float(r @ r) / (2.0 * n)))
        else:
            m = y * z
            p = expit(-m)
            losses[t] = float(np.sum(np.logaddexp(0.0, -m))) / n
            Z[:, t] = X.T @ (y * p) / n
            parts.append(p)

    def conj(s: float) -> float:
        total = 0.0
        for t, part in enumerate(parts):
            if lossname == "squared":
                ry, rr = part
                total += s * ry - s * s * rr
            else:
                q = s * part
                total += float(np.sum(entr(q) + entr(1.0 - q))) / Xl[t].shape[0]
        return total

    a = _atoms(Z, penalty)
    amax = float(a.max()) if a.size else 0.0
    P = float(losses.sum()) + rho * float(np.sum(W * W)) + lam * penalty_value(W, penalty)
    s = 1.0 if amax <= lam else lam / amax
    D = conj(s) - (float(np.sum(np.maximum(s * a - lam, 0.0) ** 2)) / (4 * rho) if rho > 0 else 0.0)
    if rho > 0 and s < 1.0:
        D = max(D, conj(1.0) - float(np.sum(np.maximum(a - lam, 0.0) ** 2)) / (4 * rho))
    return P, D


def relative_duality_gap(
    Xs: Sequence[Any], ys: Sequence[Any], W: Any, lam: float, *, penalty: str, rho: float = 0.0, loss: str = "squared"
) -> float:
    """The certificate of :func:`solve_penalized` at ``W``: ``(P - D) / P`` (0 when
    ``P = 0``)."""
    Xl, yl, lossname = _prepare(Xs, ys, loss)
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}")
    lam = _check_scalar(lam, "lam", strict=True)
    rho = _check_scalar(rho, "rho", strict=False)
    W = _check_start(W, (Xl[0].shape[1], len(Xl)), "W")
    return _relgap(*_gap(Xl, yl, W, lam, rho, penalty, lossname))


def _relgap(P: float, D: float) -> float:
    return max(P - D, 0.0) / P if P > 0 else 0.0


def penalized_objective(
    Xs: Sequence[Any], ys: Sequence[Any], W: Any, lam: float, *, penalty: str, rho: float = 0.0, loss: str = "squared"
) -> float:
    """``sum_t L_t(w_t) + lam Omega(W) + rho ||W||_F^2``."""
    Xl, yl, lossname = _prepare(Xs, ys, loss)
    W = _check_start(W, (Xl[0].shape[1], len(Xl)), "W")
    return _smooth(Xl, yl, W, rho, lossname)[0] + lam * penalty_value(W, penalty)


def lambda_max(Xs: Sequence[Any], ys: Sequence[Any], *, penalty: str, loss: str = "squared") -> float:
    """Smallest ``lam`` for which ``W = 0`` minimises the penalised problem (any ``rho``).

    ``W = 0`` is optimal iff ``-grad_W sum_t L_t(0)`` lies in ``lam`` times the dual
    ball of ``Omega``: iff its largest atom (row norm, spectral norm, largest entry) is
    at most ``lam``.
    """
    Xl, yl, lossname = _prepare(Xs, ys, loss)
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}")
    G = _smooth(Xl, yl, np.zeros((Xl[0].shape[1], len(Xl))), 0.0, lossname)[1]
    return float(np.max(_atoms(G, penalty)))


def _logistic_oracle(Xl: list[np.ndarray], yl: list[np.ndarray], W: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``(sum_t L_t(w_t), gradient, per-task Hessians (T, d, d))`` of the logistic losses."""
    f, G = 0.0, np.empty_like(W)
    H = np.empty((len(Xl), W.shape[0], W.shape[0]))
    for t, (X, y) in enumerate(zip(Xl, yl)):
        ft, G[:, t], D = _task_terms(X, y, W[:, t], "logistic")
        f += ft
        H[t] = _hessian(X, D)
    return f, G, H


def _lipschitz(Xl: list[np.ndarray], lossname: str, rho: float) -> float:
    c = 1.0 if lossname == "squared" else 0.25
    return c * max(float(sla.svdvals(X)[0]) ** 2 / X.shape[0] for X in Xl) + 2.0 * rho


#: The second-order finish of each penalty's inner solve in :func:`solvers.prox_newton.prox_newton`,
#: by loss. The squared-loss l1 is solved by FISTA (no baseline uses it). The logistic trace
#: norm keeps FISTA-only inner solves: on usps1.mat (d = 88 > T = 10, ranks up to 10) the
#: manifold Newton's ``(d - r) r`` Schur complement made its default grid slower (25 s
#: against 7 to 16 s, same run, 2026-11-30), while on the squared loss it is what makes the
#: path fast.
_SECOND_ORDER = {"squared": {"l21": "rows", "trace": "spectral"}, "logistic": {"l21": "rows", "l1": "entries"}}


def solve_penalized(
    Xs: Sequence[Any],
    ys: Sequence[Any],
    lam: float,
    *,
    penalty: str,
    rho: float = 0.0,
    loss: str = "squared",
    W0: Any = None,
    tol: float = 1e-9,
    max_iter: int = 100_000,
    check_every: int = 10,
    record_history: bool = False,
) -> SolverResult:
    """``min_W sum_t L_t(w_t) + lam Omega(W) + rho ||W||_F^2``: proximal Newton
    (:func:`solvers.prox_newton.prox_newton`; squared loss: the constant Grams as Hessians,
    with a second-order finish on the row support (l2,1) or on the rank manifold (trace));
    restarted FISTA for the squared-loss l1.

    Parameters
    ----------
    Xs, ys : sequence of numpy.ndarray
        T tasks (``Xs[t]`` n_t x d).
    lam : float
        ``lam > 0``.
    penalty : {"l21", "trace", "l1"}
        ``Omega``: ``sum_j ||W[j, :]||_2``, the nuclear norm, or ``sum |W[j, t]|``.
    rho : float, default=0.0
        ``rho >= 0``.
    loss : {"squared", "logistic"}
    W0 : numpy.ndarray, optional
        (d, T) warm start (default zeros).
    tol : float, default=1e-9
        Tolerance on the relative duality gap (module docstring).
    max_iter : int
        Maximum proximal Newton (outer) iterations, or FISTA iterations for the squared-loss
        l1.
    check_every : int, default=10
        FISTA iterations between two evaluations of the gap (and at the end), squared-loss
        l1 only; proximal Newton evaluates it after every outer iteration.
    record_history : bool
        Record the certificate at every check.

    Returns
    -------
    SolverResult
        ``solution`` W (d, T), ``objective`` the primal value, ``certificate`` the
        relative duality gap.
    """
    Xl, yl, lossname = _prepare(Xs, ys, loss)
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}")
    lam = _check_scalar(lam, "lam", strict=True)
    rho = _check_scalar(rho, "rho", strict=False)
    tol, max_iter = _check_solver_options(tol, max_iter)
    T, d = len(Xl), Xl[0].shape[1]
    W = _check_start(W0, (d, T), "W0")
    if rho == 0.0 and not any(np.any(X) for X in Xl):  # the losses are constant, W = 0 minimises
        W = np.zeros((d, T))
        return _result(W, _smooth(Xl, yl, W, 0.0, lossname)[0], 0, 0.0, tol, None)
    hist: list[float] = []
    if lossname == "logistic" or penalty in _SECOND_ORDER["squared"]:
        if lossname == "squared":  # constant Hessians: the Grams, computed once
            grams = np.stack([X.T @ X / X.shape[0] for X in Xl])
            oracle = lambda V: (*_smooth(Xl, yl, V, 0.0, lossname), grams)  # noqa: E731
        else:
            oracle = lambda V: _logistic_oracle(Xl, yl, V)  # noqa: E731
        W, P, it, cert = prox_newton(
            oracle,
            lambda V: _smooth(Xl, yl, V, 0.0, lossname)[0],
            lambda V, tau: _prox(V, tau, penalty),
            lambda V: penalty_value(V, penalty),
            lambda V: _gap(Xl, yl, V, lam, rho, penalty, lossname),
            W, lam, rho, tol=tol, max_iter=max_iter, history=hist if record_history else None,
            groups=_SECOND_ORDER[lossname].get(penalty),
        )
        return _result(W, P, it, cert, tol, hist)
    step = 1.0 / _lipschitz(Xl, lossname, rho)  # positive: some X_t is nonzero, or rho > 0
    P, D = _gap(Xl, yl, W, lam, rho, penalty, lossname)
    # any dual value bounds P* from below: the best iterate is certified by the best bound
    best, best_P, best_D = W, P, D
    cert = _relgap(best_P, best_D)
    gradient = _gradient_fn(Xl, yl, rho, lossname)
    Y, t, it = W.copy(), 1.0, 0
    while cert > tol and it < max_iter:
        G = gradient(Y)
        W_new = _prox(Y - step * G, step * lam, penalty)
        if np.vdot(Y - W_new, W_new - W) > 0:  # gradient restart: momentum points uphill
            t = 1.0
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        Y = W_new + ((t - 1.0) / t_new) * (W_new - W)
        W, t = W_new, t_new
        it += 1
        if it % check_every == 0 or it == max_iter:
            P, D = _gap(Xl, yl, W, lam, rho, penalty, lossname)
            if P <= best_P:
                best, best_P = W, P
            best_D = max(best_D, D)
            cert = _relgap(best_P, best_D)
            if record_history:
                hist.append(cert)
    return _result(best, best_P, it, cert, tol, hist)


# ----------------------------------------------------------------------------
# GO-MTL steps
# ----------------------------------------------------------------------------

#: A code problem with an active column whose squared sine of the angle to the span of the
#: other active columns (in the data's metric) is below this is treated as linearly
#: dependent: the batched active-set solve hands it to the semi-definite fallback
#: (:func:`solvers.transfer._nnqp_psd`).
_CODES_SCHUR_REL = 1e-12

_PRICE, _SOLVE, _DONE, _FAIL = 0, 1, 2, 3


def _masked_solve(M: np.ndarray, rhs: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``M_t x_t = rhs_t`` for a stack of small symmetric matrices (by their inverses).

    ``ok[t]`` is False where an active column is numerically dependent on the other active
    ones: ``1 / (M_jj inv(M)_jj)``, the squared sine of the angle between column ``j`` and
    the span of the others (in the metric of the data), is below ``_CODES_SCHUR_REL`` (or
    not positive: ``M_t`` not definite), or ``M_t`` is exactly singular.
    """
    n, k = rhs.shape
    ok = np.ones(n, dtype=bool)
    try:
        Minv = np.linalg.inv(M)
    except np.linalg.LinAlgError:
        Minv = np.empty_like(M)
        for i in range(n):
            try:
                Minv[i] = np.linalg.inv(M[i])
            except np.linalg.LinAlgError:
                Minv[i], ok[i] = np.eye(k), False
    with np.errstate(divide="ignore", invalid="ignore"):
        sine2 = 1.0 / (np.diagonal(M, axis1=1, axis2=2) * np.diagonal(Minv, axis1=1, axis2=2))
    ok &= np.all(~active | (sine2 > _CODES_SCHUR_REL), axis=1)
    return np.einsum("tij,tj->ti", Minv, rhs), ok


def _lasso_fallback(G: np.ndarray, c: np.ndarray, mu: float, s0: np.ndarray) -> np.ndarray:
    """One code problem by the semi-definite active-set method of :mod:`solvers.transfer`,
    on the split ``s = u+ - u-`` (``u >= 0``, Gram ``[[G, -G], [-G, G]]``, singular)."""
    k = c.size
    Gs = np.block([[G, -G], [-G, G]])
    cs = np.concatenate([c - mu, -c - mu])
    u0 = np.concatenate([np.maximum(s0, 0.0), np.maximum(-s0, 0.0)])
    scale = float(np.abs(G).max(initial=0.0) * np.abs(s0).sum() + np.abs(c).max(initial=0.0)) + mu
    u = _nnqp_psd(Gs, cs, u0, 64 * k * _EPS * scale)
    return u[:k] - u[k:]


def _lasso_qp(G: np.ndarray, g0: np.ndarray, mu: float, S0: np.ndarray) -> np.ndarray:
    """For every row ``t``: ``argmin_s g0_t'(s - s0_t) + 1/2 (s - s0_t)'G_t(s - s0_t) + mu ||s||_1``
    (``G_t`` k x k PSD; ``g0_t`` the gradient of the smooth part at ``s0_t``, row t of ``S0``).

    An active-set method exact on the support, run for all rows at once: on the active
    set ``A`` with signs ``z`` the minimiser is ``s_A = s0_A + d_A``,
    ``G_AA d_A = -g0_A - mu z_A + G_AB s0_B`` (``B`` the inactive coordinates, held at 0);
    a solution that leaves the orthant of ``z`` is stepped back to the first coordinate that
    reaches 0, which leaves ``A``; at a solution inside its orthant the most violating
    inactive coordinate (``|g_j| > mu``, ``g = g0 + G (s - s0)``) enters with
    ``z_j = -sign(g_j)``. This is Lawson-Hanson on the split ``s = u+ - u-`` (``u >= 0``),
    so it terminates finitely, the objective decreasing at every step. Warm started from the
    support and signs of ``S0`` (a row whose warm support is singular restarts from 0).
    Solving for the correction ``d`` rather than for ``s`` keeps the solve accurate when
    ``G_AA`` is ill-conditioned: with ``g0`` from the data's residuals the first solve on an
    unchanged support is a step of iterative refinement. Rows the batched method cannot
    finish (dependent active columns, a rounding-level entry, the pivot cap) are solved by
    the semi-definite method of :func:`_lasso_fallback`.
    """
    T, k = g0.shape
    s = S0.copy()
    A = s != 0
    z = np.sign(s)
    warm = A.any(axis=1)
    state = np.where(warm, _SOLVE, _PRICE)
    eye = np.eye(k, dtype=bool)
    for _ in range(4 * k + 20):
        pr = np.nonzero(state == _PRICE)[0]
        if pr.size:
            Gp, dp, gp = G[pr], s[pr] - S0[pr], g0[pr]
            g = gp + np.einsum("tij,tj->ti", Gp, dp)
            # rounding of g: a coordinate enters only if it violates beyond it
            slack = 16 * k * _EPS * (np.einsum("tij,tj->ti", np.abs(Gp), np.abs(dp)) + np.abs(gp) + mu)
            v = np.where(A[pr], -np.inf, np.abs(g) - mu - slack)
            j = np.argmax(v, axis=1)
            add = v[np.arange(pr.size), j] > 0
            state[pr[~add]] = _DONE
            rows, cols = pr[add], j[add]
            A[rows, cols] = True
            z[rows, cols] = -np.sign(g[add, cols])
            state[rows] = _SOLVE
        so = np.nonzero(state == _SOLVE)[0]
        if so.size == 0:
            break
        As, zs, ss, s0 = A[so], z[so], s[so], S0[so]
        Gs = G[so]
        M = np.where(As[:, :, None] & As[:, None, :], Gs, 0.0) + (eye & ~As[:, :, None])
        rhs = np.where(As, np.einsum("tij,tj->ti", Gs, np.where(As, 0.0, s0)) - g0[so] - mu * zs, 0.0)
        d, ok = _masked_solve(M, rhs, As)
        x = np.where(As, s0 + d, 0.0)
        bad = As & (zs * x <= 0)
        # a coordinate that just entered (s_j = 0) and comes out with the wrong sign:
        # impossible in exact arithmetic for a definite G_AA, so a rounding-level entry
        stuck = np.any(bad & (ss == 0), axis=1)
        fail = ~ok | stuck
        if fail.any():
            first = warm[so]  # the first solve of a warm start: restart that row from 0
            restart = so[fail & first]
            s[restart], A[restart], z[restart] = 0.0, False, 0.0
            state[restart] = _PRICE
            state[so[fail & ~first]] = _FAIL
        warm[so] = False
        inside = ~fail & ~bad.any(axis=1)
        s[so[inside]] = x[inside]
        state[so[inside]] = _PRICE
        back = ~fail & ~inside
        if back.any():
            sb, xb, bb = ss[back], x[back], bad[back]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(bb, sb / (sb - xb), np.inf)
            hit = np.argmin(ratio, axis=1)
            alpha = ratio[np.arange(hit.size), hit]
            sn = sb + alpha[:, None] * (xb - sb)
            sn[np.arange(hit.size), hit] = 0.0
            sn[zs[back] * sn <= 0] = 0.0
            rows = so[back]
            s[rows], A[rows] = sn, sn != 0
            z[rows] = np.where(sn != 0, zs[back], 0.0)
    for t in np.nonzero(state != _DONE)[0]:  # s[t] is feasible: the fallback starts there
        s[t] = _lasso_fallback(G[t], G[t] @ S0[t] - g0[t], mu, s[t])
    return s


#: Tasks of unequal sizes are padded with zero rows of weight 0 to the largest size when that
#: adds at most this factor of rows: every per-task product is then one batched call on a
#: (T, n, .) array; beyond it the per-task sums are segment reductions of the stacked rows.
_PAD_MAX = 2.0

#: The S-step accepts a trial point that does not resolve an Armijo decrease (its objective
#: can lie above the current one by at most ``gap * P``) only when its certified relative gap
#: is below the current one *and* below this: a rounding-level regime. (Without the second
#: condition, a far proximal Newton step with a gap of 0.85 was accepted with the objective
#: 2.5 times higher, and the task then stalled there.)
_CODES_GAP_ACCEPT = 1e-8


def gomtl_balance(L: np.ndarray, S: np.ndarray, mu: float, lam: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The GO-MTL penalty's best rescaling of the latent tasks: ``(L diag(c), diag(c)^{-1} S,
    drop)`` with ``c_i`` minimising ``lam c_i^2 ||L_i||^2 + mu ||S_i||_1 / c_i``, that is
    ``c_i^3 = mu ||S_i||_1 / (2 lam ||L_i||^2)`` (``c_i = 1`` where column ``i`` of ``L`` or row
    ``i`` of ``S`` is 0). ``W = L S``, hence the loss, does not change (up to rounding); the
    penalty ``mu ||S||_1 + lam ||L||_F^2`` falls by ``drop >= 0``."""
    a, b = np.sum(L * L, axis=0), np.sum(np.abs(S), axis=1)
    on = (a > 0) & (b > 0)
    c = np.ones(L.shape[1])
    c[on] = np.cbrt(mu * b[on] / (2.0 * lam * a[on]))
    drop = float(np.sum(lam * a + mu * b) - np.sum(lam * c * c * a + mu * b / c))
    return L * c, S / c[:, None], max(drop, 0.0)


def _logistic_terms(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For margins ``m``: ``log(1 + exp(-m))``, ``p = expit(-m)``, ``1 - p = expit(m)`` and
    ``log1p(exp(-|m|))``, from one exponential and one logarithm (each accurate where it is
    small: ``1 - p`` is not formed by cancellation). The binary entropy of ``p`` is then
    ``log1p(exp(-|m|)) + p max(m, 0) + (1 - p) max(-m, 0)``."""
    e = np.abs(m)  # in place from here: these run on every row at every evaluation
    np.negative(e, out=e)
    np.exp(e, out=e)
    l1 = np.log1p(e)
    r = e + 1.0
    np.reciprocal(r, out=r)
    er = e * r
    pos = m >= 0
    softplus = np.minimum(m, 0.0)
    np.negative(softplus, out=softplus)
    softplus += l1
    return softplus, np.where(pos, er, r), np.where(pos, r, er), l1


def _softplus(m: np.ndarray) -> np.ndarray:
    """``log(1 + exp(-m))``, as the first output of :func:`_logistic_terms`."""
    e = np.abs(m)
    np.negative(e, out=e)
    np.exp(e, out=e)
    np.log1p(e, out=e)
    softplus = np.minimum(m, 0.0)
    np.negative(softplus, out=softplus)
    softplus += e
    return softplus


def _pcg(
    apply: Callable[[np.ndarray], np.ndarray],
    g: np.ndarray,
    psolve: Callable[[np.ndarray], np.ndarray],
    lam2: float,
    *,
    target: float | None,
    rtol: float,
    budget: int,
    x0: np.ndarray | None = None,
) -> tuple[np.ndarray, float, float, str]:
    r"""Preconditioned conjugate gradients on ``H p = g`` from ``p = x0`` (default 0; ``H``
    symmetric with ``H >= lam2 I``, ``lam2 > 0``; ``apply(V) = H V``, ``psolve(R) ~ H^{-1} R``).

    Returns ``(p, lb, ub, status)`` with bounds ``lb <= g'H^{-1}g <= ub`` (in exact
    arithmetic) evaluated at the returned ``p`` with a fresh product ``H p``: for any ``p``,
    with ``r = g - H p``, ``g'H^{-1}g = (2 g'p - p'Hp) + r'H^{-1}r`` and
    ``0 <= r'H^{-1}r <= ||r||^2 / lam2``. ``status``: ``"certified"`` (the recurrences
    reached ``ub <= target``; the caller checks the returned ``ub``), ``"solved"`` (the
    preconditioned residual norm fell to ``rtol`` of its start), ``"zero"`` (``g = 0``),
    ``"slow"`` (the observed rate predicts more than ``budget`` iterations), ``"budget"`` or
    ``"breakdown"``. With a ``target`` (a Newton system) and ``x0 = None``, a ``"solved"``
    exit skips the fresh product and returns the bounds of the recurrences (``g'p = p'Hp``
    and the recurrence residual): it is used for a step only, never as a certificate.
    """
    if x0 is None:
        p, r = np.zeros_like(g), g.copy()
        z = psolve(r)
        rz0 = rz = float(np.vdot(r, z))  # rtol is relative to the residual of p = 0
        if not rz > 0:
            return p, 0.0, float(np.vdot(g, g)) / lam2, "zero"
    else:
        p, r = x0.copy(), g - apply(x0)
        z = psolve(r)
        rz, rz0 = float(np.vdot(r, z)), float(np.vdot(g, psolve(g)))
        if not rz0 > 0:
            return np.zeros_like(g), 0.0, 0.0, "zero"
    direction = z
    status, it = ("budget", 0) if rz > rtol * rtol * rz0 else ("solved", budget)
    while it < budget:
        Hd = apply(direction)
        dHd = float(np.vdot(direction, Hd))
        if not dHd > 0:
            status = "breakdown"
            break
        alpha = rz / dHd
        p = p + alpha * direction
        r = r - alpha * Hd
        it += 1
        if target is not None and float(np.vdot(g, p)) + float(np.vdot(r, r)) / lam2 <= target:
            status = "certified"
            break
        z = psolve(r)
        rz_new = float(np.vdot(r, z))
        if rz_new <= rtol * rtol * rz0:
            status = "solved"
            break
        if it >= 3:  # the residual's rate so far: iterations it predicts to reach rtol
            rate = 0.5 * np.log(rz_new / rz0) / it
            if not rate < 0 or np.log(rtol) / rate > budget:
                status = "slow"
                break
        direction = z + (rz_new / rz) * direction
        rz = rz_new
    if status == "solved" and target is not None and x0 is None:
        # a Newton step, not a certificate (the recurrences did not reach the target): the
        # bounds from the recurrences (g'p = p'Hp, and r), without a fresh product
        lb = float(np.vdot(g, p))
        return p, max(lb, 0.0), max(lb, 0.0) + float(np.vdot(r, r)) / lam2, status
    Hp = apply(p)
    r = g - Hp
    lb = 2.0 * float(np.vdot(g, p)) - float(np.vdot(p, Hp))
    ub = lb + float(np.vdot(r, r)) / lam2
    return p, max(lb, 0.0), max(ub, 0.0), status


def _compress_rows(Xl: list[np.ndarray], yl: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The squared loss of every task with more than ``d + 1`` rows on ``d + 1`` rows.

    The triangular factor of the thin QR of ``[X_t, y_t]`` is ``[[R_t, z_t], [0, rho_t]]``
    with ``X_t = Q_t R_t``, ``z_t = Q_t' y_t`` and ``|rho_t| = ||y_t - Q_t z_t||``, so
    ``||y_t - X_t w||^2 = ||z_t - R_t w||^2 + rho_t^2``: the rows ``[R_t; 0]`` with targets
    ``[z_t; rho_t]`` give the same residual norm, the same ``X_t' r`` and ``y_t' r`` for every
    ``w``, hence the same losses, gradients, Hessians and duality gaps (the weights stay
    ``1 / n_t``), up to the rounding of a backward-stable QR (the part of ``y_t`` outside the
    span of ``X_t`` is never formed as ``||y||^2 - ||z||^2``, which cancels when the fit is
    close). Kept for the last few data sets (a digest of their bytes): a grid builds one
    :class:`GOMTLSteps` per fit."""
    import hashlib

    digest = hashlib.blake2b(digest_size=32)
    for X, y in zip(Xl, yl):
        for a in (X, y):
            digest.update(repr(a.shape).encode())
            digest.update(np.ascontiguousarray(a).data)
    key = digest.hexdigest()
    if key in _COMPRESSED:
        return _COMPRESSED[key]
    Xc, yc = [], []
    for X, y in zip(Xl, yl):
        n, d = X.shape
        if n <= d + 1:
            Xc.append(X)
            yc.append(y)
            continue
        R = np.linalg.qr(np.column_stack([X, y]), mode="r")
        Xc.append(np.triu(R)[:, :d])  # (d + 1) x d, its last row 0
        yc.append(R[:, d].copy())
    while len(_COMPRESSED) >= 4:  # the oldest first
        _COMPRESSED.pop(next(iter(_COMPRESSED)))
    _COMPRESSED[key] = (Xc, yc)
    return Xc, yc


#: The last few outputs of :func:`_compress_rows`, by a digest of the data.
_COMPRESSED: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}


class GOMTLSteps:
    r"""The two GO-MTL steps on one data set (validated and prepared once).

    ``codes(L, mu)`` solves ``min_S sum_t L_t(L s_t) + mu ||S||_1`` and ``basis(S, lam)``
    solves ``min_L sum_t L_t(L s_t) + lam ||L||_F^2``; :func:`solve_gomtl_codes` and
    :func:`solve_gomtl_basis` are these on freshly prepared data, and
    :func:`amtl_cvx.baselines.multitask.fit_gomtl` alternates them on one instance.

    **Data.** For the squared loss, every task with more than ``d + 1`` rows is first
    replaced by ``d + 1`` rows with the same losses, gradients and duality gaps (its thin QR
    factor and the norm of the targets' part outside the span, :func:`_compress_rows`): on
    ``make_tabular_tasks(random_state=0)`` the rows fall from 8,248 to 3,642 (4,060 padded:
    every task then fits the padded layout below), and the default GO-MTL grid's time
    roughly halves (docs/baselines.md). The tasks' rows are stacked once; when padding every task with zero rows of
    weight 0 to the largest size at most doubles the rows (always for equal sizes), they
    are held as one (T, n, d) array and every per-task product (the scores ``X_t w_t``, the
    sums ``X_t' v_t``, the Grams ``X_t' diag(v) X_t``) is one batched call.

    **Codes** (``S``, k x T). The T problems are independent l1-regularised problems in
    the k columns of ``M_t = X_t L`` (k, the number of latent tasks, is small). Each is
    solved by proximal Newton: the loss is replaced by its quadratic model at ``s_t``
    (Hessian ``G_t = M_t' diag(D_t) M_t / n_t``; for the squared loss the model is exact
    and ``G_t = M_t'M_t / n_t`` is formed once), the model's lasso is solved exactly by an
    active-set method (:func:`_lasso_qp`, warm-started from the support and signs of
    ``s_t``), and the step is taken with an Armijo search on the true objective. For the
    squared loss the first step is the exact minimiser up to rounding, and the next ones
    (linear terms recomputed from residuals of the data, not from ``G_t``) are iterative
    refinement. The **certificate** is the largest per-task relative duality gap
    ``max_t (P_t - D_t) / P_t``: with ``theta_t = -grad ell_t`` at the scores, scaled by
    ``min(1, mu / ||M_t' theta_t||_inf)``, ``D_t`` is the dual bound of the module
    docstring for that task, so the certificate bounds the relative suboptimality of
    *every* task's problem, whatever the scale of its data, of ``L`` or of ``mu``
    (``P_t = 0``, only at ``y_t = 0``, counts as 0). ``n_iter`` counts proximal Newton
    steps.

    **Basis** (``L``, d x k). With ``X_t L s_t = (s_t' kron X_t) vec(L)`` the Hessian is
    ``H = sum_t (s_t s_t') kron H_t + 2 lam I`` (dk x dk, ``H_t = X_t' diag(D) X_t / n_t``),
    and ``H V = sum_t X_t' diag(D) X_t (V s_t) s_t' / n_t + 2 lam V`` costs two passes over
    the data, without ``H``. Squared loss: ``H`` is assembled from the Grams
    ``X_t'X_t / n_t`` (computed once) and factorised once per call; a direct solve with
    refinement. Logistic loss: Newton's method with an Armijo search, its systems solved
    (inexactly, to about the current relative decrement) by preconditioned conjugate
    gradients (:func:`_pcg`) with the inverse of an earlier exact Hessian, kept by the
    instance from call to call (the alternation changes ``S`` and ``L`` little). The
    preconditioner is renewed (the Grams ``X_t' diag(D) X_t`` at the current point, the
    assembly of ``H`` and its inverse) when conjugate gradients stall on it, and, after the
    first Newton step of a call, when the products the calls since its last renewal needed
    beyond the fewest needed since add up to the cost of a renewal. The **certificate** is
    the relative Newton decrement of the module docstring, bounded from above:
    ``g'H^{-1}g`` by the bound of :func:`_pcg` at ``L`` (a fresh product ``H p``), its value
    at 0 (Hessian ``sum_t (s_t s_t') kron X_t'X_t / (4 n_t) + 2 lam I``, products from the
    Grams, conjugate gradients started from the previous call's solution) from below, so a
    certificate below ``tol`` certifies the exact relative decrement. ``n_iter`` counts
    Newton steps.
    """

    def __init__(self, Xs: Sequence[Any], ys: Sequence[Any], loss: str = "squared") -> None:
        self.Xl, self.yl, self.loss = _prepare(Xs, ys, loss)
        T = self.n_tasks = len(self.Xl)
        d = self.n_features = self.Xl[0].shape[1]
        n_rows = np.array([X.shape[0] for X in self.Xl], dtype=np.float64)  # the weights' n_t
        Xr, yr = (_compress_rows(self.Xl, self.yl) if self.loss == "squared" else (self.Xl, self.yl))
        ns = np.array([X.shape[0] for X in Xr])
        n = int(ns.max())
        if T * n <= _PAD_MAX * ns.sum():
            X3, y2, w2 = np.zeros((T, n, d)), np.zeros((T, n)), np.zeros((T, n))
            for t, (X, y) in enumerate(zip(Xr, yr)):
                X3[t, : len(y)], y2[t, : len(y)], w2[t, : len(y)] = X, y, 1.0 / n_rows[t]
            self._X3: np.ndarray | None = X3
            self._X, self._y, self._w = X3.reshape(T * n, d), y2.ravel(), w2.ravel()
            self._task = np.repeat(np.arange(T), n)
            self._bounds = n * np.arange(T + 1)
        else:
            self._X3 = None
            self._bounds = np.concatenate([[0], np.cumsum(ns)])
            self._X = np.vstack(Xr)
            self._y = np.concatenate(yr)
            self._task = np.repeat(np.arange(T), ns)
            self._w = 1.0 / np.repeat(n_rows, ns)  # 1 / n_t on every row of task t
        self._G: np.ndarray | None = None  # X_t'X_t / n_t, (T, d, d)
        self._Xy: np.ndarray | None = None  # X_t'y_t / n_t, (T, d)
        # Cholesky factors kept between logistic L-steps as preconditioners: (k, lam, factor)
        self._factors: dict[str, tuple] = {}
        # (k, lam, CG products of the L-step after the last renewal, their excess since)
        self._pc_state: tuple = (None, None, None, 0.0)

    # ------------------------------------------------------------ per-task products
    def _per_task(self, v: np.ndarray) -> np.ndarray:
        """Sums of a per-row vector over each task's rows, shape (T,)."""
        if self._X3 is not None:
            return v.reshape(self.n_tasks, -1).sum(axis=1)
        return np.bincount(self._task, weights=v, minlength=self.n_tasks)

    def _scores(self, Z: np.ndarray, V: np.ndarray) -> np.ndarray:
        """``Z_i . V[t(i)]`` for every row ``i`` (``Z`` rows x m, ``V`` T x m), shape (rows,)."""
        if self._X3 is not None:
            return np.matmul(Z.reshape(self.n_tasks, -1, Z.shape[1]), V[:, :, None]).reshape(-1)
        return np.einsum("nm,nm->n", Z, V[self._task])

    def _sums(self, v: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """``sum_{i in task t} v_i Z_i`` for every task (``Z`` rows x m), shape (T, m)."""
        if self._X3 is not None:
            T = self.n_tasks
            return np.matmul(v.reshape(T, 1, -1), Z.reshape(T, -1, Z.shape[1]))[:, 0, :]
        return np.add.reduceat(Z * v[:, None], self._bounds[:-1], axis=0)

    def _grams(self, Z: np.ndarray, weights: np.ndarray, tasks: np.ndarray | None = None) -> np.ndarray:
        """``Z_t' diag(weights_t) Z_t`` for every task (or those of ``tasks``), shape (T, m, m),
        symmetric."""
        T, m = self.n_tasks, Z.shape[1]
        if self._X3 is not None and tasks is not None:
            Z3, w2 = Z.reshape(T, -1, m)[tasks], weights.reshape(T, -1)[tasks]
            G = np.matmul((Z3 * w2[:, :, None]).transpose(0, 2, 1), Z3)
            return 0.5 * (G + np.swapaxes(G, 1, 2))
        if tasks is not None:
            return self._grams(Z, weights)[tasks]
        Zw = Z * weights[:, None]
        if self._X3 is not None:
            G = np.matmul(Zw.reshape(T, -1, m).transpose(0, 2, 1), Z.reshape(T, -1, m))
        elif Z.shape[0] * m * m <= 1 << 20:
            G = np.add.reduceat((Zw[:, :, None] * Z[:, None, :]).reshape(-1, m * m), self._bounds[:-1], axis=0)
            G = G.reshape(-1, m, m)
        else:
            b = self._bounds
            G = np.stack([Zw[b[t]:b[t + 1]].T @ Z[b[t]:b[t + 1]] for t in range(T)])
        return 0.5 * (G + np.swapaxes(G, 1, 2))

    def _data_grams(self) -> np.ndarray:
        """``X_t'X_t / n_t`` (T, d, d), computed once."""
        if self._G is None:
            self._G = self._grams(self._X, self._w)
        return self._G

    def _codes_eval(self, Z: np.ndarray, S: np.ndarray, mu: float, tasks: np.ndarray | None = None):
        """At codes ``S`` (T x k, one row per task), for the tasks ``tasks`` (default all):
        their primal values ``P``, relative duality gaps, ``corr = M_t' theta_t`` (minus the
        loss gradient, one row per task) and the logistic curvature per row (``None`` for the
        squared loss; a vector over all rows, set on the rows of ``tasks``). With the tasks
        padded to one size only the rows of ``tasks`` are read."""
        T, k = self.n_tasks, Z.shape[1]
        if self._X3 is not None:
            n = Z.shape[0] // T
            Z3, y, w, St = Z.reshape(T, n, k), self._y.reshape(T, n), self._w.reshape(T, n), S
            if tasks is not None:
                Z3, y, w, St = Z3[tasks], y[tasks], w[tasks], S[tasks]
            z = np.matmul(Z3, St[:, :, None])[:, :, 0]
        else:
            y, w, St = self._y, self._w, S
            z = self._scores(Z, S)

        def per_task(v):
            return v.sum(axis=1) if self._X3 is not None else self._per_task(v)

        if self.loss == "squared":
            r = y - z
            rw = r * w
            loss = 0.5 * per_task(r * rw)
            ry = per_task(y * rw)
            theta, D = rw, None
        else:
            m = y * z
            softplus, p, pc, l1 = _logistic_terms(m)
            loss = per_task(softplus * w)
            theta, D = y * p * w, p * pc
        corr = np.matmul(theta[:, None, :], Z3)[:, 0, :] if self._X3 is not None else self._sums(theta, Z)
        P = loss + mu * np.abs(St).sum(axis=1)
        amax = np.abs(corr).max(axis=1)
        a = np.minimum(1.0, mu / np.where(amax > 0, amax, np.inf))
        a[amax == 0] = 1.0
        if self.loss == "squared":
            dual = a * ry - a * a * loss
        else:  # the binary entropy of a p (a = 1: from the margins, without logarithms)
            ent = l1 + p * np.maximum(m, 0.0) + pc * np.maximum(-m, 0.0)
            ar = a[:, None] * np.ones_like(p) if self._X3 is not None else a[self._task]
            scaled = ar < 1.0
            if scaled.any():
                q = ar[scaled] * p[scaled]
                ent[scaled] = entr(q) + entr(1.0 - q)
            dual = per_task(ent * w)
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.where(P > 0, np.maximum(P - dual, 0.0) / P, 0.0)
        if self._X3 is not None:  # only the rows of ``tasks`` were read: P, gap, corr are theirs
            if D is not None:
                D_all = np.zeros((T, Z.shape[0] // T))
                D_all[slice(None) if tasks is None else tasks] = D
                D = D_all.reshape(-1)
        elif tasks is not None:
            P, gap, corr = P[tasks], gap[tasks], corr[tasks]
        return P, gap, corr, D

    def objective(self, L: np.ndarray, S: np.ndarray, mu: float, lam: float) -> float:
        """``sum_t L_t(L s_t) + mu ||S||_1 + lam ||L||_F^2`` from the prepared data (unchecked;
        equal to :func:`amtl_cvx.baselines.multitask.gomtl_objective` up to rounding)."""
        z = self._scores(self._X, (L @ S).T)
        if self.loss == "squared":
            r = self._y - z
            f = 0.5 * float(r @ (r * self._w))
        else:
            f = float(_softplus(self._y * z) @ self._w)
        return f + mu * float(np.sum(np.abs(S))) + lam * float(np.sum(L * L))

    # ------------------------------------------------------------ steps
    def codes(self, L: Any, mu: float, *, S0: Any = None, tol: float = 1e-10, max_iter: int = 100) -> SolverResult:
        """The S-step from ``S0`` (k x T, default zeros). ``solution`` is ``S`` (k, T),
        ``objective`` ``sum_t L_t(L s_t) + mu ||S||_1``, ``certificate`` the largest
        per-task relative duality gap (class docstring); ``max_iter`` caps the proximal
        Newton steps."""
        L = _check_array(L, "L", ndim=2)
        if L.shape[0] != self.n_features:
            raise ValueError(f"L must have {self.n_features} rows, got shape {L.shape}")
        mu = _check_scalar(mu, "mu", strict=True)
        tol, max_iter = _check_solver_options(tol, max_iter)
        k = L.shape[1]
        S = _check_start(S0, (k, self.n_tasks), "S0").T.copy()  # one row per task
        Z = self._X @ L
        squared = self.loss == "squared"
        if squared:  # the model is exact: the first step needs neither a value nor a search
            T = self.n_tasks
            P, gap, corr, D = np.full(T, np.inf), np.full(T, np.inf), None, None
            G = self._grams(Z, self._w)
            lin = self._sums(self._y * self._w, Z)  # M_t' y_t / n_t
        else:
            P, gap, corr, D = self._codes_eval(Z, S, mu)
        live = np.ones(self.n_tasks, dtype=bool)  # tasks still improving
        it = 0
        while it < max_iter:
            todo = np.nonzero(live & (gap > tol))[0]
            if todo.size == 0:
                break
            if not squared:  # the model Hessians of the tasks still to do
                Gt = self._grams(Z, D * self._w, todo)
            else:
                Gt = G[todo]
            st = S[todo]
            # the gradient of the loss at s: -corr, from the data's residuals (for the squared
            # loss the next steps are then iterative refinement); the first squared step
            # takes it from the model, G s - M'y/n
            g0 = np.einsum("tij,tj->ti", Gt, st) - lin[todo] if corr is None else -corr[todo]
            target = _lasso_qp(Gt, g0, mu, st)
            step = target - st
            # the model's decrease (<= 0): linear term plus the change of the l1 term
            pred = mu * (np.abs(target).sum(axis=1) - np.abs(st).sum(axis=1)) + np.einsum("ti,ti->t", g0, step)
            Po, go = P[todo], gap[todo]
            slack = 64 * _EPS * np.where(np.isfinite(Po), np.abs(Po), 0.0)  # Po = inf: the first squared step
            alpha = np.ones(todo.size)
            pending = np.ones(todo.size, dtype=bool)
            progress = np.zeros(todo.size, dtype=bool)
            while True:  # Armijo search (squared loss: the exact model's step, alpha = 1 only)
                idx = np.nonzero(pending)[0]  # positions in todo
                tasks = todo[idx]
                trial = S.copy()
                trial[tasks] = st[idx] + alpha[idx, None] * step[idx]
                Pn, gn, cn, Dn = self._codes_eval(Z, trial, mu, tasks)
                # a decrease that F resolves (Armijo), or, at rounding level, a smaller certified
                # gap: since P* <= Po, a point with relative gap gn can lie above Po by at most
                # gn Pn, and at these levels the rounding of P (large terms of X_t L s_t
                # cancelling) can exceed eps P
                accept = (Pn <= Po[idx] + 1e-4 * alpha[idx] * pred[idx]) | (
                    (gn < go[idx]) & (gn <= _CODES_GAP_ACCEPT) & (Pn <= Po[idx] + gn * np.abs(Pn) + slack[idx])
                )
                if accept.any():
                    rows = tasks[accept]
                    if corr is None:
                        corr = np.zeros_like(S)
                    S[rows], P[rows], gap[rows], corr[rows] = trial[rows], Pn[accept], gn[accept], cn[accept]
                    if D is not None:
                        on = np.zeros(self.n_tasks, dtype=bool)
                        on[rows] = True
                        on = on[self._task]
                        D[on] = Dn[on]
                    # progress: F lower beyond rounding, or the gap at least halved
                    a_idx = idx[accept]
                    progress[a_idx] = (Pn[accept] < Po[a_idx] - slack[a_idx]) | (gn[accept] <= 0.5 * go[a_idx])
                    pending[a_idx] = False
                alpha[pending] *= 0.5
                if squared or not pending.any() or alpha.max() < 1e-12:
                    break
            # a task whose step no longer makes progress is at the limit of floating point
            live[todo[~progress]] = False
            it += 1
        if not np.all(np.isfinite(gap)):  # max_iter = 0 with the squared loss: not evaluated
            P, gap = self._codes_eval(Z, S, mu)[:2]
        return _result(S.T.copy(), float(P.sum()), it, float(gap.max()), tol, None)

    def basis(self, S: Any, lam: float, *, L0: Any = None, tol: float = 1e-10, max_iter: int = 100) -> SolverResult:
        """The L-step from ``L0`` (d x k, default zeros). ``solution`` is ``L`` (d, k),
        ``objective`` ``sum_t L_t(L s_t) + lam ||L||_F^2``, ``certificate`` the relative
        Newton decrement (squared loss) or an upper bound of it (logistic loss, class
        docstring); ``max_iter`` caps the Newton steps."""
        S = _check_array(S, "S", ndim=2)
        T, d = self.n_tasks, self.n_features
        if S.shape[1] != T:
            raise ValueError(f"S must have {T} columns, got shape {S.shape}")
        k = S.shape[0]
        lam = _check_scalar(lam, "lam", strict=True)
        tol, max_iter = _check_solver_options(tol, max_iter)
        L = _check_start(L0, (d, k), "L0")
        S = np.ascontiguousarray(S, dtype=np.float64)
        St = S.T.copy()  # (T, k)
        X, y, w, lam2 = self._X, self._y, self._w, 2.0 * lam
        SS = np.einsum("it,jt->tij", S, S).reshape(T, k * k)

        def value_grad(V: np.ndarray):
            """``(F(V), grad F(V), per-row curvature / n_t)`` (curvature ``None``: squared)."""
            z = self._scores(X, (V @ S).T)  # row i of task t: x_i' V s_t
            f = lam * float(np.sum(V * V))
            if self.loss == "squared":
                gz = (z - y) * w
                f += 0.5 * float((z - y) @ gz)
                Dw = None
            else:
                softplus, p, pc, _ = _logistic_terms(y * z)
                f += float(softplus @ w)
                gz = -y * p * w
                Dw = p * pc * w
            return f, self._sums(gz, X).T @ St + lam2 * V, Dw

        def assemble(Ht: np.ndarray) -> np.ndarray:
            """``sum_t (s_t s_t') kron H_t + 2 lam I`` from (T, d, d); row ``a + d i``: ``L[a, i]``."""
            H = (SS.T @ Ht.reshape(T, d * d)).reshape(k, k, d, d).transpose(0, 2, 1, 3).reshape(k * d, k * d)
            H[np.diag_indices(k * d)] += lam2
            return H

        def factorize(H: np.ndarray) -> np.ndarray:
            # LAPACK directly: H is finite by construction, and scipy's checks of every
            # solve cost more than the solve at these sizes
            C, info = sla.lapack.dpotrf(H, lower=False, clean=False)
            if info != 0:
                raise np.linalg.LinAlgError(f"the L-step Hessian is not positive definite (dpotrf info {info})")
            return C

        def solver(C: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            def solve(G: np.ndarray) -> np.ndarray:
                x, info = sla.lapack.dpotrs(C, G.reshape(-1, order="F"), lower=False)
                return x.reshape((d, k), order="F")

            return solve

        if self.loss == "squared":  # a constant Hessian, assembled from the Grams: one factorisation
            Hsolve = solver(factorize(assemble(self._data_grams())))
            last: list = [None, 0.0]  # the last point evaluated and its value

            def value_grad_hess(V: np.ndarray):
                f, G, _ = value_grad(V)
                last[:] = [V, f]
                return f, G, lambda: None

            L, n_iter, cert = _newton(value_grad_hess, lambda _: Hsolve, L, tol, max_iter, None, quadratic=True)
            return _result(L, last[1] if last[0] is L else value_grad(L)[0], n_iter, cert, tol, None)

        def inverse(H: np.ndarray) -> np.ndarray:  # the preconditioner of the logistic L-step
            Ci, info = sla.lapack.dpotri(factorize(H), lower=False)
            if info != 0:
                raise np.linalg.LinAlgError(f"the L-step Hessian is singular (dpotri info {info})")
            return np.triu(Ci) + np.triu(Ci, 1).T

        L, f, n_iter, cert = self._basis_newton(value_grad, assemble, inverse, S, lam, L, tol, max_iter)
        return _result(L, f, n_iter, cert, tol, None)

    def _basis_newton(self, value_grad, assemble, inverse, S, lam, L, tol, max_iter):
        """The logistic L-step: Newton with preconditioned conjugate gradients (class
        docstring). Returns ``(L, F(L), Newton steps, certificate)``."""
        T, d, k = self.n_tasks, self.n_features, S.shape[0]
        lam2, R = 2.0 * lam, self._X.shape[0]
        St = S.T.copy()
        grams = self._data_grams()
        # costs in multiply-adds of a matrix product: a pass over the data or over the
        # preconditioner is memory-bound (~4 per entry read); a new preconditioner is the
        # Grams X_t' diag(D) X_t, the assembly of H (T k^2 d^2 entries) and its inverse
        cg_cost = 8.0 * R * d + 4.0 * (d * k) ** 2  # one CG iteration: a product and a solve
        inverse_cost = 4.0 * T * k * k * d * d + (d * k) ** 3
        refresh_cost = R * d * d + inverse_cost
        budget0 = int(np.clip(inverse_cost / (8.0 * T * d * d + 4.0 * (d * k) ** 2), 2, 100))
        budget = int(np.clip(refresh_cost / cg_cost, 2, 100))
        state = self._pc_state if self._pc_state[:2] == (k, lam) else (k, lam, None, 0.0)
        refreshed, n_cg = False, 0

        def solver(Minv: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            return lambda G: (Minv @ G.reshape(-1, order="F")).reshape((d, k), order="F")

        def hess0(V: np.ndarray) -> np.ndarray:  # the Hessian at L = 0: D = 1/4 on every row
            return 0.25 * np.einsum("tab,tb->ta", grams, St @ V.T).T @ St + lam2 * V

        def solve_system(name, apply, g, exact, target, rtol, budget_, x0=None):
            """PCG with the kept preconditioner; on a stall, the inverse of the exact Hessian
            (assembled from the per-task matrices ``exact()``), kept."""
            nonlocal refreshed
            kept = self._factors.get(name)
            if kept is not None and kept[:2] == (k, lam):
                p, lb, ub, status = _pcg(apply, g, solver(kept[2]), lam2, target=target, rtol=rtol, budget=budget_, x0=x0)
                if status in ("solved", "zero") or (target is not None and ub <= target):
                    return p, lb, ub
            Minv = inverse(assemble(exact()))
            self._factors[name] = (k, lam, Minv)
            refreshed |= name == "H"
            return _pcg(apply, g, solver(Minv), lam2, target=target, rtol=rtol, budget=8)[:3]

        # the reference g'H^{-1}g at L = 0 (from below): the gradient there is -sum_t X_t'y_t s_t' / (2 n_t);
        # PCG started from the last reference solution (S changes little from call to call), to a
        # residual 1e-4 of the start: the lower bound is then within ~1e-8 of the value (it only
        # makes the certificate that much more conservative)
        if self._Xy is None:
            self._Xy = self._sums(self._y * self._w, self._X)
        g0 = -0.5 * self._Xy.T @ St
        last = self._factors.get("p0")
        x0 = last[2] if last is not None and last[:2] == (k, lam) else None
        p0, dec0, _ = solve_system("H0", hess0, g0, lambda: 0.25 * grams, None, 1e-4, budget0, x0)
        self._factors["p0"] = (k, lam, p0)
        ref = np.sqrt(dec0) if dec0 > 0 else 1.0
        target = (tol * ref) ** 2
        f, g, Dw = value_grad(L)
        it, rtol = 0, 1e-2
        while True:

            def apply(V: np.ndarray, Dw: np.ndarray = Dw) -> np.ndarray:
                nonlocal n_cg
                n_cg += 1
                return self._sums(Dw * self._scores(self._X, (V @ S).T), self._X).T @ St + lam2 * V

            p, dec, ub = solve_system("H", apply, g, lambda: self._grams(self._X, Dw), target, rtol, budget)
            cert = np.sqrt(ub) / ref
            # inexact Newton: the next system solved to about the relative decrement here
            rtol = float(np.clip(cert, 1e-6, 1e-2))
            if cert <= tol or it >= max_iter or not dec > 0:
                break
            step = _armijo(value_grad, L, p, dec, f, g)
            it += 1
            if step is None:
                break
            L, f, g, Dw = step
            if it == 1 and not refreshed and state[3] >= refresh_cost:
                # the kept preconditioner has aged: the CG iterations it cost beyond those right
                # after its last renewal add up to a renewal; renew it here, after the first
                # step (the later, more accurate systems gain most)
                self._factors["H"] = (k, lam, inverse(assemble(self._grams(self._X, Dw))))
                refreshed = True
        # CG products of a call right after a renewal set the base (lowered by any call that
        # needs fewer); the other calls add their excess over it
        if refreshed or state[2] is None:
            self._pc_state = (k, lam, n_cg, 0.0)
        else:
            self._pc_state = (k, lam, min(state[2], n_cg), state[3] + max(n_cg - state[2], 0) * cg_cost)
        return L, f, it, float(cert)


def solve_gomtl_codes(
    Xs: Sequence[Any],
    ys: Sequence[Any],
    L: Any,
    mu: float,
    *,
    loss: str = "squared",
    S0: Any = None,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> SolverResult:
    """GO-MTL S-step: ``min_S sum_t L_t(L s_t) + mu ||S||_1`` (``L`` d x k fixed).

    T independent l1-regularised problems in the designs ``X_t L``, each solved by
    proximal Newton with an exact active-set solve of every model (squared loss: one
    exact solve plus refinement), see :class:`GOMTLSteps`. ``solution`` is ``S`` (k, T);
    ``certificate`` the largest per-task relative duality gap; ``max_iter`` caps the
    proximal Newton steps.
    """
    return GOMTLSteps(Xs, ys, loss).codes(L, mu, S0=S0, tol=tol, max_iter=max_iter)


def solve_gomtl_basis(
    Xs: Sequence[Any],
    ys: Sequence[Any],
    S: Any,
    lam: float,
    *,
    loss: str = "squared",
    L0: Any = None,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> SolverResult:
    """GO-MTL L-step: ``min_L sum_t L_t(L s_t) + lam ||L||_F^2`` (``S`` k x T fixed).

    With ``X_t L s_t = (s_t' kron X_t) vec(L)`` the Hessian is
    ``sum_t (s_t s_t') kron H_t + 2 lam I`` (dk x dk, formed densely): a direct solve
    with refinement (squared) or Newton (logistic), see :class:`GOMTLSteps`.
    ``solution`` is ``L`` (d, k); ``certificate`` the relative Newton decrement.
    """
    return GOMTLSteps(Xs, ys, loss).basis(S, lam, L0=L0, tol=tol, max_iter=max_iter)
