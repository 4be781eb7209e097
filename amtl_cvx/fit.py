r"""The AMTL algorithms: alternating minimisation (Algorithm 1) and curriculum (Algorithm 2).

Both minimise (``docs/objective.md``)::

    F(W, B) = sum_t (1 + mu c_t ||B[t,:]||_1) L_t(w_t) + lam ||W - W B||_F^2 + ridge ||W||_F^2
              + transfer_ridge ||B||_F^2     (Algorithm 1; see docs/objective.md)
    s.t. B >= 0, diag(B) = 0

with every subproblem solved by a backend: ``"fast"`` (the exact active-set, Cholesky and
Newton solvers of the ``solvers`` package), ``"first-order"`` (its first-order solvers:
coordinate descent on the B-step, accelerated gradient on the W-step and the curriculum
step; ``docs/first_order.md``) or ``"cvxpy"`` (the exact statements of
:mod:`amtl_cvx.problems`). With ``variant=`` (a
:class:`~amtl_cvx.problems.custom.Variant`) the steps the variant replaces are solved by
its own CVXPY statements, the others by the backend, and the history is the variant's
own objective (``docs/prototyping.md``).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from amtl_cvx._progress import progress_bar
from amtl_cvx._validation import check_scalar, check_transfer_matrix
from amtl_cvx.backends import ConvergenceWarning, VariantBackend, make_backend
from amtl_cvx.data import MultiTaskData
from amtl_cvx.objective import amtl_objective, imbalance_weights, loss_weights, task_loss, task_losses

__all__ = [
    "AMTLFit",
    "fit_alternating",
    "fit_curriculum",
    "SELECTIONS",
    "METHODS",
    "blas_limit",
    "AUTO_RIDGE_RATIO",
    "WEAK_COUPLING",
    "SingularTransferWarning",
    "coupling_strength",
    "resolve_ridge",
    "resolve_transfer_ridge",
    "AUTO_TRANSFER_RIDGE_RATIO",
    "NonMonotoneWarning",
    "FEASIBILITY_TOL",
]

logger = logging.getLogger(__name__)

#: Task selection rules of the curriculum.
SELECTIONS = ("greedy", "static")

#: Largest lam, mu or ridge a fit accepts: the subproblems form 2 (lam + ridge) and
#: products of these weights with squared norms, which overflow float64 near 1e308.
_MAX_WEIGHT = 1e300

#: How :func:`fit_alternating` minimises Algorithm 1's problem.
METHODS = ("auto", "lbfgs", "alternating")

#: ``ridge="auto"`` (the default) is ``AUTO_RIDGE_RATIO * lam``: the penalty on ``W``
#: is then ``lam (||W (I - B)||^2 + 0.1 ||W||^2)``, which stays at least
#: ``0.1 lam ||W||^2`` whatever ``B`` is. Chosen on the release's data (docs/objective.md,
#: "The default ridge"): it removes the blow-up of Algorithm 1 on the imbalanced files
#: (the worst grid point's test RMSE within 1.15x of the best, against 10x to 36x at
#: ``ridge = 0``) and keeps AMTL 17% below single-task ridge on synthetic_dataset.mat.
AUTO_RIDGE_RATIO = 0.1

#: ``transfer_ridge="auto"`` (the default of Algorithm 1) is
#: ``AUTO_TRANSFER_RIDGE_RATIO * lam * mean_t ||w_t||^2`` with ``w_t`` the single-task
#: models the fit starts from: a tenth of the average diagonal of ``lam W'W``, the
#: B-step's quadratic term, so that every B-step is strictly convex (its minimiser
#: unique) and ``B`` stays bounded (docs/objective.md, "The transfer ridge"). Without it,
#: on real-data-like tasks with fewer rows than features (``make_tabular_tasks``), tasks
#: that fit their rows exactly send for free and ``B`` grows without bound (a fit at
#: ``lam = 0.1, mu = 0.1`` crawls for 1,000 iterations while ``max B`` climbs past 60),
#: and at ``mu = 0`` the B-steps are degenerate; with it every grid point converges.
AUTO_TRANSFER_RIDGE_RATIO = 0.1

#: A fit warns (:class:`SingularTransferWarning`) when :func:`coupling_strength` is at
#: most this, ``sqrt(machine epsilon)`` (with ``ridge = 0``: when the smallest singular
#: value of ``I - B`` is below ``1.2e-4``). On the command line's grid on
#: synthetic_inbalance_1.mat at ``ridge = 0``, every point whose test RMSE doubled was
#: below it (smallest singular values 9e-5 to 9e-7).
WEAK_COUPLING = float(np.sqrt(np.finfo(np.float64).eps))


#: An extrapolated point of a variant's alternation is accepted only if it violates no
#: constraint of the variant's statements by more than this (original units).
FEASIBILITY_TOL = 1e-9


class NonMonotoneWarning(UserWarning):
    """A variant's objective rose during an alternation: its custom steps do not minimise
    the objective the history evaluates (supply the variant's ``objective``)."""


class SingularTransferWarning(UserWarning):
    """A fit returned a transfer graph ``B`` with ``I - B`` (numerically) singular, so that
    the penalty no longer constrains ``W`` along some direction."""


def resolve_ridge(ridge: float | str, lam: float) -> float:
    """The ridge a fit uses: ``ridge`` itself, or ``AUTO_RIDGE_RATIO * lam`` for ``"auto"``.

    Parameters
    ----------
    ridge : float or "auto"
        ``ridge >= 0``, or ``"auto"``.
    lam : float
        The fit's ``lam`` (already checked).
    """
    if isinstance(ridge, str):
        if ridge != "auto":
            raise ValueError(f"ridge must be a nonnegative number or 'auto', got {ridge!r}")
        return AUTO_RIDGE_RATIO * lam
    return check_scalar(ridge, "ridge")


def check_transfer_ridge(transfer_ridge: float | str) -> float | str:
    """``transfer_ridge`` checked: ``"auto"`` or a finite number ``>= 0`` (ValueError naming it)."""
    if isinstance(transfer_ridge, str):
        if transfer_ridge != "auto":
            raise ValueError(f"transfer_ridge must be a nonnegative number or 'auto', got {transfer_ridge!r}")
        return transfer_ridge
    value = check_scalar(transfer_ridge, "transfer_ridge")
    if value > _MAX_WEIGHT:
        raise ValueError(f"transfer_ridge must be at most {_MAX_WEIGHT:g}, got {value:g}")
    return value


def resolve_transfer_ridge(transfer_ridge: float | str, lam: float, W_single: np.ndarray) -> float:
    """The transfer ridge a fit uses: ``transfer_ridge`` itself, or for ``"auto"``
    ``AUTO_TRANSFER_RIDGE_RATIO * lam * mean_t ||w_t||^2`` over the columns of
    ``W_single`` (the single-task models at the fit's ``lam`` and ``ridge``).

    Parameters
    ----------
    transfer_ridge : float or "auto"
    lam : float
        The fit's ``lam`` (already checked).
    W_single : numpy.ndarray
        (d, T) single-task models.
    """
    value = check_transfer_ridge(transfer_ridge)
    if value == "auto":
        return float(AUTO_TRANSFER_RIDGE_RATIO * lam * np.mean(np.sum(W_single * W_single, axis=0)))
    return value


def coupling_strength(B: np.ndarray, lam: float, ridge: float) -> float:
    """How much the penalty ``lam ||W (I - B)||^2 + ridge ||W||^2`` still constrains ``W``.

    Its Hessian in each row of ``W`` is ``2 (lam (I - B)(I - B)' + ridge I)``, whose
    smallest eigenvalue is ``2 (lam s^2 + ridge)`` with ``s`` the smallest singular
    value of ``I - B``. Returned relative to its value at ``B = 0``:
    ``(lam s^2 + ridge) / (lam + ridge)``, 1 at ``B = 0``, at least
    ``ridge / (lam + ridge)`` (1/11 with ``ridge="auto"``), and near 0 where ``W`` may
    move along a direction that neither the coupling nor the ridge sees (only the
    losses, which see nothing outside a task's rows).
    """
    if not np.any(B > 0):
        return 1.0
    s = float(np.linalg.svd(np.eye(B.shape[0]) - B, compute_uv=False)[-1])
    return (lam * s * s + ridge) / (lam + ridge)


def _check_coupling(B: np.ndarray, lam: float, ridge: float, W: np.ndarray, data: MultiTaskData,
                    loss: str, caller: str) -> float:
    """:func:`coupling_strength`, with a :class:`SingularTransferWarning` at or below
    :data:`WEAK_COUPLING` that says what it means and what to do."""
    strength = coupling_strength(B, lam, ridge)
    if strength <= WEAK_COUPLING:
        losses = task_losses(W, data, loss)  # only to name the senders in the warning
        senders = np.flatnonzero(B.sum(axis=1) > 0)
        free = senders[losses[senders] <= 1e-8 * max(float(np.max(losses)), np.finfo(float).tiny)]
        why = (f"; tasks {free.tolist()} fit their training rows exactly (training loss ~0), so "
               "sending costs them nothing" if free.size else "")
        warnings.warn(
            f"{caller}: I - B is numerically singular: the penalty constrains W along its "
            f"smallest singular direction at {strength:.1e} of its strength at B = 0{why}; W may "
            "grow along it and predictions be arbitrary: use ridge='auto' (the default) or a "
            "larger ridge",
            SingularTransferWarning,
            stacklevel=3,
        )
    return strength


def blas_limit(blas_threads: int | None):
    """Context capping the BLAS threads at ``blas_threads`` (``None``: leave as is).

    The fits make many small products (d x d blocks, T x d panels); with several BLAS
    threads on a machine whose cores are busy each one waits for the others, and runs
    measured 4x to 160x slower than with one thread. One thread is the default of every
    fit; pass ``blas_threads=None`` (or a larger number) to use what BLAS is configured
    with, for example for very large dense W-step factorisations on an idle machine.
    """
    if blas_threads is None:
        return contextlib.nullcontext()
    if isinstance(blas_threads, bool) or int(blas_threads) != blas_threads or blas_threads < 1:
        raise ValueError(f"blas_threads must be a positive integer or None, got {blas_threads!r}")
    return threadpool_limits(limits=int(blas_threads), user_api="blas")


@dataclass(frozen=True)
class AMTLFit:
    """A fitted AMTL model.

    Attributes
    ----------
    W : numpy.ndarray, shape (d, T)
        Task parameters (column t is task t).
    B : numpy.ndarray, shape (T, T)
        Transfer graph, ``B >= 0`` with zero diagonal; ``B[s, t]`` is the edge s -> t.
    objective : float
        ``F(W, B)``.
    objective_history : numpy.ndarray
        ``method="alternating"``: ``F`` at the single-task start and after every
        alternation; ``method="lbfgs"``: ``F`` at the single-task ``W`` with its exact
        B-step, then after every iteration (both non-increasing). Curriculum: the objective of the learned tasks after every
        step (it ends at ``F(W, B)``).
    n_iter : int
        Alternations or L-BFGS iterations (Algorithm 1; at least 1: a start that is
        already certified counts its certifying evaluation), or steps (Algorithm 2).
    converged : bool
        Algorithm 1: the KKT certificate reached ``tol``. Algorithm 2: always True
        (each step is certified by its own solver).
    order : numpy.ndarray
        Curriculum: the tasks in the order they were learned; alternating: empty.
    c : numpy.ndarray
        The imbalance weights used.
    certificate : float
        Algorithm 1: the relative KKT residual of the whole problem at ``(W, B)``
        (:func:`solvers.joint.amtl_kkt_residual`); ``nan`` for the curriculum, whose
        acyclic ``B`` is not a stationary point of the whole problem.
    method : str
        How Algorithm 1's problem was minimised: ``"lbfgs"`` or ``"alternating"``
        (empty for the curriculum).
    ridge : float
        The ridge used (``ridge="auto"`` resolved, see :func:`resolve_ridge`).
    transfer_ridge : float
        Algorithm 1: the transfer ridge used (``"auto"`` resolved, see
        :func:`resolve_transfer_ridge`); 0 for the curriculum and for variants.
    coupling : float
        :func:`coupling_strength` of ``B``: the penalty's strength along its weakest
        direction, relative to ``B = 0`` (1 there). At or below :data:`WEAK_COUPLING`
        ``I - B`` is numerically singular and the fit warned
        (:class:`SingularTransferWarning`).
    variant : str
        The name of the :class:`~amtl_cvx.problems.custom.Variant` fitted (empty: the
        built-in problem). A variant fit's ``objective`` and ``objective_history`` are
        the variant's objective, its ``certificate`` is ``nan`` (the built-in KKT
        conditions do not hold for a variant) and ``converged`` means ``decrease <= tol``.
    decrease : float
        Variant fits of Algorithm 1: the relative decrease of the objective over the last
        alternation, ``|F_prev - F| / |F|``, the stopping test; ``nan`` otherwise.
    """

    W: np.ndarray
    B: np.ndarray
    objective: float
    objective_history: np.ndarray
    n_iter: int
    converged: bool
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    c: np.ndarray = field(default_factory=lambda: np.zeros(0))
    certificate: float = float("nan")
    method: str = ""
    ridge: float = float("nan")
    coupling: float = float("nan")
    transfer_ridge: float = 0.0
    variant: str = ""
    decrease: float = float("nan")


def _check_common(data: MultiTaskData, lam, mu, loss, ridge, s, sigma):
    if not isinstance(data, MultiTaskData):
        raise ValueError(f"data must be a MultiTaskData, got {type(data).__name__}")
    data.check_labels(loss)
    lam = check_scalar(lam, "lam", strict=True)
    mu = check_scalar(mu, "mu")
    ridge = resolve_ridge(ridge, lam)
    for name, value in (("lam", lam), ("mu", mu), ("ridge", ridge)):
        if value > _MAX_WEIGHT:
            raise ValueError(f"{name} must be at most {_MAX_WEIGHT:g} (larger values overflow float64 "
                             f"in the subproblems), got {value:g}")
    c = imbalance_weights(data.n_samples, s, sigma)
    return lam, mu, ridge, c


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
    ``max_iter`` first emits a :class:`~amtl_cvx.backends.ConvergenceWarning` and has
    ``converged=False``. Two methods (``method``):

    - ``"lbfgs"`` (the default with the fast backend): ``B`` eliminated by exact
      B-steps, ``W`` moved by preconditioned L-BFGS (:func:`solvers.joint.solve_amtl`).
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
        ``I - B`` is numerically singular warns (:class:`SingularTransferWarning`).
    transfer_ridge : float or "auto", default="auto"
        Weight of ``transfer_ridge ||B||_F^2`` (docs/objective.md, "The transfer ridge");
        ``"auto"`` is :data:`AUTO_TRANSFER_RIDGE_RATIO` ``* lam * mean_t ||w_t||^2`` over
        the single-task models (:func:`resolve_transfer_ridge`; computed from them even
        with ``W_init``). With it every B-step has a unique minimiser and ``B`` is
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
        BLAS threads during the fit (see :func:`blas_limit`).
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
        satisfies the custom statements' constraints (to :data:`FEASIBILITY_TOL`) and
        lowers the objective. An objective that rises warns
        (:class:`NonMonotoneWarning`). See ``docs/prototyping.md``.

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
                engine, data, W, B, lam, mu, c, loss, ridge, int(max_iter), tol, extrapolate, progress,
                evaluate, rho,
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


def _alternate(engine, data, W, B, lam, mu, c, loss, ridge, max_iter, tol, extrapolate, progress,
               evaluate=None, rho=0.0):
    """Algorithm 1's alternation; returns ``(W, B, history, n_iter, certificate)``.

    ``evaluate`` (a :class:`_VariantObjective`) replaces the objective by a variant's
    and the KKT certificate by the relative decrease of an alternation.
    """
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


def _check_variant(variant, caller: str, steps: tuple[str, ...]) -> None:
    """Raise a ValueError naming ``variant`` if it cannot run in ``caller``."""
    from amtl_cvx.problems.custom import Variant, VariantError

    if not isinstance(variant, Variant):
        raise ValueError(f"variant must be an amtl_cvx.Variant (or None), got {type(variant).__name__}")
    variant.check()
    if not any(variant.customises(step) for step in steps):
        raise VariantError(
            f"{caller}: the {variant._label()} replaces none of its steps ({', '.join(steps)}); "
            + ("Algorithm 2 needs its curriculum step" if steps == ("curriculum",) else
               "Algorithm 1 needs a transfer or a tasks step")
        )
    if "tasks" in steps and variant.changes_loss() and not variant.customises("tasks"):
        raise VariantError(
            f"{caller}: the {variant._label()} has its own task_losses but no tasks step; the fast "
            "W-step minimises the built-in loss, so the variant must state its W-step"
        )


def _variant_name(variant) -> str:
    name = getattr(variant, "name", None)
    return name if isinstance(name, str) and name != "variant" else type(variant).__name__


class _VariantObjective:
    """A variant's objective, losses and feasibility test for :func:`_alternate`.

    ``self(W, B)`` returns ``(F(W, B), L(W))``: the variant's ``objective_value`` when it
    has one, otherwise the built-in ``F`` with the variant's losses plus, for each
    custom statement, its objective at the point minus the built-in step objective
    there (:meth:`amtl_cvx.problems.custom.Variant.objective_value`). An extrapolated
    point that violates a custom statement's constraints is worth ``inf``.
    """

    def __init__(self, variant, engine: VariantBackend, data, lam, mu, c, loss, ridge) -> None:
        self.variant, self.engine, self.data = variant, engine, data
        self.lam, self.mu, self.c, self.loss, self.ridge = lam, mu, c, loss, ridge
        self._builtin_losses = _loss_evaluator(data, loss)
        self._warned = False

    def losses(self, W: np.ndarray) -> np.ndarray:
        L = self.variant.task_loss_values(W, self.data, self.loss)
        return self._builtin_losses(W) if L is None else L

    def violation(self, W: np.ndarray, B: np.ndarray, L: np.ndarray) -> float:
        worst = 0.0
        if self.engine.custom_transfer is not None:
            st = self.engine.custom_transfer.set(W, self.mu * self.c * L, self.lam)
            worst = max(worst, st.violation_at(B))
        if self.engine.custom_tasks is not None:
            st = self.engine.custom_tasks.set(B, self.lam, loss_weights(B, self.c, self.mu), self.ridge)
            worst = max(worst, st.violation_at(W))
        return worst

    def __call__(self, W: np.ndarray, B: np.ndarray, extrapolated: bool = False) -> tuple[float, np.ndarray]:
        lam, mu, c, ridge = self.lam, self.mu, self.c, self.ridge
        L = self.losses(W)
        if extrapolated and self.violation(W, B, L) > FEASIBILITY_TOL:
            return float("inf"), L
        own = self.variant.objective_value(W, B, self.data, lam=lam, mu=mu, loss=self.loss, c=c, ridge=ridge)
        if own is not None:
            return own, L
        a = loss_weights(B, c, mu)
        R = W - W @ B
        coupling, ridge_term = lam * np.sum(R * R), ridge * np.sum(W * W)
        value = float(a @ L + coupling + ridge_term)
        if self.engine.custom_transfer is not None:
            p = mu * c * L
            custom = self.engine.custom_transfer.set(W, p, lam).value_at(B)
            value += custom - float(coupling + p @ B.sum(axis=1))
        if self.engine.custom_tasks is not None:
            custom = self.engine.custom_tasks.set(B, lam, a, ridge).value_at(W)
            value += custom - float(a @ L + coupling + ridge_term)
        return value, L

    def decrease(self, history: list[float]) -> float:
        """``|F_prev - F| / |F|`` of the last alternation; warns once if ``F`` rose."""
        prev, now = history[-2], history[-1]
        if now > prev + 1e-9 * abs(prev) and not self._warned:
            self._warned = True
            warnings.warn(
                f"the objective of the {self.variant._label()} rose from {prev:.10g} to {now:.10g} in "
                f"alternation {len(history) - 1}: its custom steps do not minimise the objective the "
                "history evaluates; supply the variant's objective (docs/prototyping.md)",
                NonMonotoneWarning,
                stacklevel=4,
            )
        return abs(prev - now) / max(abs(now), np.finfo(float).tiny)


def _loss_evaluator(data: MultiTaskData, loss: str):
    """``W -> (L_t(w_t))_t`` for a fixed data set, without per-call validation.

    Squared loss: from the per-task statistics ``X_t'X_t``, ``X_t'y_t``, ``y_t'y_t``
    (one vectorised expression; the expansion loses at most ~1e-15 * ||y_t||^2 / n_t
    to cancellation, far below the solvers' tolerances). The reported objective of a fit
    is always recomputed with :func:`amtl_cvx.objective.amtl_objective`.
    """
    if loss == "squared":
        G = np.stack([X.T @ X for X in data.Xs])
        h = np.stack([X.T @ y for X, y in zip(data.Xs, data.ys)])
        yy = np.array([y @ y for y in data.ys])
        two_n = 2.0 * data.n_samples

        def squared(W: np.ndarray) -> np.ndarray:
            Wt = W.T
            quad = np.einsum("ti,tij,tj->t", Wt, G, Wt)
            return np.maximum(quad - 2.0 * np.einsum("ti,ti->t", Wt, h) + yy, 0.0) / two_n

        return squared
    return lambda W: np.array([task_loss(X, y, W[:, t], loss) for t, (X, y) in enumerate(zip(data.Xs, data.ys))])


def fit_curriculum(
    data: MultiTaskData,
    *,
    lam: float = 1.0,
    mu: float = 0.1,
    loss: str = "squared",
    ridge: float | str = "auto",
    s: float = 1.0,
    sigma: float = 0.0,
    selection: str = "greedy",
    backend: str = "fast",
    solver: str | None = None,
    blas_threads: int | None = 1,
    progress: bool = False,
    variant=None,
) -> AMTLFit:
    """Algorithm 2: learn tasks one at a time, lowest loss first, along an acyclic graph.

    At each step the tasks learned so far (set ``S``) are frozen, and a new task t solves
    jointly in ``(w_t, b_t)``, with ``b_t`` supported on ``S``::

        min  L_t(w) + lam ||w - W_S b||^2 + sum_{s in S} mu c_s L_s(w_s) b_s + ridge ||w||^2

    Selection rule (``selection``):

    - ``"greedy"`` (default): solve this step for *every* remaining task and learn the
      one whose training loss ``L_t(w_t)`` at its step solution is lowest (ties: lowest
      index). Costs ``T (T + 1) / 2`` step solves.
    - ``"static"``: order the tasks once by the training loss of their single-task models
      (penalty ``lam + ridge``), lowest first; ``T`` step solves.

    Each task only receives from tasks learned before it, so ``B`` is acyclic (strictly
    upper triangular in the learned order), and the final ``F(W, B)`` is the sum of the
    step objectives.

    Parameters are those of :func:`fit_alternating` (``blas_threads`` included; no
    ``client``: the curriculum has no B-step), plus ``selection``.

    With ``variant`` (a :class:`~amtl_cvx.problems.custom.Variant` with a curriculum
    step), every step is the variant's statement solved by CVXPY (``solver`` applies),
    the losses that order the tasks and price their edges are the variant's, the
    history adds up the statements' objectives at their solutions, and ``objective``
    is the variant's ``objective`` when it has one, otherwise the last entry of the
    history. ``selection="static"`` orders the tasks by the W-step at ``B = 0``
    (the variant's if it replaces it).

    Returns
    -------
    AMTLFit
        ``order`` holds the tasks in the order learned.
    """
    lam, mu, ridge, c = _check_common(data, lam, mu, loss, ridge, s, sigma)
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    if variant is not None:
        _check_variant(variant, "fit_curriculum", ("curriculum",))
    with blas_limit(blas_threads):
        return _curriculum(data, lam, mu, loss, ridge, c, selection, backend, solver, progress, variant)


def _curriculum(data, lam, mu, loss, ridge, c, selection, backend, solver, progress, variant=None) -> AMTLFit:
    T, d = data.n_tasks, data.n_features
    engine = make_backend(backend, data, loss, solver if variant is None or backend == "cvxpy" else None)
    losses_of = None
    if variant is not None:
        engine = VariantBackend(variant, engine, data, loss, lam=lam, mu=mu, c=c, ridge=ridge, solver=solver)
        builtin_losses = _loss_evaluator(data, loss)

        def variant_losses(W):
            L = variant.task_loss_values(W, data, loss)
            return builtin_losses(W) if L is None else L

        losses_of = variant_losses
    W = np.zeros((d, T))
    B = np.zeros((T, T))
    losses = np.zeros(T)
    learned = np.zeros(T, dtype=bool)
    order: list[int] = []
    history: list[float] = []
    if selection == "static":
        W_st = engine.tasks(np.zeros((T, T)), lam, np.ones(T), ridge, None)
        L_st = task_losses(W_st, data, loss) if losses_of is None else losses_of(W_st)
        queue = list(np.argsort(L_st, kind="stable"))
    total = 0.0
    with progress_bar(progress, T, "AMTL curriculum") as bar:
        for _ in range(T):
            q = mu * c * losses
            candidates = [t for t in range(T) if not learned[t]] if selection == "greedy" else [queue.pop(0)]
            best = None
            for t in candidates:
                if variant is None:
                    w, b = engine.curriculum(t, W, learned, q, lam, ridge)
                    loss_t, value = task_loss(data.Xs[t], data.ys[t], w, loss), None
                else:
                    w, b, value = engine.curriculum_step(t, W, learned, q, lam, ridge, B)
                    W_t = W.copy()
                    W_t[:, t] = w
                    loss_t = float(losses_of(W_t)[t])
                if best is None or loss_t < best[0]:
                    best = (loss_t, t, w, b, value)
            loss_t, t, w, b, value = best
            W[:, t], B[:, t], losses[t] = w, b, loss_t
            if value is None:
                r = w - W @ b
                value = loss_t + lam * (r @ r) + q @ b + ridge * (w @ w)
            total += value
            history.append(total)
            learned[t] = True
            order.append(t)
            logger.debug("curriculum: learned task %d (loss %.6g)", t, loss_t)
            bar.update(1)
    coupling = _check_coupling(B, lam, ridge, W, data, loss, "fit_curriculum")
    if variant is not None:
        own = variant.objective_value(W, B, data, lam=lam, mu=mu, loss=loss, c=c, ridge=ridge)
        objective = total if own is None else own
        return AMTLFit(W, B, float(objective), np.array(history), T, True, np.array(order), c, ridge=ridge,
                       coupling=coupling, variant=_variant_name(variant))
    objective = amtl_objective(W, B, data, lam=lam, mu=mu, loss=loss, c=c, ridge=ridge)
    return AMTLFit(W, B, objective, np.array(history), T, True, np.array(order), c, ridge=ridge,
                   coupling=coupling)

