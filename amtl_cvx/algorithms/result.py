"""The result of a fit (:class:`AMTLFit`), the warnings a fit emits, and the strength of
the coupling of the fitted transfer graph (:func:`coupling_strength`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from amtl_cvx.data.container import MultiTaskData
from amtl_cvx.problems.objective import task_losses

__all__ = [
    "AMTLFit",
    "ConvergenceWarning",
    "SingularTransferWarning",
    "NonMonotoneWarning",
    "WEAK_COUPLING",
    "coupling_strength",
]


class ConvergenceWarning(UserWarning):
    """A fast solver stopped before its certificate reached the tolerance."""


#: A fit warns (:class:`SingularTransferWarning`) when :func:`coupling_strength` is at
#: most this, ``sqrt(machine epsilon)`` (with ``ridge = 0``: when the smallest singular
#: value of ``I - B`` is below ``1.2e-4``). On the command line's grid on
#: synthetic_inbalance_1.mat at ``ridge = 0``, every point whose test RMSE doubled was
#: below it (smallest singular values 9e-5 to 9e-7).
WEAK_COUPLING = float(np.sqrt(np.finfo(np.float64).eps))


class NonMonotoneWarning(UserWarning):
    """A variant's objective rose during an alternation: its custom steps do not minimise
    the objective the history evaluates (supply the variant's ``objective``)."""


class SingularTransferWarning(UserWarning):
    """A fit returned a transfer graph ``B`` with ``I - B`` (numerically) singular, so that
    the penalty no longer constrains ``W`` along some direction."""


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
        The ridge used (``ridge="auto"`` resolved, see :func:`~amtl_cvx.algorithms.hyperparameters.resolve_ridge`).
    transfer_ridge : float
        Algorithm 1: the transfer ridge used (``"auto"`` resolved, see
        :func:`~amtl_cvx.algorithms.hyperparameters.resolve_transfer_ridge`); 0 for the curriculum and for variants.
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
