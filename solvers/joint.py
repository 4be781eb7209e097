r"""The whole AMTL problem over ``(W, B)``: a stationarity certificate and a joint solver.

The problem (``docs/objective.md``)::

    min_{W, B}  F(W, B) = sum_t a_t(B) L_t(w_t) + lam ||W - W B||_F^2 + ridge ||W||_F^2
                          + rho ||B||_F^2
    s.t.        B >= 0, diag(B) = 0,       a_t(B) = 1 + mu c_t sum_s B[t, s]

(``rho``, the transfer ridge, is 0 in the paper's objective; with ``rho > 0`` every
B-step is strictly convex, its minimiser unique, and ``B`` bounded.)

On the feasible set ``||B[t, :]||_1`` is the row sum, so ``F`` is smooth there (and
biconvex, not convex: Algorithm 1's alternation and this solver find stationary points).

Certificate
-----------
:func:`amtl_kkt_residual` is the KKT residual of ``F`` over both blocks, each part
relative to the size of its own gradient at a reference point::

    cert = max( ||grad_W F(W, B)||_F / ||grad_W F(0, B)||_F ,
                ||min(B, grad_B F(W, B))||_F / ||grad_B F(W, 0)||_F )

(entries of the B-block off the diagonal only; ``min(B, g)`` is the natural residual of
``B >= 0``, zero exactly at a KKT point; ``0 / 0`` counts as 0). Both ratios are
dimensionless and do not change when the targets, or ``lam`` and ``mu`` together with
the loss, are rescaled. A small relative *decrease* of ``F`` between alternations says
nothing of the kind: Algorithm 1 can crawl along a valley for hundreds of alternations.

Algorithm (:func:`solve_amtl`)
-----------------------------
Variable projection: ``B`` is eliminated by its exact minimiser,
``G(W) = min_B F(W, B)``, computed by the B-step solver :func:`solvers.transfer.solve_transfer`
(warm-started from the previous ``B``; a few pivots per call). Where that minimiser is
unique, ``G`` is differentiable with ``grad G(W) = grad_W F(W, B*(W))`` (Danskin), and
locally smooth wherever the support of ``B*`` does not change. ``G`` is minimised over
``W`` by L-BFGS (``scipy.optimize.minimize``, method L-BFGS-B without bounds) in
per-task preconditioned coordinates ``u_t = R_t w_t``, ``R_t' R_t = k X_t'X_t / n_t +
2 (lam + ridge) I`` (``k = 1`` squared, ``1/4`` logistic: the single-task Hessian
bound), which removes the feature scaling (integer features in the tens next to rare
0/1 indicators) that makes plain gradient methods crawl. The run stops when the
certificate above is at most ``tol`` at an iterate; a line search that fails (a support
change the curvature pairs do not describe) restarts L-BFGS from the current point.

Inexact B-steps: far from a stationary point, ``G`` need not be evaluated exactly. While
the certificate is above ``tol``, every B-step's pivots stop once no violation exceeds
``rel`` times the B-step's gradient scale (:func:`solvers.transfer._solve_transfer_inexact`:
no certification, no rescue), with ``rel = min(1e-6, 1e-3 cert)``, never increasing. The
``B`` of such a step is feasible, so every value in the history is ``F`` at a feasible
``(W, B)``, and L-BFGS's line search keeps it non-increasing. When the certificate
computed at such a point reaches ``tol`` (or ``rel`` would fall below ``1e-12``, or the
iterations run out), the point gets its exact B-step, which can only lower ``F``, and its
certificate is computed again; from there every B-step is exact, and L-BFGS restarts from
that point unless it is certified. The returned ``B``, objective and certificate are
always the exact B-step's. The late pivots of a warm B-step are the small ones (on
``make_regression_tasks(200, 20)`` at ``lam = 1, mu = 0.1, ridge = 0``, 40% of them move
violations below 1e-5 of the scale, 20% below 1e-6), and the certification of the exact
step is saved. A start at ``1e-4`` instead of ``1e-6`` led the release's synthetic data
(``lam = 10, mu = 0.1``, paper's objective) to another, 0.03% higher, stationary point.

Newton finish (squared loss, ``d T <= 1500``): once the support of ``B`` has not changed
for 10 iterations, ``G`` is smooth around the iterate and its Hessian on that support is
the Schur complement ``H_WW - K' H_BB^{-1} K`` of the joint Hessian (built densely by
:func:`_reduced_hessian`). Where it is positive definite, Newton steps with an Armijo
line search on ``G`` (every trial point gets its exact B-step, so the objective stays
non-increasing) replace L-BFGS; a failed step hands back to L-BFGS, which tries again
after a support stable twice as long. Measured: the release's synthetic data at
``lam = 10, mu = 0.1`` in 168 iterations instead of about 440, at the same objective
(times in docs/benchmarks.md); on planted 30-task problems the same points (objectives
within 1e-11) in 30-50% fewer iterations.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize
from scipy.special import expit

from solvers.losses import (
    _check_array,
    _check_scalar,
    _check_solver_options,
    _check_tasks,
    _check_transfer,
    get_loss,
)
from solvers.result import SolverResult
from solvers.wstep.objective import _check_W
from solvers.joint_hessian import _reduced_hessian
from solvers.transfer import _solve_transfer_inexact, solve_transfer

__all__ = ["amtl_kkt_residual", "solve_amtl"]

#: Iteration cap of every B-step inside :func:`solve_amtl`. A B-step that misses its
#: certificate on degenerate columns (``mu = 0`` on rank-deficient data: the minimiser is
#: not unique and may be unbounded) then costs seconds, not minutes; the fit's own KKT
#: certificate, computed at the returned point, stays honest either way.
_BSTEP_MAX_ITER = 200
#: Inexact B-steps (module docstring): the pivots stop at violations of ``rel`` times the
#: B-step's gradient scale, ``rel = min(_INEXACT_START, _INEXACT_FACTOR * cert)`` (never
#: increasing), until the certificate reaches ``tol`` or ``rel`` would fall below
#: ``_INEXACT_MIN``; from there every B-step is exact.
_INEXACT_START = 1e-6
_INEXACT_FACTOR = 1e-3
_INEXACT_MIN = 1e-12


class _Losses:
    """Vectorised ``L_t(w_t)`` and ``grad L_t(w_t)`` of all tasks (columns of ``W``)."""

    def __init__(self, Xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], loss: str) -> None:
        self.loss = loss
        self.n = np.array([X.shape[0] for X in Xs], dtype=np.float64)
        self.T, self.d = len(Xs), Xs[0].shape[1]
        if loss == "squared":
            self.G = np.stack([X.T @ X for X in Xs])
            self.h = np.stack([X.T @ y for X, y in zip(Xs, ys)])
            self.yy = np.array([y @ y for y in ys])
        else:
            self.X = np.vstack(Xs)
            self.y = np.concatenate(ys)
            self.idx = np.repeat(np.arange(self.T), self.n.astype(np.int64))
            self.starts = np.concatenate([[0], np.cumsum(self.n.astype(np.int64))[:-1]])
            self.G = np.stack([X.T @ X for X in Xs])
        #: ``grad L_t(0)`` as a (d, T) array (the W-block's reference, a constant)
        self.grad_at_zero = self(np.zeros((self.d, self.T)))[1]

    def __call__(self, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(L (T,), grad (d, T))``."""
        V = W.T
        if self.loss == "squared":
            GV = np.einsum("tij,tj->ti", self.G, V)
            quad = np.einsum("ti,ti->t", V, GV) - 2.0 * np.einsum("ti,ti->t", V, self.h)
            L = np.maximum(quad + self.yy, 0.0) / (2.0 * self.n)
            return L, ((GV - self.h) / self.n[:, None]).T
        m = self.y * np.einsum("nd,nd->n", self.X, V[self.idx])
        L = np.bincount(self.idx, np.logaddexp(0.0, -m), minlength=self.T) / self.n
        coef = -self.y * expit(-m)
        g = np.add.reduceat(self.X * coef[:, None], self.starts, axis=0) / self.n[:, None]
        return L, g.T


def _kkt(
    Lf: _Losses, W: np.ndarray, B: np.ndarray, lam: float, mu: float, c: np.ndarray, ridge: float,
    rho: float = 0.0, parts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> float:
    """The certificate of the module docstring at ``(W, B)``; ``parts = (L, grad L, W - W B)``
    at that point if already known (the optimiser's evaluation computed them)."""
    L, gL, R = parts if parts is not None else (*Lf(W), W - W @ B)
    a = 1.0 + mu * c * B.sum(axis=1)
    gW = gL * a + 2.0 * lam * (R - R @ B.T) + 2.0 * ridge * W
    refW = np.linalg.norm(Lf.grad_at_zero * a)
    p = mu * c * L
    lam2 = 2.0 * lam
    resB = np.minimum(B, p[:, None] + rho * 2.0 * B - lam2 * (W.T @ R))
    np.fill_diagonal(resB, 0.0)  # the diagonal is fixed at 0: off-diagonal entries only
    gB0 = p[:, None] - lam2 * (W.T @ W)
    np.fill_diagonal(gB0, 0.0)

    def ratio(num: float, den: float) -> float:
        if num == 0.0:
            return 0.0
        return num / den if den > 0.0 else np.inf

    return max(ratio(float(np.linalg.norm(gW)), float(refW)),
               ratio(float(np.linalg.norm(resB)), float(np.linalg.norm(gB0))))


#: Newton finish (squared loss, ``d T`` at most this): once the support of ``B`` has not
#: changed for :data:`_NEWTON_STABLE` L-BFGS iterations, ``G`` is smooth around the
#: iterate and Newton steps with its exact Hessian on that support finish the run.
_NEWTON_MAX_DT = 1500
_NEWTON_STABLE = 10


def _prepare(Xs, ys, lam, mu, c, loss, ridge, transfer_ridge=0.0):
    lossf = get_loss(loss)
    Xl, yl = _check_tasks(Xs, ys, lossf)
    T = len(Xl)
    lam_f = _check_scalar(lam, "lam", strict=True)
    mu_f = _check_scalar(mu, "mu", strict=False)
    ridge_f = _check_scalar(ridge, "ridge", strict=False)
    rho_f = _check_scalar(transfer_ridge, "transfer_ridge", strict=False)
    if c is None:
        c_a = np.ones(T)
    else:
        c_a = _check_array(c, "c", ndim=1)
        if c_a.shape != (T,) or np.any(c_a < 0):
            raise ValueError(f"c must be a nonnegative vector of shape ({T},)")
    return Xl, yl, lam_f, mu_f, c_a, lossf.name, ridge_f, rho_f


def amtl_kkt_residual(
    Xs: Sequence[Any],
    ys: Sequence[Any],
    W: Any,
    B: Any,
    lam: float,
    *,
    mu: float = 0.1,
    c: Any = None,
    loss: str = "squared",
    ridge: float = 0.0,
    transfer_ridge: float = 0.0,
) -> float:
    """Relative KKT residual of the whole AMTL problem at ``(W, B)``.

    See the module docstring for the definition. ``B`` must be feasible
    (nonnegative, zero diagonal).

    Parameters
    ----------
    Xs, ys : sequence of numpy.ndarray
        T tasks.
    W : numpy.ndarray
        (d, T).
    B : numpy.ndarray
        (T, T), ``B >= 0``, zero diagonal.
    lam, mu, ridge : float
    c : numpy.ndarray, optional
        Imbalance weights (default ones).
    loss : {"squared", "logistic"}
    transfer_ridge : float, default=0.0
        ``rho``, the weight of ``||B||_F^2``.

    Returns
    -------
    float
    """
    Xl, yl, lam_f, mu_f, c_a, loss_name, ridge_f, rho_f = _prepare(
        Xs, ys, lam, mu, c, loss, ridge, transfer_ridge
    )
    T, d = len(Xl), Xl[0].shape[1]
    Wa = _check_W(W, d, T, "W")
    Bv = _check_transfer(B, T, "B")
    Bd = Bv.toarray() if hasattr(Bv, "toarray") else np.asarray(Bv)
    return _kkt(_Losses(Xl, yl, loss_name), Wa, Bd, lam_f, mu_f, c_a, ridge_f, rho_f)


def solve_amtl(
    Xs: Sequence[Any],
    ys: Sequence[Any],
    lam: float,
    *,
    mu: float = 0.1,
    c: Any = None,
    loss: str = "squared",
    ridge: float = 0.0,
    W0: Any,
    B0: Any = None,
    tol: float = 1e-6,
    max_iter: int = 1000,
    bstep_tol: float = 1e-9,
    memory: int = 20,
    transfer_ridge: float = 0.0,
    inexact_bsteps: bool = True,
) -> SolverResult:
    """Minimise the whole AMTL objective by L-BFGS over ``W`` with B eliminated by B-steps.

    See the module docstring for the algorithm and the certificate.

    Parameters
    ----------
    Xs, ys : sequence of numpy.ndarray
        T tasks, ``Xs[t]`` (n_t, d), ``ys[t]`` (n_t,) (labels in {-1, +1} for the
        logistic loss).
    lam : float
        ``lam > 0``.
    mu : float
        ``mu >= 0``.
    c : numpy.ndarray, optional
        Imbalance weights ``c_t >= 0`` (default ones).
    loss : {"squared", "logistic"}
    ridge : float
        ``ridge >= 0``.
    W0 : numpy.ndarray
        (d, T) starting point (Algorithm 1 starts from the single-task models).
    B0 : numpy.ndarray, optional
        Warm start of the first B-step.
    tol : float, default=1e-6
        Tolerance on the KKT certificate.
    max_iter : int, default=1000
        Maximum L-BFGS iterations (over all restarts).
    bstep_tol : float, default=1e-9
        Certificate tolerance of every B-step.
    memory : int, default=20
        L-BFGS correction pairs.
    transfer_ridge : float, default=0.0
        ``rho >= 0``, the weight of ``||B||_F^2`` (module docstring).
    inexact_bsteps : bool, default=True
        Stop the B-steps' pivots early while the certificate is far from ``tol``
        (module docstring, "Inexact B-steps"); ``False``: every B-step exact. The
        returned point, its objective and its certificate are the exact B-step's either way.

    Returns
    -------
    SolverResult
        ``solution`` is ``(W, B)``; ``objective`` is ``F(W, B)``; ``n_iter`` the L-BFGS
        iterations; ``certificate`` the KKT residual at the returned point;
        ``history`` the objective after every iteration (non-increasing).
    """
    Xl, yl, lam_f, mu_f, c_a, loss_name, ridge_f, rho_f = _prepare(
        Xs, ys, lam, mu, c, loss, ridge, transfer_ridge
    )
    tol_f, max_it = _check_solver_options(tol, max_iter)
    T, d = len(Xl), Xl[0].shape[1]
    W = _check_W(W0, d, T, "W0").copy()
    B = None if B0 is None else np.asarray(_check_transfer(B0, T, "B0"), dtype=np.float64)
    Lf = _Losses(Xl, yl, loss_name)
    curv = 1.0 if loss_name == "squared" else 0.25
    P = curv * Lf.G / Lf.n[:, None, None] + 2.0 * (lam_f + ridge_f) * np.eye(d)
    Rt = np.linalg.cholesky(P)  # P = Rt Rt', u_t = Rt' w_t
    Rinv = np.linalg.inv(Rt)

    def to_w(x: np.ndarray) -> np.ndarray:
        return np.einsum("tji,tj->it", Rinv, x.reshape(T, d))  # w_t = Rt^{-T} u_t

    # the last evaluated point, its objective and its B-step (warm start of the next);
    # "rel": the inexact B-steps' threshold (0: exact), "exact": whether state's B-step was
    state: dict[str, Any] = {"x": None, "f": np.nan, "B": B, "exact": False,
                             "rel": _INEXACT_START if inexact_bsteps else 0.0}

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        Wx = to_w(x)
        L, gL = Lf(Wx)
        p = mu_f * c_a * L
        Bx = None
        if state["rel"] > 0.0:
            Bx = _solve_transfer_inexact(Wx, p, lam_f, state["B"], state["rel"], rho_f)
        exact = Bx is None
        if exact:
            Bx = solve_transfer(
                Wx, p, lam_f, B0=state["B"], tol=bstep_tol, max_iter=_BSTEP_MAX_ITER, ridge=rho_f,
            ).solution
        a = 1.0 + mu_f * c_a * Bx.sum(axis=1)
        R = Wx - Wx @ Bx
        f = float(a @ L + lam_f * np.sum(R * R) + ridge_f * np.sum(Wx * Wx) + rho_f * np.sum(Bx * Bx))
        gW = gL * a + 2.0 * lam_f * (R - R @ Bx.T) + 2.0 * ridge_f * Wx
        state.update(x=x.copy(), f=f, B=Bx, gW=gW, W=Wx, parts=(L, gL, R), exact=exact)
        return f, np.einsum("tij,jt->ti", Rinv, gW).ravel()  # grad_u = Rt^{-1} grad_w

    def evaluate_at(x: np.ndarray) -> None:
        """Make ``state`` hold ``x`` (the optimiser's last evaluation may be elsewhere),
        with an exact B-step once the inexact phase is over."""
        if (state["x"] is None or not np.array_equal(state["x"], x)
                or (state["rel"] == 0.0 and not state["exact"])):
            fg(x)

    def certify() -> float:
        return _kkt(Lf, state["W"], state["B"], lam_f, mu_f, c_a, ridge_f, rho_f, state["parts"])

    def go_exact(x: np.ndarray) -> None:
        """End the inexact phase at the iterate ``x``: its exact B-step, its objective
        (lower: the exact B-step minimises over B) as the last entry of the history, and
        its certificate."""
        nonlocal cert
        state["rel"] = 0.0
        evaluate_at(x)
        history[-1] = state["f"]
        cert = certify()

    def to_u(Wm: np.ndarray) -> np.ndarray:
        return np.einsum("tji,jt->ti", Rt, Wm).ravel()  # u_t = Rt' w_t

    x = to_u(W)
    f0, _ = fg(x)
    history = [f0]
    cert = certify()
    if state["rel"] > 0.0 and (cert <= tol_f or _INEXACT_FACTOR * cert < _INEXACT_MIN):
        go_exact(x)
    state["rel"] = min(state["rel"], _INEXACT_FACTOR * cert)
    n_iter = 0
    fails = 0
    # Newton finish: when the support of B stops changing (see _NEWTON_STABLE)
    newton_ok = loss_name == "squared" and d * T <= _NEWTON_MAX_DT
    support: dict[str, Any] = {"mask": None, "stable": 0, "need": _NEWTON_STABLE, "cho": None}

    def factor(Wx: np.ndarray, Bx: np.ndarray):
        """Cholesky factor of G's Hessian on the support of ``Bx``, or None where Newton
        does not apply (a degenerate support, or a Hessian that is not positive definite)."""
        H = _reduced_hessian(Lf, Wx, Bx, lam_f, mu_f, c_a, ridge_f, rho_f)
        try:
            return None if H is None else cho_factor(H)
        except np.linalg.LinAlgError:
            return None

    def callback(intermediate_result) -> None:
        nonlocal cert, n_iter
        n_iter += 1
        xi = intermediate_result.x
        history.append(float(intermediate_result.fun))
        evaluate_at(xi)
        cert = certify()
        if state["rel"] > 0.0:
            if cert <= tol_f or n_iter >= max_it or _INEXACT_FACTOR * cert < _INEXACT_MIN:
                # the end of the inexact phase changes the function: L-BFGS restarts
                # from xi (unless the exact B-step certifies it)
                go_exact(xi)
                raise StopIteration
            state["rel"] = min(state["rel"], _INEXACT_FACTOR * cert)
        if cert <= tol_f or n_iter >= max_it:
            raise StopIteration
        if newton_ok:
            mask = state["B"] > 0
            same = support["mask"] is not None and np.array_equal(mask, support["mask"])
            support.update(mask=mask, stable=support["stable"] + 1 if same else 0)
            if support["stable"] >= support["need"]:
                support["stable"] = 0
                switched = state["rel"] > 0.0
                if switched:  # Newton runs on exact B-steps
                    go_exact(xi)
                    support["mask"] = state["B"] > 0
                    if cert <= tol_f:
                        raise StopIteration
                # switch only where Newton applies (else L-BFGS goes on, its memory
                # intact, and asks again after a support stable twice as long; it
                # restarts if its function has just become the exact one)
                support["cho"] = factor(to_w(xi), state["B"])
                if support["cho"] is None:
                    support["need"] *= 2
                if support["cho"] is not None or switched:
                    raise StopIteration

    def newton(x: np.ndarray) -> tuple[np.ndarray, bool]:
        """Newton steps on G with its Hessian on the current support, an Armijo line
        search on G (each trial point gets its exact B-step); returns the last point and
        whether every step succeeded."""
        nonlocal cert, n_iter
        cho, support["cho"] = support["cho"], None  # the factor the switch was decided on
        while cert > tol_f and n_iter < max_it:
            evaluate_at(x)
            Wx, f, gW = to_w(x), state["f"], state["gW"]
            cho = cho or factor(Wx, state["B"])
            if cho is None:
                return x, False
            step = -cho_solve(cho, gW.T.ravel()).reshape(T, d).T
            cho = None
            slope = float(np.sum(gW * step))
            if not slope < 0.0:
                return x, False
            alpha = 1.0
            while True:
                x_new = to_u(Wx + alpha * step)
                f_new, _ = fg(x_new)
                if f_new <= f + 1e-4 * alpha * slope:
                    break
                alpha *= 0.5
                if alpha < 1e-4:
                    return x, False
            x = x_new
            n_iter += 1
            history.append(f_new)
            cert = certify()
        return x, True

    while cert > tol_f and n_iter < max_it and fails < 3:
        start_iter, start_f = n_iter, history[-1]
        out = minimize(
            fg, x, jac=True, method="L-BFGS-B", callback=callback,
            options={"maxiter": max_it - n_iter, "maxfun": 10 * (max_it - n_iter) + 20,
                     "maxcor": memory, "ftol": 0.0, "gtol": 0.0},
        )
        x = out.x
        if support["cho"] is not None:  # the callback stopped L-BFGS for Newton
            x, ok = newton(x)
            if not ok:  # back to L-BFGS; try again after a support twice as stable
                support.update(stable=0, need=2 * support["need"])
            continue
        # progress or not, L-BFGS stopped short of the certificate: restart from x
        fails = fails + 1 if n_iter == start_iter or history[-1] >= start_f else 0
    go_exact(x)  # the returned B is the exact B-step's
    W, B = to_w(x), state["B"]
    cert = _kkt(Lf, W, B, lam_f, mu_f, c_a, ridge_f, rho_f)
    return SolverResult(
        solution=(W, B), objective=state["f"], n_iter=n_iter, converged=bool(cert <= tol_f),
        certificate=float(cert), tol=tol_f, history=tuple(history),
    )
