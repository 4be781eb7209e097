r"""First-order solver of the AMTL curriculum step (Algorithm 2), numpy and scipy only.

The problem is the one of :mod:`solvers.curriculum` (``docs/objective.md``,
"Curriculum step"): with the learned tasks' columns ``W_S`` (d x k) frozen and
penalties ``q >= 0`` (k,),

::

    min_{w, b >= 0}  f(w, b) = L_t(w) + lam * ||w - W_S b||^2 + q' b + ridge * ||w||^2

where ``L_t`` is the mean squared or logistic loss of the new task.

Algorithm
---------
Accelerated proximal (projected) gradient jointly in ``z = (w, b)`` (FISTA with the
adaptive restart of O'Donoghue and Candes 2015: the momentum is dropped whenever the
last step turned back, ``(y - z_new)'(z_new - z) > 0``), in the diagonal metric
``D = diag(H_bar)`` where ``H_bar`` is the Hessian of ``f`` (squared) or its upper bound
with the logistic loss's curvature ``X'X / (4 n)`` (logistic)::

    H_bar = [[kappa X'X/n + 2 (lam + ridge) I,  -2 lam W_S   ],
             [-2 lam W_S',                      2 lam W_S'W_S]]

(``kappa = 1`` squared, ``1/4`` logistic). The metric removes per-column scaling of
``X`` and of ``W_S``; the step is ``1 / L`` with ``L = lambda_max(D^{-1/2} H_bar D^{-1/2})``
(a (d + k) x (d + k) eigenvalue problem), a rigorous bound, so no line search is
needed. The projection on ``b >= 0`` is ``max(b, 0)``: every iterate, and the result,
is exactly feasible, with exact zeros off the support. The squared loss is solved in
units where ``max(|y|, |W_S|) = 1`` (as :func:`solvers.curriculum.solve_curriculum_step`
does), and its gradient is carried along by linearity (one product with ``H_bar`` per
iteration). Once the certificate is below ``tol``, a squared-loss run whose residual in
the original units is not (see "Certificate") tries one exact finish on the identified
support (the stationary point of the quadratic over ``w`` and ``{j: b_j > 0}``, kept
only if that ``b`` stays positive and neither residual grows).

Certificate
-----------
The one of :func:`solvers.curriculum.solve_curriculum_step`, computed by the same code
(:func:`solvers.curriculum._cert`)::

    sqrt(||g_w||^2 + ||min(b, g_b)||^2) / ||(grad L_t(0), q)||

(1 in the denominator when that norm is 0), evaluated for the squared loss in the
units where ``max(|y|, |W_S|) = 1``, as that solver does. The same residual in the
original units differs (``g_b`` scales quadratically with the units, ``b`` not at
all), so once the certificate reaches ``tol`` the run goes on until that one is below
``tol`` too, or has not decreased for :data:`POLISH` iterations (its rounding floor can
be higher: on frozen tasks of norm 3e3 at ``lam = 30`` the exact active-set solution's
is 8e-9). ``n_iter`` counts gradient steps. A problem whose conditioning defeats the
iteration stops at ``max_iter`` with ``converged=False``. When the minimiser is not unique (``X`` rank deficient and its null
direction in the span of ``W_S``, or dependent columns of ``W_S``) the run returns one
minimiser, the limit of the iteration from the start (``(0, 0)`` by default).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from solvers.curriculum import _cert, _check_wb, _grad, _in_original_units, _objective, _prepare, _Step
from solvers.losses import _check_solver_options
from solvers.result import SolverResult, _Stop

__all__ = ["solve_curriculum_step_first_order"]

#: After the certificate reached ``tol`` in scaled units, the run stops when the residual
#: in the original units has not decreased for ``POLISH`` iterations (its rounding floor).
POLISH = 1000

#: Iterations between two certificate checks with the logistic loss (each check is a
#: pass over the task's data).
CHECK_EVERY = 10


def _metric(
    X: np.ndarray, WS: np.ndarray, lam: float, ridge: float, kappa: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """``(H_bar, 1 / diag(D), L)`` for the metric of the module docstring."""
    n, d = X.shape
    k = WS.shape[1]
    H = np.empty((d + k, d + k))
    H[:d, :d] = kappa * (X.T @ X) / n
    H[:d, :d][np.diag_indices(d)] += 2.0 * (lam + ridge)
    H[:d, d:] = -2.0 * lam * WS
    H[d:, :d] = H[:d, d:].T
    H[d:, d:] = 2.0 * lam * (WS.T @ WS)
    diag = np.diag(H).copy()
    diag[diag <= 0] = 1.0  # a zero column of W_S: b_j has no curvature (any scale)
    r = 1.0 / np.sqrt(diag)
    L = float(np.linalg.eigvalsh(H * r[:, None] * r[None, :])[-1]) * (1.0 + 1e-12)
    return H, 1.0 / diag, max(L, np.finfo(float).tiny)


def _original_cert(
    gw: np.ndarray, gb: np.ndarray, b: np.ndarray, q: np.ndarray, g0w: np.ndarray, sigma: float
) -> float:
    """The KKT residual of :func:`solvers.curriculum._cert` in the original units, from
    the quantities of a solve in units scaled by ``1 / sigma`` (``y, W_S, w`` divided by
    ``sigma``, ``q`` by ``sigma**2``): ``g_w`` scales by ``sigma``, ``g_b`` by
    ``sigma**2``, ``b`` not at all. Evaluated divided by ``sigma**2`` (no overflow)."""
    with np.errstate(over="ignore", under="ignore"):
        s2 = sigma * sigma
        num = np.sqrt(gw @ gw / s2 + np.sum(np.minimum(b / s2, gb) ** 2))
        den = np.sqrt(g0w @ g0w / s2 + q @ q)
    return float(num / den) if den > 0 else float(num)


def _support_solve(H: np.ndarray, lin: np.ndarray, z: np.ndarray, d: int) -> np.ndarray | None:
    """Minimise ``1/2 z'Hz + lin'z`` over ``w`` and the support ``P = {b > 0}`` of ``z``
    (minimum-norm least squares of the stationarity system); None unless ``b_P > 0``."""
    keep = np.concatenate([np.ones(d, bool), z[d:] > 0])
    sol = np.linalg.lstsq(H[np.ix_(keep, keep)], -lin[keep], rcond=None)[0]
    out = np.zeros_like(z)
    out[keep] = sol
    if not np.all(np.isfinite(out)) or np.any(out[d:][keep[d:]] <= 0):
        return None
    return out


def _apg(
    st: _Step, w: np.ndarray, b: np.ndarray, ref: float, stop: _Stop, sigma: float = 1.0
) -> tuple[np.ndarray, np.ndarray, int, float, list[float]]:
    X, y, WS, q, lam, lossf, ridge = st.X, st.y, st.WS, st.q, st.lam, st.lossf, st.ridge
    tol, max_iter, record = stop.tol, stop.max_iter, stop.record
    n, d = X.shape
    squared = lossf.name == "squared"
    H, dinv, L = _metric(X, WS, lam, ridge, 1.0 if squared else 0.25)
    scale = dinv / L
    hist: list[float] = []

    def exact_grad(z: np.ndarray) -> np.ndarray:
        """The gradient by the shared code (the one the certificate is defined with)."""
        gw, gb = _grad(st, z[:d], z[d:])
        return np.concatenate([gw, gb])

    if squared:
        lin = np.concatenate([-(X.T @ y) / n, q])

        def grad(z: np.ndarray) -> np.ndarray:
            return H @ z + lin
    else:
        grad = exact_grad

    g0w = -(X.T @ y) / n if squared else lossf.gradient(X, y, np.zeros(d))

    def certificate(z: np.ndarray, g: np.ndarray) -> float:
        return _cert(g[:d], g[d:], z[d:], ref)

    def original(z: np.ndarray, g: np.ndarray) -> float:
        return _original_cert(g[:d], g[d:], z[d:], q, g0w, sigma)

    z = np.concatenate([w, b])
    gz = grad(z)
    ge = exact_grad(z)
    cert = certificate(z, ge)
    done = cert <= tol and (sigma == 1.0 or original(z, ge) <= tol)
    yv, gy = z, gz
    t = 1.0
    n_iter = 0
    best = (cert, np.inf, z)  # (certificate, residual in original units, point)
    polish = 0  # last iteration that lowered the residual in original units
    polished = False
    while not done and n_iter < max_iter:
        zn = yv - scale * gy
        bn = zn[d:]
        np.maximum(bn, 0.0, out=bn)
        n_iter += 1
        dz = zn - z
        restart = float((yv - zn) @ dz) > 0
        if squared:
            gzn = grad(zn)
        if restart:
            t = 1.0
            yv = zn
            gy = gzn if squared else grad(zn)
        else:
            tn = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            beta = (t - 1.0) / tn
            t = tn
            yv = zn + beta * dz
            gy = (1.0 + beta) * gzn - beta * gz if squared else grad(yv)
        z = zn
        if squared:
            gz = gzn
            if n_iter % 200 == 0:  # the recursion drifts: recompute
                gz, gy = grad(z), grad(yv)
            cert = certificate(z, gz)
        elif n_iter % CHECK_EVERY == 0 or n_iter == max_iter:
            cert = certificate(z, grad(z))
        orig = np.inf
        if cert <= tol:
            ge = exact_grad(z)
            cert = certificate(z, ge)  # confirm with the shared gradient
            if cert <= tol:
                orig = 0.0 if sigma == 1.0 else original(z, ge)
                if orig > tol and squared and not polished:
                    # finish on the identified support: the exact minimiser of the
                    # quadratic over (w, b_P), kept if b_P > 0 and no residual grows
                    polished = True
                    zp = _support_solve(H, lin, z, d)
                    if zp is not None:
                        gp = exact_grad(zp)
                        cp, op = certificate(zp, gp), original(zp, gp)
                        if cp <= cert and op < orig:
                            z, gz, cert, orig = zp, grad(zp), cp, op
                            yv, gy, t = z, gz, 1.0
                if orig < (1.0 - 1e-3) * best[1]:
                    polish = n_iter  # the residual in original units still improves
                done = orig <= tol or n_iter - polish >= POLISH
        if (cert <= tol, -orig, -cert) > (best[0] <= tol, -best[1], -best[0]):
            best = (cert, orig, z)
        if record:
            hist.append(cert)
        if not np.isfinite(cert):
            break
    cert, _, z = best
    return z[:d].copy(), z[d:].copy(), n_iter, cert, hist


def solve_curriculum_step_first_order(
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
    max_iter: int = 50000,
    record_history: bool = False,
) -> SolverResult:
    """Solve the curriculum step by accelerated projected gradient in ``(w, b)``.

    ::

        min_{w, b >= 0}  L_t(w) + lam * ||w - W_S b||^2 + q' b + ridge * ||w||^2

    with ``L_t(w) = 1/(2 n) ||y - X w||^2`` (squared) or
    ``L_t(w) = mean(log(1 + exp(-y * X w)))`` (logistic, labels in {-1, +1}). Same
    arguments, certificate and result as
    :func:`solvers.curriculum.solve_curriculum_step`; the algorithm is in the module
    docstring.

    Parameters
    ----------
    X, y : numpy.ndarray
        The new task, ``X`` (n, d) with ``n >= 1``, ``y`` (n,).
    W_S : numpy.ndarray
        (d, k) frozen columns of the learned tasks (``k`` may be 0).
    q : numpy.ndarray
        (k,) penalties ``q >= 0``.
    lam : float
        ``lam > 0``.
    loss : {"squared", "logistic"}
    ridge : float
        ``ridge >= 0``.
    w0 : numpy.ndarray, optional
        (d,) warm start for ``w`` (default zeros).
    b0 : numpy.ndarray, optional
        (k,) warm start for ``b``, ``b0 >= 0`` (default zeros).
    tol : float
        Tolerance on the relative KKT certificate (see the module docstring).
    max_iter : int
        Maximum gradient steps.
    record_history : bool
        Record the certificate after every iteration (with the logistic loss it is
        re-evaluated every :data:`CHECK_EVERY` iterations).

    Returns
    -------
    SolverResult
        ``solution = (w, b)`` with ``b`` exactly ``>= 0``; ``objective`` is the value
        above; ``converged`` is ``certificate <= tol``.

    Raises
    ------
    ValueError
        On invalid input (the message names the argument).
    """
    st = _Step(*_prepare(X, y, W_S, q, lam, loss, ridge))
    tol_f, max_it = _check_solver_options(tol, max_iter)
    d, k = st.WS.shape
    wa, ba = _check_wb(w0, b0, d, k, "w0", "b0")
    return _solve(st, wa, ba, _Stop(tol_f, max_it, record_history), 1.0)


def _solve(st: _Step, wa: np.ndarray | None, ba: np.ndarray | None, stop: _Stop, sigma: float) -> SolverResult:
    """The solve on validated input; ``sigma`` is the scale of the units (see ``_original_cert``)."""
    tol_f, max_it = stop.tol, stop.max_iter
    Xa, ya, WS, qa, lossf = st.X, st.y, st.WS, st.q, st.lossf
    d, k = WS.shape
    if lossf.name == "squared" and sigma == 1.0:
        scale = st.unit_scale()
        if scale not in (0.0, 1.0):
            sigma = scale
            unit = _solve(st.scaled(sigma), None if wa is None else wa / sigma, ba, stop, sigma)
            return _in_original_units(st, unit, sigma)
    gL0 = lossf.gradient(Xa, ya, np.zeros(d))
    ref = float(np.sqrt(gL0 @ gL0 + qa @ qa)) or 1.0
    w = np.zeros(d) if wa is None else wa.copy()
    b = np.zeros(k) if ba is None else ba.copy()
    n_iter, hist = 0, []
    if max_it > 0:
        w, b, n_iter, cert, hist = _apg(st, w, b, ref, stop, sigma)
    # the reported certificate is recomputed at the returned point by the shared code
    gw, gb = _grad(st, w, b)
    cert = _cert(gw, gb, b, ref)
    return SolverResult(
        solution=(w, b),
        objective=_objective(st, w, b),
        n_iter=n_iter,
        converged=bool(cert <= tol_f),
        certificate=float(cert),
        tol=tol_f,
        history=tuple(hist),
    )
