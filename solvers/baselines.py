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
    GO-MTL codes        min_S  sum_t L_t(L s_t) + mu ||S||_1      (L fixed: "l1" on X_t L)
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

The nonsmooth penalties (l2,1, trace, l1) are solved by FISTA with a constant step
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
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import scipy.linalg as sla
from scipy.special import entr, expit

from solvers.losses import _check_array, _check_scalar, _check_solver_options, _check_tasks, get_loss
from solvers.result import SolverResult

__all__ = [
    "PENALTIES",
    "penalty_value",
    "lambda_max",
    "solve_pooled",
    "solve_mean_regularized",
    "solve_penalized",
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


def _prox(V: np.ndarray, tau: float, penalty: str) -> np.ndarray:
    """``argmin_W tau Omega(W) + 1/2 ||W - V||_F^2``."""
    if penalty == "l21":
        norms = np.linalg.norm(V, axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            shrink = np.where(norms > tau, 1.0 - tau / np.where(norms > 0, norms, 1.0), 0.0)
        return V * shrink
    if penalty == "trace":
        U, s, Vt = sla.svd(V, full_matrices=False, lapack_driver="gesvd")
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
    """``min_W sum_t L_t(w_t) + lam Omega(W) + rho ||W||_F^2`` by restarted FISTA.

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
        Maximum FISTA iterations.
    check_every : int, default=10
        Iterations between two evaluations of the gap (and at the end).
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
    step = 1.0 / lip
    hist: list[float] = []
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


def solve_gomtl_codes(
    Xs: Sequence[Any],
    ys: Sequence[Any],
    L: Any,
    mu: float,
    *,
    loss: str = "squared",
    S0: Any = None,
    tol: float = 1e-10,
    max_iter: int = 100_000,
) -> SolverResult:
    """GO-MTL S-step: ``min_S sum_t L_t(L s_t) + mu ||S||_1`` (``L`` d x k fixed).

    T independent l1-regularised problems in the designs ``X_t L``, solved together by
    :func:`solve_penalized` (``penalty="l1"``, ``rho = 0``); ``solution`` is ``S``
    (k, T) and ``certificate`` the relative duality gap.
    """
    Xl, yl, lossname = _prepare(Xs, ys, loss)
    L = _check_array(L, "L", ndim=2)
    if L.shape[0] != Xl[0].shape[1]:
        raise ValueError(f"L must have {Xl[0].shape[1]} rows, got shape {L.shape}")
    mu = _check_scalar(mu, "mu", strict=True)
    Ms = [X @ L for X in Xl]
    return solve_penalized(Ms, yl, mu, penalty="l1", loss=lossname, W0=S0, tol=tol, max_iter=max_iter)


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
    with refinement (squared) or Newton (logistic). ``solution`` is ``L`` (d, k);
    ``certificate`` the relative Newton decrement.
    """
    Xl, yl, lossname = _prepare(Xs, ys, loss)
    S = _check_array(S, "S", ndim=2)
    T, d = len(Xl), Xl[0].shape[1]
    if S.shape[1] != T:
        raise ValueError(f"S must have {T} columns, got shape {S.shape}")
    k = S.shape[0]
    lam = _check_scalar(lam, "lam", strict=True)
    tol, max_iter = _check_solver_options(tol, max_iter)
    L = _check_start(L0, (d, k), "L0")

    def value_grad(V: np.ndarray):
        f = lam * float(np.sum(V * V))
        G = 2.0 * lam * V
        Ds = []
        for t, (X, y) in enumerate(zip(Xl, yl)):
            s = S[:, t]
            ft, gt, D = _task_terms(X, y, V @ s, lossname)
            f += ft
            G += np.outer(gt, s)
            Ds.append(D)

        def hess() -> np.ndarray:
            H = 2.0 * lam * np.eye(d * k)
            for t, (X, D) in enumerate(zip(Xl, Ds)):
                H += np.kron(np.outer(S[:, t], S[:, t]), _hessian(X, D))
            return H

        return f, G, hess

    def factorize(H: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        solve = _cholesky(H)
        return lambda G: solve(G.reshape(-1, order="F")).reshape((d, k), order="F")

    L, n_iter, cert = _newton(value_grad, factorize, L, tol, max_iter, None, quadratic=lossname == "squared")
    return _result(L, value_grad(L)[0], n_iter, cert, tol, None)
