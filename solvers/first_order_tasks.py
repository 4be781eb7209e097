r"""First-order solver of the AMTL W-step (``B`` fixed), numpy and scipy only.

The problem is the one of :mod:`solvers.tasks` (``docs/objective.md``, "W-step")::

    min_W  F(W) = sum_t a_t * L_t(w_t) + lam * ||W (I - B)||_F^2 + ridge * ||W||_F^2

``W`` is d x T with column ``w_t``; ``L_t(w) = 1/(2 n_t) ||y_t - X_t w||^2`` (squared)
or ``L_t(w) = mean(log(1 + exp(-y_t * X_t w)))`` (logistic, labels in {-1, +1}).
Internally the columns are the rows of ``V = W'`` (T x d), as in :mod:`solvers.tasks`.

Algorithms
----------
squared
    Accelerated gradient (FISTA with adaptive gradient restart, O'Donoghue and Candes
    2015) in the block-diagonal metric ``P = blockdiag(a_t/n_t X_t'X_t + c_t I)``: each
    step solves one small ridge problem per task, all at once, with
    ``P_t^{-1} = E_t diag(1 / (a_t/n_t gamma_t + c_t)) E_t'`` from the eigendecomposition
    ``X_t'X_t = E_t diag(gamma_t) E_t'``, computed once per data set and cached across
    calls (pass the same :class:`~solvers.tasks.TaskGrams` as ``grams=``). The shifts
    are ``c_t = 2 (lam M_tt + ridge)`` (block Jacobi, ``M = (I - B)(I - B)'``) when
    ``ridge > 0``; when ``ridge = 0`` they are all ``2 (lam max_t M_tt)`` (see
    "Singular problems" below). The step is ``1 / L`` with the rigorous bound
    ``L = max(1, lambda_max(C^{-1/2} (2 lam M + 2 ridge I) C^{-1/2}))`` on the largest
    eigenvalue of ``P^{-1} H`` (``C = diag(c_t)``; a T x T eigenvalue problem), so no
    line search is needed. Block Jacobi misses the slow modes of a nearly singular
    ``I - B`` (the release data's W-steps have ``lambda_min(M)`` near 1e-5, and
    ``lambda_max / lambda_min`` of ``P^{-1} H`` is 30-40), so for ``T <=``
    :data:`COARSE_MAX_T` the iteration is deflated by a coarse space, the
    ``Z kron R^d`` of the eigenvectors ``Z`` of ``M`` with the smallest eigenvalues (at
    most :data:`COARSE_MAX_K` below 1, and all of ``M``'s null space; restriction
    ``R = Z' kron I``, coarse Hessian ``C = R H R'``, ``Pi = R' C^+ R``). The run first
    minimises exactly over the coarse space, which makes ``R g = 0``; every step is then
    ``(I - Pi H) P^{-1} g / L``, which keeps ``R g = 0`` (``R (I - H Pi) = 0``). On
    ``{R g = 0}`` this is the step of the symmetric balancing preconditioner
    ``(I - Pi H) P^{-1} (I - H Pi) + Pi`` (Mandel 1993; Nabben and Vuik 2006), and the
    eigenvalues of ``(I - Pi H) P^{-1} H`` there are those of
    ``(I - S) H^{1/2} P^{-1} H^{1/2} (I - S)`` with ``S`` the orthogonal projection
    ``H^{1/2} Pi H^{1/2}``: at most ``lambda_max(P^{-1} H)``, so the same ``L`` holds,
    while the smallest rises (the slow modes are gone; ``tests/test_first_order_tasks.py``
    checks both). Against the additive two-level preconditioner ``P^{-1} + Pi`` this
    solver used before (whose ``L`` grows by 1), the iterations per W-step on the
    release data fell from 23-42 to 17-28 from the previous alternation's
    ``W`` (``examples/wstep_first_order.py``). The coarse solve is repeated at every
    refresh, which removes the rounding drift of ``R g``. The gradient is carried along
    by linearity (one product with the Hessian per iteration) and recomputed from scratch
    every :data:`REFRESH` iterations and before the run is declared converged.
logistic
    L-BFGS (memory :data:`LBFGS_MEMORY`) whose initial inverse Hessian is ``gamma P^{-1}``
    with ``P = blockdiag(a_t/(4 n_t) X_t'X_t + 2 (lam M_tt + ridge) I)`` (the loss
    Hessian's upper bound and the coupling's diagonal) plus the additive coarse
    correction ``Pi`` (for that Hessian bound: L-BFGS needs a symmetric ``H0``), and
    ``gamma`` the usual ``s'y / y'P^{-1}y`` scaling; an Armijo backtracking line search
    (a step that changes ``F`` by less than its rounding is accepted when it lowers the
    gradient, as in :mod:`solvers.tasks`).

Certificate
-----------
The one of :func:`solvers.tasks.solve_tasks`, computed by the same code::

    ||grad F(W)||_F / ||grad F(0)||_F <= tol

(1 in the denominator when ``grad F(0) = 0``). The squared problem is solved in units
where ``max |y| = 1``, as :func:`solvers.tasks.solve_tasks` does (targets of 1e-160 or
1e150 neither underflow nor overflow). ``n_iter`` counts gradient steps (squared) or
L-BFGS iterations (logistic).

Singular problems
-----------------
With ``ridge = 0`` the squared W-step is singular when ``I - B`` is singular and a
feature direction is seen by no task (one-hot groups collinear with a bias column).
The shifts are then all equal, so every null vector ``v`` of the Hessian is an
eigenvector of ``P``, and the coarse space contains the null space of ``M``: each step
is orthogonal to the null space, and the iterates keep the null-space component of the
start. From ``W0 = None`` (zeros) the
run therefore converges to the **minimum-norm minimiser**, the choice
:func:`solvers.tasks.solve_tasks` documents; from a warm start ``W0`` it converges to
the minimiser nearest ``W0``. Convergence on a singular problem is governed by the
smallest *nonzero* eigenvalue; a problem whose conditioning defeats the iteration stops
at ``max_iter`` with ``converged=False`` (the backend then warns). Logistic W-steps with
``ridge = 0`` on separable data have no minimiser; the run stops at ``max_iter``
unconverged, like :func:`solvers.tasks.solve_tasks`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from solvers.losses import _check_solver_options, _immutable
from solvers.result import SolverResult, _Stop
from solvers.wstep.coupling import TaskGrams
from solvers.wstep.linalg import _backtrack, _bmv, _dot, _nrm
from solvers.wstep.metric import COARSE_MAX_K, _coarse_space, _coupling_matrix, _eig, _step_bound
from solvers.wstep.objective import _setup, _start, _unit_grams, _WStep


__all__ = ["solve_tasks_first_order", "REFRESH", "STALL", "COARSE_MAX_T", "COARSE_MAX_K", "LBFGS_MEMORY"]

#: The squared solver recomputes its gradient from scratch every ``REFRESH`` iterations.
REFRESH = 100

#: The squared solver stops (unconverged) after ``STALL`` refreshes in a row that did not
#: lower the best certificate by 0.1%: the rounding floor.
STALL = 10

#: Largest T for which the squared solver adds a coarse correction (one dense T x T
#: eigendecomposition per call), and the most eigenvectors of M it uses (plus M's null space).
COARSE_MAX_T = 500

#: Curvature pairs kept by the logistic L-BFGS.
LBFGS_MEMORY = 10

_LOGISTIC_CACHE: list[tuple[Any, np.ndarray, np.ndarray, np.ndarray]] = []


# ----------------------------------------------------------------------------
# Squared loss: accelerated gradient in the block-diagonal metric
# ----------------------------------------------------------------------------


def _solve_squared(
    gr: TaskGrams, prob: _WStep, V: np.ndarray, stop: _Stop, eig: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, int, float, list[float]]:
    cp, lam, a, ridge = prob.cp, prob.lam, prob.a, prob.ridge
    tol, max_iter, record = stop.tol, stop.max_iter, stop.record
    T, d = V.shape
    s = a / gr.n
    sG = s[:, None, None] * gr.gram
    rhs = s[:, None] * gr.xty
    ref = _nrm(rhs) or 1.0
    K = _coupling_matrix(cp, lam, ridge)

    def hmul(P: np.ndarray) -> np.ndarray:
        return _bmv(sG, P) + K @ P

    hist: list[float] = []
    g = hmul(V) - rhs
    cert = _nrm(g) / ref
    if cert <= tol or max_iter == 0:
        return V, 0, cert, hist

    if ridge > 0:
        c = 2.0 * lam * cp.mdiag + 2.0 * ridge
    else:  # equal shifts: steps orthogonal to the null space (minimum-norm limit)
        c = np.full(T, 2.0 * lam * float(np.max(cp.mdiag)))
    gam, E = eig
    Pinv = np.matmul(E / (s[:, None] * gam + c[:, None])[:, None, :], np.swapaxes(E, 1, 2))
    coarse = _coarse_space(cp, K, sG) if T <= COARSE_MAX_T else None
    # one batched product gives both the step P^{-1} g and its loss part s G P^{-1} g,
    # scaled by the step 1 / L (deflation does not raise L: module docstring)
    inv_L = 1.0 / _step_bound(K, c)
    Q = inv_L * np.concatenate([Pinv, np.matmul(sG, Pinv)], axis=1)
    if coarse is not None:
        Zc, Cpinv, HZ = coarse
        k = Zc.shape[1]
        Zt = np.ascontiguousarray(Zc.T)

        def deflate(X: np.ndarray, HX: np.ndarray, U: np.ndarray) -> None:
            """``X -= R' C^+ R U`` and ``HX -= H R' C^+ R U``, in place (``U`` may be ``HX``)."""
            cc = Cpinv @ (Zt @ U.reshape(T, d)).ravel()
            X -= (Zc @ cc.reshape(k, d)).ravel()
            HX -= HZ @ cc

    # flat (T d,) vectors; the batched products see them as (T, d, 1)
    x, gx = V.ravel().copy(), g.ravel().copy()
    if coarse is not None:  # exact minimisation over the coarse space: R g = 0 from here on
        deflate(x, gx, gx)
        gx = (hmul(x.reshape(T, d)) - rhs).ravel()
        cert = _nrm(gx) / ref
    y, gy = x.copy(), gx.copy()
    Hstep = np.empty(T * d)
    t = 1.0
    n_iter = 0
    best = (cert, x)
    stall = 0
    since = 0
    while n_iter < max_iter and cert > tol:
        PQ = np.matmul(Q, gy.reshape(T, d, 1)).reshape(T, 2 * d)
        step = PQ[:, :d].ravel()  # P^{-1} g / L
        np.add(PQ[:, d:], K @ PQ[:, :d], out=Hstep.reshape(T, d))  # H P^{-1} g / L
        if coarse is not None:  # deflated step (I - Pi H) P^{-1} g / L keeps R g = 0
            deflate(step, Hstep, Hstep)
        xn = y - step
        gxn = gy - Hstep
        n_iter += 1
        since += 1
        dx = xn - x
        if _dot(gy, dx) > 0:  # the momentum points uphill: restart
            t = 1.0
            y, gy = xn, gxn
        else:
            tn = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            beta = (t - 1.0) / tn
            t = tn
            y = xn + beta * dx
            gy = (1.0 + beta) * gxn - beta * gx
        x, gx = xn, gxn
        cert = _nrm(gx) / ref
        if cert <= tol or since >= REFRESH:
            since = 0
            gx = (hmul(x.reshape(T, d)) - rhs).ravel()  # the recursion drifts: recompute
            cert = _nrm(gx) / ref
            if not np.isfinite(cert):
                break
            if cert < (1.0 - 1e-3) * best[0]:
                stall = 0
            else:
                stall += 1
            if cert < best[0]:
                best = (cert, x)
            if cert <= tol or stall >= STALL:  # converged, or at the rounding floor
                break
            if coarse is not None:  # rounding drift out of R g = 0: project it away
                x = x.copy()  # best may hold x
                deflate(x, gx, gx)
            # restart from the refreshed point
            y, gy, t = x, gx, 1.0
        if record:
            hist.append(cert)
    if since > 0:  # stopped by max_iter between two refreshes: certify the last iterate
        cert = _nrm(hmul(x.reshape(T, d)) - rhs) / ref
        if cert < best[0]:
            best = (cert, x)
    cert, x = best
    return x.reshape(T, d), n_iter, cert, hist


# ----------------------------------------------------------------------------
# Logistic loss: preconditioned L-BFGS
# ----------------------------------------------------------------------------


def _solve_logistic(
    prob: _WStep, V: np.ndarray, stop: _Stop, key: Any = None
) -> tuple[np.ndarray, int, float, list[float]]:
    Xs, ys, cp, lam, a, ridge = prob.Xs, prob.ys, prob.cp, prob.lam, prob.a, prob.ridge
    tol, max_iter, record = stop.tol, stop.max_iter, stop.record
    from scipy.special import expit

    T, d = V.shape
    n = np.array([X.shape[0] for X in Xs], dtype=np.float64)
    s = a / n
    g0 = np.stack([Xs[t].T @ ys[t] for t in range(T)]) * (-0.5 * s[:, None])
    ref = _nrm(g0) or 1.0

    def fg(Vc: np.ndarray) -> tuple[float, np.ndarray]:
        val = 0.0
        gl = np.empty_like(Vc)
        for t in range(T):
            m = ys[t] * (Xs[t] @ Vc[t])
            val += a[t] * float(np.sum(np.logaddexp(0.0, -m))) / n[t]
            gl[t] = -(Xs[t].T @ (ys[t] * expit(-m))) * s[t]
        U = cp.ibt(Vc)
        val += lam * _dot(U, U) + ridge * _dot(Vc, Vc)
        return val, gl + 2.0 * lam * cp.ib(U) + (2.0 * ridge) * Vc

    if _LOGISTIC_CACHE and _LOGISTIC_CACHE[0][0] is key:
        G, gam, E = _LOGISTIC_CACHE[0][1:]
    else:
        G = np.stack([X.T @ X for X in Xs])
        gam, E = np.linalg.eigh(G)
        gam = np.maximum(gam, 0.0)
        if key is not None:
            _LOGISTIC_CACHE[:] = [(key, G, gam, E)]
    c = 2.0 * lam * cp.mdiag + 2.0 * ridge
    Pinv = np.matmul(E / (0.25 * s[:, None] * gam + c[:, None])[:, None, :], np.swapaxes(E, 1, 2))
    K = _coupling_matrix(cp, lam, ridge)
    coarse = _coarse_space(cp, K, (0.25 * s)[:, None, None] * G) if T <= COARSE_MAX_T else None

    def h0(R: np.ndarray) -> np.ndarray:
        """``P^{-1} R`` plus the coarse correction."""
        out = _bmv(Pinv, R)
        if coarse is not None:
            Zc, Cpinv, _ = coarse
            out += Zc @ (Cpinv @ (Zc.T @ R).ravel()).reshape(Zc.shape[1], d)
        return out

    f, g = fg(V)
    gnorm = _nrm(g)
    cert = gnorm / ref
    hist: list[float] = []
    S: list[np.ndarray] = []
    Y: list[np.ndarray] = []
    rho: list[float] = []
    gamma = 1.0
    n_iter = 0
    while cert > tol and n_iter < max_iter:
        # two-loop recursion with H0 = gamma P^{-1}
        q = g.copy()
        alphas = []
        for sk, yk, rk in zip(reversed(S), reversed(Y), reversed(rho)):
            al = rk * _dot(sk, q)
            alphas.append(al)
            q -= al * yk
        r = gamma * h0(q)
        for sk, yk, rk, al in zip(S, Y, rho, reversed(alphas)):
            be = rk * _dot(yk, r)
            r += (al - be) * sk
        p = -r
        slope = _dot(g, p)
        if not slope < 0:  # not a descent direction: forget the pairs
            S.clear(), Y.clear(), rho.clear()
            p = -h0(g)
            slope = _dot(g, p)
        accepted, Vn, fn, gn = _backtrack(fg, V, p, f, slope, gnorm)
        n_iter += 1
        if not accepted:
            if S:  # retry once along the preconditioned gradient
                S.clear(), Y.clear(), rho.clear()
                continue
            if record:
                hist.append(cert)
            break
        sk, yk = Vn - V, gn - g
        sy = _dot(sk, yk)
        if sy > 1e-16 * _nrm(sk) * _nrm(yk):
            S.append(sk)
            Y.append(yk)
            rho.append(1.0 / sy)
            if len(S) > LBFGS_MEMORY:
                S.pop(0), Y.pop(0), rho.pop(0)
            gamma = sy / _dot(yk, h0(yk))
        V, f, g = Vn, fn, gn
        gnorm = _nrm(g)
        cert = gnorm / ref
        if record:
            hist.append(cert)
    return V, n_iter, cert, hist


# ----------------------------------------------------------------------------
# Solver
# ----------------------------------------------------------------------------


def solve_tasks_first_order(
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
    max_iter: int | None = None,
    record_history: bool = False,
    grams: TaskGrams | None = None,
) -> SolverResult:
    """Solve the W-step of AMTL with ``B`` fixed by a first-order method.

    ::

        min_W  sum_t a_t * L_t(w_t) + lam * ||W (I - B)||_F^2 + ridge * ||W||_F^2

    with ``L_t(w) = 1/(2 n_t) ||y_t - X_t w||^2`` (squared) or
    ``L_t(w) = mean(log(1 + exp(-y_t * X_t w)))`` (logistic, labels in {-1, +1}).
    Accelerated gradient with restart in a per-task metric (squared) or preconditioned
    L-BFGS (logistic); see the module docstring. Same arguments, certificate and result
    as :func:`solvers.tasks.solve_tasks`.

    Parameters
    ----------
    Xs, ys : sequence of numpy.ndarray
        T tasks, ``Xs[t]`` (n_t, d) with ``n_t >= 1``, ``ys[t]`` (n_t,).
    B : numpy.ndarray or scipy.sparse matrix
        (T, T), ``B >= 0`` with zero diagonal.
    lam : float
        ``lam > 0``.
    loss : {"squared", "logistic"}
        Per-task mean loss.
    weights : numpy.ndarray, optional
        (T,) loss weights ``a_t >= 0`` (``None``: all ones).
    ridge : float
        ``ridge >= 0``.
    W0 : numpy.ndarray, optional
        (d, T) warm start (default zeros). On a singular squared problem the result is
        the minimiser nearest ``W0`` (the minimum-norm one from zeros).
    tol : float
        Tolerance on the certificate ``||grad F(W)||_F / ||grad F(0)||_F``.
    max_iter : int, optional
        Squared: maximum gradient steps (default 20000). Logistic: maximum L-BFGS
        iterations (default 2000).
    record_history : bool
        Record the certificate after every iteration.
    grams : TaskGrams, optional
        Precomputed Gram matrices from :func:`solvers.tasks.precompute_grams` (squared
        loss only; must come from the same ``Xs``, ``ys``). Their eigendecompositions
        are cached for the next call with the same object.

    Returns
    -------
    SolverResult
        ``solution`` is ``W`` (d, T); ``objective`` is ``F(W)`` above; ``certificate``
        the relative gradient norm at exit; ``converged`` is ``certificate <= tol``.

    Raises
    ------
    ValueError
        On invalid input (the message names the argument).
    """
    prob = _setup(Xs, ys, B, lam, loss, weights, ridge)
    if max_iter is None:
        max_iter = 20000 if prob.lossf.name == "squared" else 2000
    tol_f, max_it = _check_solver_options(tol, max_iter)
    V = _start(prob, W0)
    stop = _Stop(tol_f, max_it, record_history)
    if prob.lossf.name == "squared":
        grams, unit, sigma = _unit_grams(grams, prob.Xs, prob.ys)
        V, n_iter, cert, hist = _solve_squared(unit, prob, V / sigma, stop, _eig(grams))
        V = V * sigma
    elif prob.lossf.name == "logistic":
        # the Gram matrices and their eigendecompositions are cached for an immutable
        # task tuple (a MultiTaskData's: every W-step of a fit passes the same one)
        key = Xs if _immutable(Xs) else None
        V, n_iter, cert, hist = _solve_logistic(prob, V, stop, key)
    else:  # pragma: no cover - only the two named losses are dispatched
        raise ValueError(f"loss {prob.lossf.name!r} is not supported by solve_tasks_first_order")
    return prob.result(V, n_iter, cert, tol_f, hist)
