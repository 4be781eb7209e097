"""Fast solver of the AMTL curriculum step (Algorithm 2), numpy and scipy only.

The problem (``docs/objective.md``, section "Curriculum step"): with the learned
tasks' columns ``W_S`` (d x k) frozen and penalties ``q >= 0`` (k,),

::

    min_{w, b >= 0}  L_t(w) + lam * ||w - W_S b||^2 + q' b + ridge * ||w||^2

where ``L_t`` is the mean squared or logistic loss of the new task.

Algorithms
----------
Both losses reduce to a nonnegative quadratic program of the form
``min_{b >= 0} 1/2 ||v - A b||^2 + q' b`` solved *exactly* by a Lawson-Hanson
type primal active-set method (:func:`nnqp`): on the current support it takes
the exact (minimum-norm) Newton step, or a zero-curvature descent ray when the
support's columns are linearly dependent and ``q`` has a component in their null
space. The returned ``b`` has exact zeros off the support and is exactly ``>= 0``.

squared
    ``w`` is eliminated (``w(b) = (X'X/n + 2(lam+ridge) I)^{-1} (X'y/n + 2 lam W_S b)``);
    the reduced problem in ``b`` is one such NNQP with ``A = P^{1/2} W_S`` for
    ``P = 2 lam I - 4 lam^2 (X'X/n + 2(lam+ridge) I)^{-1}`` (computed in the
    eigenbasis of ``X'X``), then ``w = w(b)``.
logistic
    Proximal Newton: at ``w_k`` the loss is replaced by its second-order model
    (gradient ``g``, Hessian ``X'DX/n``), the resulting quadratic problem in
    ``(w, b >= 0)`` is solved exactly as in the squared case (warm-started from
    the current support), and an Armijo backtracking line search on the joint
    objective along the segment to that point keeps ``b >= 0``. Unit steps are
    accepted near the solution, where convergence is quadratic.

Certificate
-----------
The relative KKT residual of the joint problem::

    sqrt(||g_w||^2 + ||min(b, g_b)||^2) / ||(grad L_t(0), q)||

with ``g_w = grad L_t(w) + 2 lam (w - W_S b) + 2 ridge w`` and
``g_b = q - 2 lam W_S' (w - W_S b)`` (``min(b, g_b)`` vanishes iff ``b >= 0``,
``g_b >= 0`` and ``b_j g_b_j = 0``). The denominator is the gradient norm at
``(0, 0)`` and does not depend on the starting point.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from solvers.losses import (
    Loss,
    _check_array,
    _check_scalar,
    _check_solver_options,
    _check_task,
    get_loss,
)
from solvers.nnqp import _EPS, nnqp
from solvers.result import SolverResult, _Stop


__all__ = [
    "solve_curriculum_step",
    "curriculum_objective",
    "curriculum_gradient",
    "nnqp",
]

# ----------------------------------------------------------------------------
# Validation, objective, gradient, certificate
# ----------------------------------------------------------------------------


def _prepare(
    X: Any, y: Any, W_S: Any, q: Any, lam: Any, loss: str | Loss, ridge: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, Loss, float]:
    lossf = get_loss(loss)
    Xa, ya = _check_task(X, y, lossf, "X", "y")
    d = Xa.shape[1]
    WS = _check_array(W_S, "W_S")
    if WS.ndim == 1 and WS.size == 0:
        WS = WS.reshape(d, 0)
    if WS.ndim != 2 or WS.shape[0] != d:
        raise ValueError(f"W_S must have shape ({d}, k), got {WS.shape}")
    k = WS.shape[1]
    qa = _check_array(q, "q", ndim=1)
    if qa.shape != (k,):
        raise ValueError(f"q must have shape ({k},), got {qa.shape}")
    if np.any(qa < 0):
        raise ValueError("q must be nonnegative")
    lam_f = _check_scalar(lam, "lam", strict=True)
    ridge_f = _check_scalar(ridge, "ridge", strict=False)
    return Xa, ya, WS, qa, lam_f, lossf, ridge_f


def _check_wb(w: Any, b: Any, d: int, k: int, wname: str, bname: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    wa = ba = None
    if w is not None:
        wa = _check_array(w, wname, ndim=1)
        if wa.shape != (d,):
            raise ValueError(f"{wname} must have shape ({d},), got {wa.shape}")
    if b is not None:
        ba = _check_array(b, bname, ndim=1)
        if ba.shape != (k,):
            raise ValueError(f"{bname} must have shape ({k},), got {ba.shape}")
        if np.any(ba < 0):
            raise ValueError(f"{bname} must be nonnegative")
    return wa, ba


@dataclass(frozen=True)
class _Step:
    """A checked curriculum step (the output of :func:`_prepare`): the new task ``X``,
    ``y``, the frozen columns ``WS``, the penalties ``q``, ``lam``, the loss ``lossf``
    and ``ridge``."""

    X: np.ndarray
    y: np.ndarray
    WS: np.ndarray
    q: np.ndarray
    lam: float
    lossf: Loss
    ridge: float

    def unit_scale(self) -> float:
        """``max(|y|, |W_S|)``: the squared step is solved in units where it is 1."""
        return max(float(np.max(np.abs(self.y))), float(np.max(np.abs(self.WS))) if self.WS.size else 0.0)

    def scaled(self, sigma: float) -> _Step:
        """The squared step in units scaled by ``1 / sigma`` (``y``, ``W_S`` divided by
        ``sigma``, ``q`` by ``sigma**2``): the objective divided by ``sigma**2``, ``b``
        and the certificate unchanged."""
        return replace(self, y=self.y / sigma, WS=self.WS / sigma, q=self.q / sigma / sigma)


def _objective(st: _Step, w: np.ndarray, b: np.ndarray) -> float:
    r = w - st.WS @ b
    return float(st.lossf.value(st.X, st.y, w) + st.lam * (r @ r) + st.q @ b + st.ridge * (w @ w))


def _grad(st: _Step, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = w - st.WS @ b
    gw = st.lossf.gradient(st.X, st.y, w) + 2.0 * st.lam * r + 2.0 * st.ridge * w
    gb = st.q - 2.0 * st.lam * (st.WS.T @ r)
    return gw, gb


def _in_original_units(st: _Step, unit: SolverResult, sigma: float) -> SolverResult:
    """The result of a solve of ``st.scaled(sigma)`` in the units of ``st``; an objective
    that overflows float64 is a ``ValueError``."""
    w, b = unit.solution
    w = w * sigma
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below
        objective = _objective(st, w, b)
    if not np.isfinite(objective):
        raise ValueError(
            f"the curriculum step's objective overflows float64 (max |y|, |W_S| = {sigma:g}); "
            "rescale the data"
        )
    return replace(unit, solution=(w, b), objective=objective)


def _cert(gw: np.ndarray, gb: np.ndarray, b: np.ndarray, ref: float) -> float:
    rb = np.minimum(b, gb)
    return float(np.sqrt(gw @ gw + rb @ rb)) / ref


def curriculum_objective(
    X: Any,
    y: Any,
    w: Any,
    b: Any,
    W_S: Any,
    q: Any,
    lam: float,
    *,
    loss: str = "squared",
    ridge: float = 0.0,
) -> float:
    """Evaluate the curriculum-step objective.

    ::

        f(w, b) = L_t(w) + lam * ||w - W_S b||^2 + q' b + ridge * ||w||^2

    Parameters
    ----------
    X, y : numpy.ndarray
        The new task, ``X`` (n, d), ``y`` (n,).
    w : numpy.ndarray
        (d,).
    b : numpy.ndarray
        (k,), ``b >= 0``.
    W_S : numpy.ndarray
        (d, k) frozen columns of the learned tasks (``k`` may be 0).
    q : numpy.ndarray
        (k,) penalties, ``q >= 0``.
    lam : float
        ``lam > 0``.
    loss : {"squared", "logistic"}
    ridge : float
        ``ridge >= 0``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On invalid input (the message names the argument).
    """
    st = _Step(*_prepare(X, y, W_S, q, lam, loss, ridge))
    wa, ba = _check_wb(w, b, st.X.shape[1], st.WS.shape[1], "w", "b")
    if wa is None or ba is None:
        raise ValueError("w and b are required")
    return _objective(st, wa, ba)


def curriculum_gradient(
    X: Any,
    y: Any,
    w: Any,
    b: Any,
    W_S: Any,
    q: Any,
    lam: float,
    *,
    loss: str = "squared",
    ridge: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient ``(g_w, g_b)`` of the curriculum objective (see :func:`curriculum_objective`).

    ``g_w = grad L_t(w) + 2 lam (w - W_S b) + 2 ridge w`` and
    ``g_b = q - 2 lam W_S' (w - W_S b)``.
    """
    st = _Step(*_prepare(X, y, W_S, q, lam, loss, ridge))
    wa, ba = _check_wb(w, b, st.X.shape[1], st.WS.shape[1], "w", "b")
    if wa is None or ba is None:
        raise ValueError("w and b are required")
    return _grad(st, wa, ba)


# ----------------------------------------------------------------------------
# Solver
# ----------------------------------------------------------------------------


def solve_curriculum_step(
    X: Any,
    y: Any,
    W_S: Any,
    q: Any,
    lam: float,
    *,
    loss: str = "squared",
    ridge: float = 0.0,
    w0: Any = None,
    b0: Any = None,
    tol: float = 1e-10,
    max_iter: int = 1000,
    record_history: bool = False,
) -> SolverResult:
    """Solve the curriculum step for a new task against the learned tasks.

    ::

        min_{w, b >= 0}  L_t(w) + lam * ||w - W_S b||^2 + q' b + ridge * ||w||^2

    with ``L_t(w) = 1/(2 n) ||y - X w||^2`` (squared) or
    ``L_t(w) = mean(log(1 + exp(-y * X w)))`` (logistic, labels in {-1, +1}).

    Parameters
    ----------
    X, y : numpy.ndarray
        The new task, ``X`` (n, d) with ``n >= 1``, ``y`` (n,).
    W_S : numpy.ndarray
        (d, k) frozen columns of the learned tasks; ``k = 0`` gives ridge /
        L2-logistic regression with penalty ``lam + ridge``.
    q : numpy.ndarray
        (k,) penalties ``q >= 0``.
    lam : float
        ``lam > 0``.
    loss : {"squared", "logistic"}
    ridge : float
        ``ridge >= 0``.
    w0 : numpy.ndarray, optional
        (d,) warm start for ``w``.
    b0 : numpy.ndarray, optional
        (k,) warm start for ``b`` (``b0 >= 0``); its support seeds the active set.
    tol : float
        Tolerance on the relative KKT certificate
        ``sqrt(||g_w||^2 + ||min(b, g_b)||^2) / ||(grad L_t(0), q)||`` (1 in the
        denominator when that norm is 0).
    max_iter : int
        Squared: maximum active-set support changes. Logistic: maximum proximal
        Newton iterations.
    record_history : bool
        Record the certificate after every iteration (logistic) or at exit (squared).

    Returns
    -------
    SolverResult
        ``solution = (w, b)`` with ``b`` exactly ``>= 0`` (exact zeros off the
        support); ``objective`` is the value above.

    Raises
    ------
    ValueError
        On invalid input (the message names the argument).
    """
    st = _Step(*_prepare(X, y, W_S, q, lam, loss, ridge))
    tol_f, max_it = _check_solver_options(tol, max_iter)
    d, k = st.WS.shape
    wa, ba = _check_wb(w0, b0, d, k, "w0", "b0")
    if st.lossf.name == "squared":
        # The squared step is homogeneous: (y, W_S, q, w) -> (y, W_S, q / sigma, w) / sigma
        # divides the objective by sigma^2 and leaves b and the certificate unchanged.
        # Solved in units where max(|y|, |W_S|) = 1, so that no magnitude of the data
        # (1e-160 or 1e150) underflows or overflows on the way.
        sigma = st.unit_scale()
        if sigma not in (0.0, 1.0):
            u = st.scaled(sigma)
            unit = solve_curriculum_step(
                u.X, u.y, u.WS, u.q, st.lam, loss="squared", ridge=st.ridge,
                w0=None if wa is None else wa / sigma, b0=ba, tol=tol_f, max_iter=max_it,
                record_history=record_history,
            )
            return _in_original_units(st, unit, sigma)
    return _solve(st, wa, ba, _Stop(tol_f, max_it, record_history))


def _solve(st: _Step, wa: np.ndarray | None, ba: np.ndarray | None, stop: _Stop) -> SolverResult:
    """:func:`solve_curriculum_step` on checked input (squared: in its units)."""
    Xa, ya, WS, qa, lam_f, lossf = st.X, st.y, st.WS, st.q, st.lam, st.lossf
    tol_f, max_it, record_history = stop.tol, stop.max_iter, stop.record
    d = WS.shape[0]
    gL0 = lossf.gradient(Xa, ya, np.zeros(d))
    ref = float(np.sqrt(gL0 @ gL0 + qa @ qa)) or 1.0
    hist: list[float] = []

    def done(w: np.ndarray, b: np.ndarray, n_iter: int, cert: float) -> SolverResult:
        return SolverResult(
            solution=(w, b),
            objective=_objective(st, w, b),
            n_iter=n_iter,
            converged=bool(cert <= tol_f),
            certificate=float(cert),
            tol=tol_f,
            history=tuple(hist),
        )

    if wa is not None and ba is not None:
        gw, gb = _grad(st, wa, ba)
        cert = _cert(gw, gb, ba, ref)
        if cert <= tol_f or max_it == 0:
            return done(wa.copy(), ba.copy(), 0, cert)
    kkt_tol = 1e-3 * tol_f * ref

    if lossf.name == "squared":
        n = Xa.shape[0]
        w, b, n_iter = _solve_quadratic(Xa.T @ Xa / n, Xa.T @ ya / n, st, ba, kkt_tol, max_it)
        gw, gb = _grad(st, w, b)
        cert = _cert(gw, gb, b, ref)
        if record_history:
            hist.append(cert)
        return done(w, b, n_iter, cert)

    # ---- logistic: proximal Newton, each model solved exactly ------------------
    w = np.zeros(d) if wa is None else wa.copy()
    if ba is None:
        # best b for the starting w: the exact inner NNQP
        s2 = np.sqrt(2.0 * lam_f)
        b, _, _ = nnqp(s2 * WS, s2 * w, qa, kkt_tol=kkt_tol)
    else:
        b = ba.copy()
    f = _objective(st, w, b)
    gw, gb = _grad(st, w, b)
    cert = _cert(gw, gb, b, ref)
    n_iter = 0
    while cert > tol_f and n_iter < max_it:
        H = lossf.hessian(Xa, ya, w)
        gl = lossf.gradient(Xa, ya, w)
        # model: L(w_k) + gl'(w - w_k) + 1/2 (w - w_k)' H (w - w_k), linear term H w_k - gl
        w_new, b_new, _ = _solve_quadratic(H, H @ w - gl, st, b, kkt_tol, None)
        dw, db = w_new - w, b_new - b
        slope = float(gw @ dw + gb @ db)
        step = 1.0
        accepted = False
        for _ in range(60):
            if step == 1.0:
                wn, bn = w_new, b_new
            else:
                wn, bn = w + step * dw, np.maximum(b + step * db, 0.0)
            fn = _objective(st, wn, bn)
            if fn <= f + 1e-4 * step * min(slope, 0.0):
                accepted = True
                break
            if abs(fn - f) <= 1e-13 * abs(f):
                gwn, gbn = _grad(st, wn, bn)
                if _cert(gwn, gbn, bn, ref) < cert:
                    accepted = True
                    break
            step *= 0.5
        n_iter += 1
        if not accepted:
            if record_history:
                hist.append(cert)
            break
        w, b, f = wn, bn, fn
        gw, gb = _grad(st, w, b)
        cert = _cert(gw, gb, b, ref)
        if record_history:
            hist.append(cert)
    return done(w, b, n_iter, cert)


def _solve_quadratic(
    Hm: np.ndarray, c: np.ndarray, st: _Step, b0: np.ndarray | None, kkt_tol: float, max_iter: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Exactly solve ``min_{w, b>=0} 1/2 w'Hm w - c'w + lam ||w - W_S b||^2 + q'b + ridge ||w||^2``.

    ``w`` is eliminated in the eigenbasis of ``Hm`` (PSD): with ``alpha = eig(Hm) +
    2 (lam + ridge)`` and ``mu = 2 lam (eig(Hm) + 2 ridge) / alpha`` the reduced
    problem is ``min_{b >= 0} 1/2 ||v - A b||^2 + q'b`` with ``A = diag(sqrt(mu)) E'W_S``
    and ``v = 2 lam diag(1/sqrt(mu)) (E'c / alpha)``; then
    ``w = E diag(1/alpha) E'(c + 2 lam W_S b)`` (``W_S``, ``q``, ``lam``, ``ridge`` from
    ``st``). Returns ``(w, b, nnqp iterations)``.
    """
    WS, q, lam, ridge = st.WS, st.q, st.lam, st.ridge
    d = Hm.shape[0]
    gam, E = np.linalg.eigh((Hm + Hm.T) / 2.0)
    gam = np.maximum(gam, 0.0)
    gam[gam <= max(gam[-1], 0.0) * d * _EPS * 4] = 0.0
    alpha = gam + 2.0 * (lam + ridge)
    mu = 2.0 * lam * (gam + 2.0 * ridge) / alpha
    sq = np.sqrt(mu)
    Wt = E.T @ WS  # (d, k)
    ct = E.T @ c
    A = sq[:, None] * Wt
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(sq > 0, 2.0 * lam * (ct / alpha) / np.where(sq > 0, sq, 1.0), 0.0)
    b, n_iter, _ = nnqp(A, v, q, b0=b0, kkt_tol=kkt_tol, max_iter=max_iter)
    w = E @ ((ct + 2.0 * lam * (Wt @ b)) / alpha)
    return w, b, n_iter
