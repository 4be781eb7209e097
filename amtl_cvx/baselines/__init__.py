"""Baselines: single-task models (and, later, multi-task networks)."""

from amtl_cvx.baselines.single_task import fit_single_task

__all__ = ["fit_single_task"]
