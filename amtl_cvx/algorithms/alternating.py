r"""Algorithm 1: alternating minimisation of the AMTL objective (:func:`fit_alternating`).

It minimises (``docs/objective.md``)::

    F(W, B) = sum_t (1 + mu c_t ||B[t,:]||_1) L_t(w_t) + lam ||W - W B||_F^2 + ridge ||W||_F^2
              + transfer_ridge ||B||_F^2
    s.t. B >= 0, diag(B) = 0

with every subproblem solved by a backend (:mod:`amtl_cvx.algorithms.backends`):
``"fast"`` (the exact active-set, Cholesky and Newton solvers of the ``solvers``
package), ``"first-order"`` (its first-order solvers; ``docs/first_order.md``) or
``"cvxpy"`` (the exact statements of :mod:`amtl_cvx.problems`). With ``variant=`` (a
:class:`~amtl_cvx.problems.custom.Variant`) the steps the variant replaces are solved by
its own CVXPY statements, the others by the backend, and the history is the variant's
own objective (``docs/prototyping.md``).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from amtl_cvx._progress import progress_bar
from amtl_cvx._validation import check_scalar, check_transfer_matrix
from amtl_cvx.algorithms.backends import VariantBackend, make_backend
from amtl_cvx.algorithms.hyperparameters import (
    _Penalties,
    _check_common,
    check_transfer_ridge,
    resolve_transfer_ridge,
)
from amtl_cvx.algorithms.losses import _loss_evaluator
from amtl_cvx.algorithms.result import AMTLFit, ConvergenceWarning, _check_coupling
from amtl_cvx.algorithms.threads import blas_limit
from amtl_cvx.algorithms.variants import _check_variant, _variant_name, _VariantObjective
from amtl_cvx.data.container import MultiTaskData
from amtl_cvx.problems.objective import amtl_objective, loss_weights

__all__ = ["fit_alternating", "METHODS"]

logger = logging.getLogger(__name__)

#: How :func:`fit_alternating` minimises Algorithm 1's problem.
METHODS = ("auto", "lbfgs", "alternating")


@dataclass(frozen=True)
class _Loop:
    """When :func:`_alternate` stops (``max_iter``, ``tol``), whether it extrapolates, and
    whether it shows a progress bar."""

    max_iter: int
    tol: float
    extrapolate: bool
    progress: bool


def fit_alternating(
    data: MultiTaskData,
    *,
    lam: float = 1.0,
    mu: float = 0.1,
    loss: str = "squared",
    ridge: float | str = "auto",
    transfer_ridge: float | str = "auto",
    s: float = 1.0,
    sigma: float = 0.0,
    max_iter: int | None = None,
    tol: float = 1e-6,
    backend: str = "fast",
    solver: str | None = None,
    client=None,
    W_init: np.ndarray | None = None,
    B_init: np.ndarray | None = None,
    extrapolate: bool = True,
    method: str = "auto",
    blas_threads: int | None = 1,
    progress: bool = False,
    variant=None,
) -> AMTLFit:
    """Algorithm 1's problem: minimise ``F(W, B)`` from the single-task models.

    Starts from ``W`` = the W-step with ``B = 0`` (single-task ridge / L2-logistic
    regression with penalty ``lam + ridge``), unless ``W_init`` is given, and stops when
    the relative KKT residual of the whole problem (``certificate``, see
    :func:`solvers.joint.amtl_kkt_residual`) is at most ``tol``. A fit that reaches
    ``max_iter`` first emits a :class:`~amtl_cvx.algorithms.result.ConvergenceWarning` and has
    ``converged=False``. Two methods (``method``):

    - ``"lbfgs"`` (the default with the fast backend): ``B`` eliminated by B-steps
      (inexact while the certificate is far from ``tol``; the returned ``B`` is always the
      exact B-step of the returned ``W``), ``W`` moved by preconditioned L-BFGS
      (:func:`solvers.joint.solve_amtl`).
      It reaches a stationary point where the alternation crawls: on
      ``make_regression_tasks(200, 20)`` at ``lam=1, mu=0.1, ridge=0`` it certifies ``1e-6`` in
      about 110 iterations at objective 89.4788336, which 50 alternations miss by 3%.
    - ``"alternating"`` (the default with the CVXPY backend): Algorithm 1 of the paper.
      Repeat: B-step with ``W`` fixed (prices ``p_s = mu c_s L_s(w_s)``), then W-step with
      ``B`` fixed (weights ``a_t = 1 + mu c_t ||B[t,:]||_1``). Each step minimises ``F``
      exactly over its block, so the history is non-increasing. With
      ``extrapolate=True`` every alternation is followed by a safeguarded
      extrapolation along the last move, ``(W, B) + beta (W - W_prev, B - B_prev)``
      (``B`` projected back onto ``B >= 0``, zero diagonal), accepted only if it lowers
      ``F``; ``beta`` grows by 1.5 (at most 50) after an acceptance and halves (at least
      0.1) after a rejection.

    Parameters
    ----------
    data : MultiTaskData
        Training data.
    lam : float, default=1.0
        Weight of ``||W - W B||_F^2`` (``> 0``).
    mu : float, default=0.1
        Weight of the loss-weighted sparsity of the outgoing edges (``>= 0``).
    loss : {"squared", "logistic"}
    ridge : float or "auto", default="auto"
        Weight of ``ridge ||W||_F^2`` (see ``docs/objective.md``); ``"auto"`` is
        ``AUTO_RIDGE_RATIO * lam = 0.1 lam``. ``ridge = 0`` is the paper's objective,
        which may have no minimiser (tasks with fewer rows than features fit their data
        exactly, send for free, and ``I - B`` drifts to singular while ``||W||`` grows);
        such a fit ends at ``max_iter`` with a ``ConvergenceWarning``, and any fit whose
        ``I - B`` is numerically singular warns
        (:class:`~amtl_cvx.algorithms.result.SingularTransferWarning`).
    transfer_ridge : float or "auto", default="auto"
        Weight of ``transfer_ridge ||B||_F^2`` (docs/objective.md, "The transfer ridge");
        ``"auto"`` is :data:`~amtl_cvx.algorithms.hyperparameters.AUTO_TRANSFER_RIDGE_RATIO`
        ``* lam * mean_t ||w_t||^2`` over the single-task models
        (:func:`~amtl_cvx.algorithms.hyperparameters.resolve_transfer_ridge`; computed from
        them even with ``W_init``). With it every B-step has a unique minimiser and ``B`` is
        bounded; ``transfer_ridge = 0`` (and ``ridge = 0``) is the paper's objective. A
        variant states its own problem: ``"auto"`` is then 0, and a number is refused.
    s, sigma : float
        Imbalance weights ``c_t = s / n_t**sigma``.
    max_iter : int, optional
        L-BFGS iterations (default 1000) or alternations (default 100).
    tol : float, default=1e-6
        Tolerance on the KKT certificate.
    backend : {"fast", "first-order", "cvxpy"}
        Subproblem solvers (module docstring).
    solver : str, optional
        The CVXPY solver (backend ``"cvxpy"`` only).
    client : dask.distributed.Client, optional
        Backend ``"first-order"`` only: its B-steps solve blocks of columns on the
        cluster's workers (needs ``amtl-cvx[dask]``).
    W_init : numpy.ndarray, optional
        Starting ``W`` (d x T) instead of the single-task models.
    B_init : numpy.ndarray, optional
        Starting ``B`` (only with ``W_init``): the history starts at
        ``F(W_init, B_init)`` and the first B-step is warm-started from it (a warm
        start along a hyperparameter path).
    extrapolate : bool, default=True
        Safeguarded extrapolation between alternations (``"alternating"`` only).
    method : {"auto", "lbfgs", "alternating"}, default="auto"
        ``"auto"``: ``"lbfgs"`` with the fast backend, ``"alternating"`` with the
        others (``"lbfgs"`` needs the fast B-step solver).
    blas_threads : int or None, default=1
        BLAS threads during the fit (see :func:`~amtl_cvx.algorithms.threads.blas_limit`).
    progress : bool, default=False
        Show a progress bar of the alternations (``"alternating"`` only; needs tqdm).
    variant : Variant, optional
        An AMTL variant (:class:`amtl_cvx.problems.custom.Variant`): its custom B-step
        and / or W-step are solved by CVXPY (``solver`` applies to them), the other step
        by ``backend``; the method is ``"alternating"`` and the history is the variant's
        objective (:meth:`Variant.objective_value
        <amtl_cvx.problems.custom.Variant.objective_value>`). The fit stops when the
        objective's relative decrease over an alternation is at most ``tol`` (each step
        being solved to optimality by its solver); the built-in KKT certificate does
        not apply and is ``nan``. An extrapolated point is accepted only if it
        satisfies the custom statements' constraints (to :data:`~amtl_cvx.algorithms.variants.FEASIBILITY_TOL`) and
        lowers the objective. An objective that rises warns
        (:class:`~amtl_cvx.algorithms.result.NonMonotoneWarning`). See ``docs/prototyping.md``.

    Returns
    -------
    AMTLFit
    """
    lam, mu, ridge, c = _check_common(data, lam, mu, loss, ridge, s, sigma)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    transfer_ridge = check_transfer_ridge(transfer_ridge)
    if variant is not None:
        if transfer_ridge != "auto":
            raise ValueError("transfer_ridge: a variant states its own problem; write a ridge on B into "
                             "its transfer statement (transfer_ridge='auto' is 0 for a variant)")
        transfer_ridge = 0.0
        _check_variant(variant, "fit_alternating", ("transfer", "tasks"))
        if method == "lbfgs":
            raise ValueError("method='lbfgs' minimises the built-in problem; a variant is fitted by "
                             "method='alternating' (or 'auto')")
        method = "alternating"
    if method == "auto":
        method = "lbfgs" if backend == "fast" else "alternating"
    if method == "lbfgs" and backend != "fast":
        raise ValueError("method='lbfgs' needs backend='fast' (its B-steps are the fast solver's)")
    if max_iter is None:
        max_iter = 1000 if method == "lbfgs" else 100
    if isinstance(max_iter, bool) or int(max_iter) != max_iter or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter}")
    tol = check_scalar(tol, "tol", strict=True)
    T = data.n_tasks
    if B_init is not None and W_init is None:
        raise ValueError("B_init needs W_init: a transfer graph is warm-started with its W")
    with blas_limit(blas_threads):
        if variant is None:
            engine = make_backend(backend, data, loss, solver, client=client)
        else:
            engine = VariantBackend(variant, make_backend(backend, data, loss, solver if backend == "cvxpy" else None,
                                                          client=client),
                                    data, loss, lam=lam, mu=mu, c=c, ridge=ridge, solver=solver)
        B = np.zeros((T, T))
        W_single = None
        if W_init is None or transfer_ridge == "auto":
            W_single = engine.tasks(B, lam, np.ones(T), ridge, None)
        rho = resolve_transfer_ridge(transfer_ridge, lam, W_single)
        if W_init is None:
            W = W_single
        else:
            W = np.array(W_init, dtype=np.float64)
            if W.shape != (data.n_features, T) or not np.all(np.isfinite(W)):
                raise ValueError(f"W_init must be a finite array of shape ({data.n_features}, {T})")
            if B_init is not None:
                B = check_transfer_matrix(B_init, T, "B_init").copy()
        if method == "lbfgs":
            from solvers.joint import solve_amtl

            res = solve_amtl(
                data.Xs, data.ys, lam, mu=mu, c=c, loss=loss, ridge=ridge, W0=W, transfer_ridge=rho,
                B0=B if B_init is not None else None, tol=tol, max_iter=int(max_iter),
            )
            W, B = res.solution
            # a start that is already certified counts its certifying evaluation
            history, n_iter, cert = list(res.history), max(1, res.n_iter), res.certificate
        else:
            evaluate = None if variant is None else _VariantObjective(variant, engine, data, lam, mu, c, loss, ridge)
            W, B, history, n_iter, cert = _alternate(
                engine, data, loss, W, B, _Penalties(lam, mu, c, ridge, rho),
                _Loop(int(max_iter), tol, extrapolate, progress), evaluate,
            )
        if variant is None:
            objective = amtl_objective(W, B, data, lam=lam, mu=mu, loss=loss, c=c, ridge=ridge,
                                       transfer_ridge=rho)
        else:
            objective = history[-1]
    converged = bool(cert <= tol)
    if not converged:
        if variant is not None:
            stopped = (f"alternations (max_iter={max_iter}) of the {variant._label()} with a relative "
                       f"decrease {cert:.2e} > tol {tol:.1e}: raise max_iter")
        else:
            what = "L-BFGS iterations" if method == "lbfgs" else "alternations"
            remedy = ("raise max_iter" if ridge > 0 and rho > 0 else
                      "raise max_iter, or use ridge='auto' and transfer_ridge='auto' (the defaults) if the "
                      "objective keeps falling while ||W|| or ||B|| grows (with either ridge 0 the problem "
                      "may have no minimiser)")
            stopped = (f"{what} (max_iter={max_iter}) with KKT certificate {cert:.2e} > tol {tol:.1e}: "
                       f"{remedy}")
        warnings.warn(f"fit_alternating stopped after {n_iter} {stopped}", ConvergenceWarning, stacklevel=2)
    coupling = _check_coupling(B, lam, ridge, W, data, loss, "fit_alternating")
    if variant is not None:  # the built-in certificate does not hold: its decrease instead
        return AMTLFit(W, B, float(objective), np.array(history), n_iter, converged, c=c, method=method,
                       ridge=ridge, coupling=coupling, variant=_variant_name(variant), decrease=float(cert))
    return AMTLFit(W, B, objective, np.array(history), n_iter, converged, c=c,
                   certificate=float(cert), method=method, ridge=ridge, coupling=coupling,
                   transfer_ridge=rho)


def _alternate(engine, data: MultiTaskData, loss: str, W: np.ndarray, B: np.ndarray, pen: _Penalties,
               loop: _Loop, evaluate: _VariantObjective | None = None):
    """Algorithm 1's alternation; returns ``(W, B, history, n_iter, certificate)``.

    ``evaluate`` (a :class:`~amtl_cvx.algorithms.variants._VariantObjective`) replaces the objective by a variant's
    and the KKT certificate by the relative decrease of an alternation.
    """
    lam, mu, c, ridge, rho = pen.lam, pen.mu, pen.c, pen.ridge, pen.rho
    max_iter, tol, extrapolate, progress = loop.max_iter, loop.tol, loop.extrapolate, loop.progress
    from solvers.joint import _kkt, _Losses

    if evaluate is None:
        losses_of = _loss_evaluator(data, loss)
        kkt_losses = _Losses(data.Xs, data.ys, loss)

        def F(W, B, extrapolated=False):
            """``(F(W, B), L(W))``: the objective of docs/objective.md, without re-validation."""
            L = losses_of(W)
            R = W - W @ B
            return float(loss_weights(B, c, mu) @ L + lam * np.sum(R * R) + ridge * np.sum(W * W)
                         + rho * np.sum(B * B)), L

        def certify(W, B, history):
            return _kkt(kkt_losses, W, B, lam, mu, c, ridge, rho)
    else:
        F = evaluate

        def certify(W, B, history):
            return evaluate.decrease(history)

    value, losses = F(W, B)
    history = [value]
    cert = np.inf
    n_iter = 0
    beta, previous = 1.0, None
    with progress_bar(progress, max_iter, "AMTL alternations") as bar:
        for n_iter in range(1, max_iter + 1):
            # warm start: the last B-step's own solution (an extrapolated B has a
            # smaller support, which would cost the B-step its pivots again)
            B = engine.transfer(W, mu * c * losses, lam, B if previous is None else previous[1], rho)
            W = engine.tasks(B, lam, loss_weights(B, c, mu), ridge, W)
            value, losses = F(W, B)
            if extrapolate and previous is not None:
                W_e = W + beta * (W - previous[0])
                B_e = np.maximum(B + beta * (B - previous[1]), 0.0)
                np.fill_diagonal(B_e, 0.0)
                value_e, losses_e = F(W_e, B_e, extrapolated=True)
                previous = (W, B)
                if value_e < value:
                    W, B, value, losses = W_e, B_e, value_e, losses_e
                    beta = min(1.5 * beta, 50.0)
                else:
                    beta = max(0.5 * beta, 0.1)
            else:
                previous = (W, B)
            history.append(value)
            cert = certify(W, B, history)
            logger.debug("alternation %d: F = %.10g, certificate %.2e", n_iter, value, cert)
            bar.update(1)
            bar.set_postfix_str(f"F={value:.6g}")
            if cert <= tol:
                break
    return W, B, history, n_iter, cert
