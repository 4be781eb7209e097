"""The nonsmooth penalties l2,1 / trace / l1: proximal Newton (or FISTA) and the
duality-gap certificate of :mod:`solvers.baselines`."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import scipy.linalg as sla
import scipy.linalg.lapack as _lapack
from scipy.special import entr, expit

from solvers.baselines._shared import _check_start, _hessian, _prepare, _result, _task_terms
from solvers.losses import _check_scalar, _check_solver_options
from solvers.prox_newton import prox_newton
from solvers.result import SolverResult


__all__ = ["PENALTIES", "penalty_value", "relative_duality_gap", "penalized_objective", "lambda_max", "solve_penalized"]

#: Nonsmooth penalties of :func:`solve_penalized`.
PENALTIES = ("l21", "trace", "l1")


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
