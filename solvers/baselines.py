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

The nonsmooth penalties (l2,1, trace, l1) with the logistic loss are solved by proximal
Newton (:mod:`solvers.prox_newton`: quadratic models with the tasks' Hessians, each
minimised without passes over the data), stopped on the same duality gap as below. On
usps1.mat (10 tasks, 88 PCA features, 10,000 rows) FISTA on the logistic loss needed
20,000 iterations (69 s, one BLAS thread) at ``lam = 1e-4 lambda_max`` and did not
certify; proximal Newton certifies it in 9 iterations. With the squared loss they are
solved by FISTA with a constant step
``1 / Lip`` (``Lip = max_t ||X_t||_2^2 / n_t``, a quarter of it for the logistic loss,
plus ``2 rho``) and O'Donoghue-Candes gradient restarts, stopped on the **relative
duality gap** ``(P(W) - D(theta)) / P(W) <= tol``: it bounds the relative
suboptimality ``(P(W) - P*) / P*`` by ``tol / (1 - tol)`` whatever the scale of the data.
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
(:class:`GOMTLSteps`).
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
        alpha, accepted = 1.0, False
        gnorm = float(np.linalg.norm(g))
        while alpha >= 1e-12:
            x_new = x - alpha * p
            f_new, g_new, hess_new = value_grad(x_new)
            if f_new <= f - 1e-4 * alpha * dec or (f_new <= f + 64 * _EPS * abs(f) and np.linalg.norm(g_new) < gnorm):
                accepted = True
                break
            alpha *= 0.5
        it += 1
        if not accepted:
            break
        x, f, g, hess = x_new, f_new, g_new, hess_new
    return x, it, cert


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
    """Solves ``H_t x_t + 2 lam (x_t - xbar) + 2 rho x_t = r_t`` (all t) for given ``H_t``."""

    def __init__(self, Hs: list[np.ndarray], lam: float, rho: float) -> None:
        self.lam, self.rho = lam, rho
        self.eig = [np.linalg.eigh(H) for H in Hs]
        d = Hs[0].shape[0]
        M = np.zeros((d, d))
        for h, U in self.eig:
            h = np.maximum(h, 0.0)
            M += (U * ((h + 2 * rho) / (h + 2 * (lam + rho)))) @ U.T
        self.M = sla.cho_factor(0.5 * (M + M.T))

    def _ainv(self, t: int, v: np.ndarray) -> np.ndarray:
        h, U = self.eig[t]
        return U @ ((U.T @ v) / (np.maximum(h, 0.0) + 2 * (self.lam + self.rho)))

    def __call__(self, R: np.ndarray) -> np.ndarray:
        T = R.shape[1]
        if self.lam == 0.0:
            return np.column_stack([self._ainv(t, R[:, t]) for t in range(T)])
        xbar = sla.cho_solve(self.M, sum(self._ainv(t, R[:, t]) for t in range(T)))
        return np.column_stack([self._ainv(t, R[:, t] + 2 * self.lam * xbar) for t in range(T)])


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
# Nonsmooth penalties: l2,1 / trace / l1, by FISTA with a duality-gap certificate
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
    """``min_W sum_t L_t(w_t) + lam Omega(W) + rho ||W||_F^2``: restarted FISTA (squared
    loss), proximal Newton (logistic loss, :func:`solvers.prox_newton.prox_newton`).

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
        Maximum FISTA iterations (squared loss) or proximal Newton iterations (logistic).
    check_every : int, default=10
        FISTA iterations between two evaluations of the gap (and at the end); proximal
        Newton evaluates it after every iteration.
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
    lip = _lipschitz(Xl, lossname, rho)
    if lip == 0.0:  # every X_t = 0 and rho = 0: the losses are constant, W = 0 minimises
        W = np.zeros((d, T))
        return _result(W, _smooth(Xl, yl, W, 0.0, lossname)[0], 0, 0.0, tol, None)
    hist: list[float] = []
    if lossname == "logistic":
        W, P, it, cert = prox_newton(
            lambda V: _logistic_oracle(Xl, yl, V),
            lambda V: _smooth(Xl, yl, V, 0.0, lossname)[0],
            lambda V, tau: _prox(V, tau, penalty),
            lambda V: penalty_value(V, penalty),
            lambda V: _gap(Xl, yl, V, lam, rho, penalty, lossname),
            W, lam, rho, tol=tol, max_iter=max_iter, history=hist if record_history else None,
            groups={"l21": "rows", "l1": "entries"}.get(penalty),
        )
        return _result(W, P, it, cert, tol, hist)
    step = 1.0 / lip
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


class GOMTLSteps:
    r"""The two GO-MTL steps on one data set (validated and prepared once).

    ``codes(L, mu)`` solves ``min_S sum_t L_t(L s_t) + mu ||S||_1`` and ``basis(S, lam)``
    solves ``min_L sum_t L_t(L s_t) + lam ||L||_F^2``; :func:`solve_gomtl_codes` and
    :func:`solve_gomtl_basis` are these on freshly prepared data, and
    :func:`amtl_cvx.baselines.multitask.fit_gomtl` alternates them on one instance.

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
    ``sum_t (s_t s_t') kron H_t + 2 lam I`` (dk x dk, formed densely with one product over
    the tasks; ``H_t = X_t' diag(D) X_t / n_t``, for the squared loss computed once): a
    direct solve with refinement (squared) or Newton (logistic), certified by the relative
    Newton decrement (module docstring). ``n_iter`` counts Newton steps.
    """

    def __init__(self, Xs: Sequence[Any], ys: Sequence[Any], loss: str = "squared") -> None:
        self.Xl, self.yl, self.loss = _prepare(Xs, ys, loss)
        self.n_tasks, self.n_features = len(self.Xl), self.Xl[0].shape[1]
        ns = np.array([X.shape[0] for X in self.Xl])
        self._bounds = np.concatenate([[0], np.cumsum(ns)])
        self._X = np.vstack(self.Xl)
        self._y = np.concatenate(self.yl)
        self._task = np.repeat(np.arange(self.n_tasks), ns)
        self._w = 1.0 / np.repeat(ns.astype(np.float64), ns)  # 1 / n_t on every row of task t
        self._H: np.ndarray | None = None

    # ------------------------------------------------------------ helpers
    def _per_task(self, v: np.ndarray) -> np.ndarray:
        """Sums of a per-row vector over each task's rows, shape (T,)."""
        return np.bincount(self._task, weights=v, minlength=self.n_tasks)

    def _per_task_rows(self, V: np.ndarray) -> np.ndarray:
        """Sums of the rows of ``V`` (N x m) over each task, shape (T, m)."""
        return np.add.reduceat(V, self._bounds[:-1], axis=0)

    def _grams(self, Z: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``Z_t' diag(weights_t) Z_t`` for every task, shape (T, m, m), symmetric."""
        m = Z.shape[1]
        if Z.shape[0] * m * m <= 1 << 20:
            G = self._per_task_rows(((Z * weights[:, None])[:, :, None] * Z[:, None, :]).reshape(-1, m * m))
            G = G.reshape(-1, m, m)
        else:
            b, Zw = self._bounds, Z * weights[:, None]
            G = np.stack([Zw[b[t]:b[t + 1]].T @ Z[b[t]:b[t + 1]] for t in range(self.n_tasks)])
        return 0.5 * (G + np.swapaxes(G, 1, 2))

    def _codes_eval(self, Z: np.ndarray, S: np.ndarray, mu: float):
        """At codes ``S`` (T x k, one row per task): per-task primal values ``P``, relative
        duality gaps, ``corr = M_t' theta_t`` (minus the loss gradient, T x k) and the
        logistic curvature per row (``None`` for the squared loss)."""
        z = np.einsum("nk,nk->n", Z, S[self._task])
        if self.loss == "squared":
            r = self._y - z
            rw = r * self._w
            loss = 0.5 * self._per_task(r * rw)
            ry = self._per_task(self._y * rw)
            theta, D = rw, None
        else:
            m = self._y * z
            p = expit(-m)
            loss = self._per_task(np.logaddexp(0.0, -m) * self._w)
            theta, D = self._y * p * self._w, p * expit(m)
        corr = self._per_task_rows(Z * theta[:, None])
        P = loss + mu * np.abs(S).sum(axis=1)
        amax = np.abs(corr).max(axis=1)
        a = np.minimum(1.0, mu / np.where(amax > 0, amax, np.inf))
        a[amax == 0] = 1.0
        if self.loss == "squared":
            dual = a * ry - a * a * loss
        else:
            q = a[self._task] * p
            dual = self._per_task((entr(q) + entr(1.0 - q)) * self._w)
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.where(P > 0, np.maximum(P - dual, 0.0) / P, 0.0)
        return P, gap, corr, D

    def _task_hessians(self, D: np.ndarray | None) -> np.ndarray:
        """``X_t' diag(D_t) X_t / n_t`` (T, d, d); ``D = None``: the squared loss, cached."""
        if D is None:
            if self._H is None:
                self._H = self._grams(self._X, self._w)
            return self._H
        return self._grams(self._X, D * self._w)

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
            lin = self._per_task_rows(Z * (self._y * self._w)[:, None])  # M_t' y_t / n_t
        else:
            P, gap, corr, D = self._codes_eval(Z, S, mu)
        live = np.ones(self.n_tasks, dtype=bool)  # tasks still improving
        it = 0
        while it < max_iter:
            todo = np.nonzero(live & (gap > tol))[0]
            if todo.size == 0:
                break
            if not squared:
                G = self._grams(Z, D * self._w)
            Gt, st = G[todo], S[todo]
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
                trial = S.copy()
                trial[todo[pending]] = st[pending] + alpha[pending, None] * step[pending]
                Pn, gn, cn, Dn = self._codes_eval(Z, trial, mu)
                Pn, gn = Pn[todo], gn[todo]
                # a decrease that F resolves (Armijo), or a smaller certified gap: since P* <= Po,
                # a point with relative gap gn can lie above Po by at most gn Pn, and at these
                # levels the rounding of P (large terms of X_t L s_t cancelling) can exceed eps P
                accept = pending & ((Pn <= Po + 1e-4 * alpha * pred)
                                    | ((gn < go) & (Pn <= Po + gn * np.abs(Pn) + slack)))
                if accept.any():
                    rows = todo[accept]
                    if corr is None:
                        corr = cn.copy()
                    S[rows], P[rows], gap[rows], corr[rows] = trial[rows], Pn[accept], gn[accept], cn[rows]
                    if D is not None:
                        on = np.isin(self._task, rows)
                        D[on] = Dn[on]
                    # progress: F lower beyond rounding, or the gap at least halved
                    progress |= accept & ((Pn < Po - slack) | (gn <= 0.5 * go))
                pending &= ~accept
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
        Newton decrement; ``max_iter`` caps the Newton steps."""
        S = _check_array(S, "S", ndim=2)
        T, d = self.n_tasks, self.n_features
        if S.shape[1] != T:
            raise ValueError(f"S must have {T} columns, got shape {S.shape}")
        k = S.shape[0]
        lam = _check_scalar(lam, "lam", strict=True)
        tol, max_iter = _check_solver_options(tol, max_iter)
        L = _check_start(L0, (d, k), "L0")
        squared = self.loss == "squared"
        Srows = S[:, self._task].T  # (N, k): the code of each row's task
        SS = np.einsum("it,jt->tij", S, S)
        X, y, w = self._X, self._y, self._w

        last: list = [None, 0.0]  # the last point evaluated and its value

        def value_grad(V: np.ndarray):
            z = np.einsum("nk,nk->n", X @ V, Srows) if V.any() else np.zeros(y.size)
            f = lam * float(np.sum(V * V))
            if squared:
                gz = (z - y) * w
                f += 0.5 * float((z - y) @ gz)
                D = None
            else:
                m = y * z
                f += float(np.logaddexp(0.0, -m) @ w)
                gz = -y * expit(-m) * w
                D = expit(-m) * expit(m)
            G = X.T @ (Srows * gz[:, None]) + 2.0 * lam * V
            last[:] = [V, f]

            def hess() -> np.ndarray:
                H = np.tensordot(SS, self._task_hessians(D), axes=(0, 0))  # (k, k, d, d)
                H = H.transpose(0, 2, 1, 3).reshape(k * d, k * d)  # row (i, a): vec(L) index a + d i
                H[np.diag_indices(k * d)] += 2.0 * lam
                return H

            return f, G, hess

        def factorize(H: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            # LAPACK directly: H is finite by construction, and scipy's checks of every
            # solve cost more than the solve at these sizes
            C, info = sla.lapack.dpotrf(H, lower=False, clean=False)
            if info != 0:
                raise np.linalg.LinAlgError(f"the L-step Hessian is not positive definite (dpotrf info {info})")

            def solve(G: np.ndarray) -> np.ndarray:
                x, info = sla.lapack.dpotrs(C, G.reshape(-1, order="F"), lower=False)
                return x.reshape((d, k), order="F")

            return solve

        L, n_iter, cert = _newton(value_grad, factorize, L, tol, max_iter, None, quadratic=squared)
        return _result(L, last[1] if last[0] is L else value_grad(L)[0], n_iter, cert, tol, None)


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
