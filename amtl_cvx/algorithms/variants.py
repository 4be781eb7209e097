"""A :class:`~amtl_cvx.problems.custom.Variant` inside the algorithms: its checks, its
name, and its objective along Algorithm 1's alternation (:class:`_VariantObjective`)."""

from __future__ import annotations

import warnings

import numpy as np

from amtl_cvx.algorithms.backends import VariantBackend
from amtl_cvx.algorithms.losses import _loss_evaluator
from amtl_cvx.algorithms.result import NonMonotoneWarning
from amtl_cvx.problems.objective import loss_weights

__all__ = ["FEASIBILITY_TOL"]

#: An extrapolated point of a variant's alternation is accepted only if it violates no
#: constraint of the variant's statements by more than this (original units).
FEASIBILITY_TOL = 1e-9


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
    """A variant's objective, losses and feasibility test for :func:`~amtl_cvx.algorithms.alternating._alternate`.

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
