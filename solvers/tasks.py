"""Fast solver of the AMTL W-step (``B`` fixed), numpy and scipy only.

The problem (``docs/objective.md``, section "W-step")::

    min_W  sum_t a_t * L_t(w_t) + lam * ||W (I - B)||_F^2 + ridge * ||W||_F^2

``W`` is d x T with column ``w_t``; ``L_t`` is the mean squared or logistic loss
of task t. Internally the columns are stored as the rows of ``V = W'`` (T x d)
so that every product with the (usually sparse) ``B`` is a sparse-times-dense
product: ``(W (I - B))' = V - B' V`` and ``(W M)' = M V`` with
``M = (I - B)(I - B)'``.

Algorithms
----------
squared
    The optimality condition is the linear system
    ``(blockdiag(a_t/n_t X_t'X_t) + 2 lam (M kron I_d) + 2 ridge I) vec(W) =
    vec(a_t/n_t X_t'y_t)``. For ``d * T <= DENSE_MAX`` it is solved by a dense
    Cholesky factorisation; otherwise by preconditioned conjugate gradients with
    matrix-free products and a block-Jacobi preconditioner (per-task inverses of
    ``a_t/n_t X_t'X_t + (2 lam M_tt + 2 ridge) I``); if that stalls (strong,
    ill-conditioned coupling) PCG continues with a coupling preconditioner
    ``(2 lam M + diag(sig_t)) kron I_d`` factorised once by a sparse LU of a
    T x T matrix (see :class:`_TwoLevelPCG`). Neither preconditioner is reliable when
    ``I - B`` is nearly singular and the tasks' Gram matrices share a null space (one-hot
    groups collinear with a bias column): the system's condition number then reaches
    1e10 and PCG stalls. So for ``d * T <= DIRECT_MAX`` PCG gets
    :data:`PCG_BUDGET` iterations and the system is then solved directly (dense
    Cholesky with iterative refinement, see :func:`_direct`). If the system is
    singular (``ridge = 0``, ``I - B`` singular and a direction no task's data sees),
    the **minimum-norm minimiser** is returned. Only the per-task Gram matrices
    ``X_t'X_t`` are used; see :func:`precompute_grams` to cache them.
logistic
    Newton's method with inexact (forcing-term) PCG inner solves on the exact
    Hessian ``blockdiag(a_t/n_t X_t' D_t X_t) + 2 lam (M kron I_d) + 2 ridge I``
    (same preconditioners; a Newton direction PCG cannot reach within its budget is
    computed by the dense Cholesky solve when ``d * T <= DIRECT_MAX``) and an Armijo
    backtracking line search.

Certificate
-----------
Both stop on the relative gradient norm::

    ||grad F(W)||_F / ||grad F(0)||_F <= tol

(``grad F(0)`` does not depend on the starting point, so a warm start at the
solution is accepted with zero iterations; when it is 0, ``W = 0`` is the minimiser
and the denominator is taken as 1). The ratio does not change when the targets, or
the features, are scaled by any power of ten: with ``max(1, ||grad F(0)||)`` in the
denominator, targets of size 1e-100 were "solved" by ``W = 0`` with certificate
6e-100. ``n_iter`` counts PCG iterations
(squared; a dense solve counts as one) or Newton iterations (logistic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import scipy.linalg as sla
from scipy.special import expit

from solvers.losses import _check_solver_options
from solvers.result import SolverResult, _Stop
from solvers.wstep.coupling import TaskGrams, _Coupling, precompute_grams
from solvers.wstep.linalg import _backtrack, _bmv, _dot, _nrm, _TwoLevelPCG
from solvers.wstep.objective import _setup, _start, _unit_grams, _WStep, tasks_gradient, tasks_objective


__all__ = [
    "TaskGrams",
    "precompute_grams",
    "solve_tasks",
    "tasks_objective",
    "tasks_gradient",
    "DENSE_MAX",
    "DIRECT_MAX",
    "PCG_BUDGET",
]

#: Largest ``d * T`` for which the squared W-step starts with a dense Cholesky solve.
DENSE_MAX = 300

#: Largest ``d * T`` for which a W-step falls back to a dense Cholesky solve when
#: PCG does not reach its tolerance within :data:`PCG_BUDGET` iterations
#: (``H`` then takes ``8 (d T)^2`` bytes: 288 MB at ``d T = 6000``).
DIRECT_MAX = 6000

#: PCG iterations tried before the dense fallback (when ``d * T <= DIRECT_MAX``).
PCG_BUDGET = 300

_MAX_REFINE = 30



def solve_tasks(
    Xs: Sequence[Any],
    ys: Sequence[Any],
    B: Any,
    lam: float,
    *,
    loss: str = "squared",
    weights: Any = None,
    ridge: float = 0.0,
    W0: Any = None,
    tol: float = 1e-10,
    max_iter: int = 1000,
    record_history: bool = False,
    grams: TaskGrams | None = None,
) -> SolverResult:
    """Solve the W-step of AMTL with ``B`` fixed.

    ::

        min_W  sum_t a_t * L_t(w_t) + lam * ||W (I - B)||_F^2 + ridge * ||W||_F^2

    with ``L_t(w) = 1/(2 n_t) ||y_t - X_t w||^2`` (squared) or
    ``L_t(w) = mean(log(1 + exp(-y_t * X_t w)))`` (logistic, labels in {-1, +1}).

    Parameters
    ----------
    Xs, ys : sequence of numpy.ndarray
        T tasks, ``Xs[t]`` (n_t, d) with ``n_t >= 1``, ``ys[t]`` (n_t,).
    B : numpy.ndarray or scipy.sparse matrix
        (T, T), ``B >= 0`` with zero diagonal; sparse input is used as is and a
        mostly-zero dense input is converted to CSR.
    lam : float
        ``lam > 0``.
    loss : {"squared", "logistic"}
        Per-task mean loss.
    weights : numpy.ndarray, optional
        (T,) loss weights ``a_t >= 0`` (``None``: all ones).
    ridge : float
        ``ridge >= 0``. With ``ridge = 0`` and separable data the logistic
        problem may have no minimiser; ``max_iter`` then stops the run with
        ``converged=False``.
    W0 : numpy.ndarray, optional
        (d, T) warm start (default zeros).
    tol : float
        Tolerance on the certificate ``||grad F(W)||_F / ||grad F(0)||_F``.
    max_iter : int
        Squared: maximum PCG iterations (a dense Cholesky solve counts as one).
        Logistic: maximum Newton iterations.
    record_history : bool
        Record the certificate after every iteration.
    grams : TaskGrams, optional
        Precomputed Gram matrices from :func:`precompute_grams` (squared loss only;
        must come from the same ``Xs``, ``ys``).

    Returns
    -------
    SolverResult
        ``solution`` is ``W`` (d, T); ``objective`` is ``F(W)`` above;
        ``certificate`` the relative gradient norm at exit.

    Raises
    ------
    ValueError
        On invalid input (the message names the argument).
    """
    prob = _setup(Xs, ys, B, lam, loss, weights, ridge)
    tol_f, max_it = _check_solver_options(tol, max_iter)
    V = _start(prob, W0)
    stop = _Stop(tol_f, max_it, record_history)
    if prob.lossf.name == "squared":
        grams, unit, sigma = _unit_grams(grams, prob.Xs, prob.ys)
        V, n_iter, cert, hist = _solve_squared(unit, prob, V / sigma, stop)
        V = V * sigma
    elif prob.lossf.name == "logistic":
        V, n_iter, cert, hist = _solve_logistic(prob, V, stop)
    else:  # pragma: no cover - only the two named losses are dispatched
        raise ValueError(f"loss {prob.lossf.name!r} is not supported by solve_tasks")
    return prob.result(V, n_iter, cert, tol_f, hist)


def _result(prob: _WStep, V: np.ndarray, n_iter: int, cert: float, tol: float, hist: list[float]) -> SolverResult:
    """The W-step's :class:`SolverResult` at ``V`` (see :meth:`_WStep.result`)."""
    return prob.result(V, n_iter, cert, tol, hist)


@dataclass(frozen=True)
class _NormalEquations:
    """``H vec(V) = rhs`` of a W-step, ``H = 2 lam kron(M, I_d) + blockdiag(blocks) +
    2 ridge I`` (task-major), with its product ``matvec`` and the certificate's
    reference norm ``ref`` (certificate = ``||rhs - H V|| / ref``)."""

    blocks: np.ndarray
    cp: _Coupling
    lam: float
    ridge: float
    rhs: np.ndarray
    matvec: Callable[[np.ndarray], np.ndarray]
    ref: float


def _direct(
    eq: _NormalEquations, tol: float, V: np.ndarray, resid: np.ndarray, cert: float, hist: list[float] | None
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Dense direct solve of the squared W-step's normal equations ``H vec(V) = rhs``.

    ``H = 2 lam kron(M, I_d) + blockdiag(blocks) + 2 ridge I`` (task-major; the
    blocks are ``s_t G_t`` for the squared loss, the loss Hessians for the logistic), written
    into its (T, d, T, d) view and factorised by Cholesky. The solution is improved by
    iterative refinement on the true residual (at most ``_MAX_REFINE`` steps) until the
    certificate reaches ``tol``.

    If ``H`` is singular (``ridge = 0``, a direction no task's data sees on which the
    coupling vanishes: ``I - B`` singular), Cholesky fails or leaves a pivot at
    rounding level (``<= n eps max diag H``); then ``H + delta I``
    (``delta = 1e-10 max diag H``) is factorised and refinement is run from zero
    (iterated Tikhonov regularisation). The normal equations of a squared loss are
    consistent, each correction lies in the range of ``H`` and the iteration starts at
    zero, so it converges to the **minimum-norm minimiser**.

    Returns ``(V, resid, cert, solves)``; a solve that does not lower the certificate
    is not kept.
    """
    blocks, cp, lam, ridge, rhs, matvec, ref = eq.blocks, eq.cp, eq.lam, eq.ridge, eq.rhs, eq.matvec, eq.ref
    T, d = V.shape
    H4 = np.zeros((T, d, T, d))
    H4[:, np.arange(d), :, np.arange(d)] = (2.0 * lam) * cp.dense_m()
    ar = np.arange(T)
    H4[ar, :, ar, :] += blocks
    H = H4.reshape(T * d, T * d)
    H[np.diag_indices_from(H)] += 2.0 * ridge
    hmax = max(float(np.max(np.diag(H))), np.finfo(float).tiny)
    try:
        fac = sla.cho_factor(H, lower=False, check_finite=False)
        # rank-revealing test: a pivot at rounding level means H is singular (rounding
        # may let Cholesky finish anyway, with an arbitrary null-space component)
        if np.min(np.diag(fac[0])) ** 2 <= H.shape[0] * np.finfo(float).eps * hmax:
            raise np.linalg.LinAlgError("singular")
        x, r, c = V, resid, cert
    except (np.linalg.LinAlgError, sla.LinAlgError):
        H[np.diag_indices_from(H)] += 1e-10 * hmax  # cho_factor left H intact
        try:
            fac = sla.cho_factor(H, lower=False, check_finite=False)
        except (np.linalg.LinAlgError, sla.LinAlgError):
            return V, resid, cert, 0
        x, r = np.zeros_like(V), rhs.copy()
        c = _nrm(r) / ref
    solves = 0
    for _ in range(_MAX_REFINE):
        xn = x + sla.cho_solve(fac, r.ravel(), check_finite=False).reshape(T, d)
        rn = rhs - matvec(xn)
        cn = _nrm(rn) / ref
        solves += 1
        if not np.isfinite(cn) or cn >= c and solves > 1:
            break
        x, r, c = xn, rn, cn
        if hist is not None:
            hist.append(c)
        if c <= 0.5 * tol:
            break
    if c < cert:
        return x, r, c, solves
    return V, resid, cert, solves


def _solve_squared(
    gr: TaskGrams, prob: _WStep, V: np.ndarray, stop: _Stop
) -> tuple[np.ndarray, int, float, list[float]]:
    cp, lam, a, ridge = prob.cp, prob.lam, prob.a, prob.ridge
    tol, max_iter, record = stop.tol, stop.max_iter, stop.record
    T, d = V.shape
    s = a / gr.n
    G = gr.gram
    rhs = s[:, None] * gr.xty
    ref = _nrm(rhs) or 1.0

    def matvec(P: np.ndarray) -> np.ndarray:
        return s[:, None] * _bmv(G, P) + 2.0 * lam * cp.m(P) + (2.0 * ridge) * P

    hist: list[float] = []
    resid = rhs - matvec(V)  # = -gradient
    cert = _nrm(resid) / ref
    n_iter = 0
    if cert <= tol or max_iter == 0:
        return V, n_iter, cert, hist

    blocks = s[:, None, None] * G
    eq = _NormalEquations(blocks, cp, lam, ridge, rhs, matvec, ref)
    hist_or_none = hist if record else None
    dense_ok = d * T <= DIRECT_MAX
    if d * T <= DENSE_MAX:
        V, resid, cert, it = _direct(eq, tol, V, resid, cert, hist_or_none)
        n_iter += it
        if cert <= tol:
            return V, n_iter, cert, hist

    sig = s * np.trace(G, axis1=1, axis2=2) / d + 2.0 * ridge
    solver = _TwoLevelPCG(matvec, blocks, cp, lam, ridge, sig)
    # PCG with restarts on the true residual (the recursive one drifts); where a direct
    # solve is affordable, PCG gets a budget of PCG_BUDGET iterations before it.
    budget = min(max_iter, PCG_BUDGET) if dense_ok else max_iter
    stall = 0
    while cert > tol and n_iter < budget:
        Vn, it = solver.solve(rhs, V, resid, 0.5 * tol * ref, budget - n_iter)
        n_iter += it
        rn = rhs - matvec(Vn)
        cn = _nrm(rn) / ref
        if record:
            hist.append(cn)
        if cn < cert:
            improved = cn < 0.5 * cert
            V, resid, cert = Vn, rn, cn
            stall = 0 if improved else stall + 1
        else:
            stall += 1
        if it == 0 or stall >= 3:
            break
    if cert > tol and dense_ok and d * T > DENSE_MAX and n_iter < max_iter:
        V, resid, cert, it = _direct(eq, tol, V, resid, cert, hist_or_none)
        n_iter += it
    return V, n_iter, cert, hist


def _solve_logistic(prob: _WStep, V: np.ndarray, stop: _Stop) -> tuple[np.ndarray, int, float, list[float]]:
    Xs, ys, cp, lam, a, ridge = prob.Xs, prob.ys, prob.cp, prob.lam, prob.a, prob.ridge
    tol, max_iter, record = stop.tol, stop.max_iter, stop.record
    T, d = V.shape
    n = np.array([X.shape[0] for X in Xs], dtype=np.float64)
    s = a / n
    # grad F(0) = -a_t/(2 n_t) X_t' y_t
    g0 = np.stack([Xs[t].T @ ys[t] for t in range(T)]) * (-0.5 * s[:, None])
    ref = _nrm(g0) or 1.0

    def fg(Vc: np.ndarray, need_grad: bool = True) -> tuple[float, np.ndarray | None]:
        val = 0.0
        gl = np.empty_like(Vc) if need_grad else None
        for t in range(T):
            m = ys[t] * (Xs[t] @ Vc[t])
            val += a[t] * float(np.sum(np.logaddexp(0.0, -m))) / n[t]
            if need_grad:
                gl[t] = -(Xs[t].T @ (ys[t] * expit(-m))) * s[t]
        U = cp.ibt(Vc)
        val += lam * _dot(U, U) + ridge * _dot(Vc, Vc)
        if not need_grad:
            return val, None
        g = gl + 2.0 * lam * cp.ib(U) + (2.0 * ridge) * Vc
        return val, g

    f, g = fg(V)
    gnorm = _nrm(g)
    cert = gnorm / ref
    hist: list[float] = []
    n_iter = 0
    cg_cap = max(50, min(d * T, 2000))
    while cert > tol and n_iter < max_iter:
        Hb = np.empty((T, d, d))
        for t in range(T):
            m = ys[t] * (Xs[t] @ V[t])
            D = expit(m) * expit(-m)
            Hb[t] = (Xs[t].T @ (D[:, None] * Xs[t])) * s[t]
        def matvec(P: np.ndarray, Hb: np.ndarray = Hb) -> np.ndarray:
            return _bmv(Hb, P) + 2.0 * lam * cp.m(P) + (2.0 * ridge) * P

        sig = np.trace(Hb, axis1=1, axis2=2) / d + 2.0 * ridge
        solver = _TwoLevelPCG(matvec, Hb, cp, lam, ridge, sig)
        eta = min(0.5, np.sqrt(cert))
        p, _ = solver.solve(-g, np.zeros_like(V), -g, eta * gnorm, cg_cap)
        if d * T <= DIRECT_MAX:
            rp = -g - matvec(p)
            miss = _nrm(rp)
            if miss > eta * gnorm:  # PCG missed its forcing term: Newton direction by Cholesky
                eq = _NormalEquations(Hb, cp, lam, ridge, -g, matvec, gnorm)
                p = _direct(eq, eta, p, rp, miss / gnorm, None)[0]
        slope = _dot(g, p)
        if not slope < 0:  # not a descent direction (numerical trouble): use -g
            p = -g
            slope = -gnorm * gnorm
        accepted, Vn, fn, gn = _backtrack(fg, V, p, f, slope, gnorm)
        n_iter += 1
        if not accepted:
            if record:
                hist.append(cert)
            break
        V, f, g = Vn, fn, gn
        gnorm = _nrm(g)
        cert = gnorm / ref
        if record:
            hist.append(cert)
    return V, n_iter, cert, hist
