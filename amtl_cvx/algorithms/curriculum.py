"""Algorithm 2: the curriculum, tasks learned one at a time along an acyclic transfer
graph (:func:`fit_curriculum`)."""

from __future__ import annotations

import logging

import numpy as np

from amtl_cvx._progress import progress_bar
from amtl_cvx.algorithms.backends import VariantBackend, make_backend
from amtl_cvx.algorithms.hyperparameters import _Penalties, _check_common
from amtl_cvx.algorithms.losses import _loss_evaluator
from amtl_cvx.algorithms.result import AMTLFit, _check_coupling
from amtl_cvx.algorithms.threads import blas_limit
from amtl_cvx.algorithms.variants import _check_variant, _variant_name
from amtl_cvx.data.container import MultiTaskData
from amtl_cvx.problems.objective import amtl_objective, task_loss, task_losses

__all__ = ["fit_curriculum", "SELECTIONS"]

logger = logging.getLogger(__name__)

#: Task selection rules of the curriculum.
SELECTIONS = ("greedy", "static")


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

    Parameters are those of :func:`~amtl_cvx.algorithms.alternating.fit_alternating` (``blas_threads`` included; no
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
        return _curriculum(data, loss, _Penalties(lam, mu, c, ridge), selection, backend, solver, progress, variant)


def _curriculum(data: MultiTaskData, loss: str, pen: _Penalties, selection: str, backend: str, solver: str | None,
                progress: bool, variant=None) -> AMTLFit:
    lam, mu, c, ridge = pen.lam, pen.mu, pen.c, pen.ridge
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
