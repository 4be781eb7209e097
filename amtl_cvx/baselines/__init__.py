"""Baselines: single-task models and multi-task networks with task weighting (LBTW)."""

from amtl_cvx.baselines.network import MultiTaskNetwork, SingleTaskNetworks
from amtl_cvx.baselines.single_task import fit_single_task
from amtl_cvx.baselines.weighting import WEIGHTINGS, TaskWeighting, make_weighting

__all__ = [
    "fit_single_task",
    "MultiTaskNetwork",
    "SingleTaskNetworks",
    "TaskWeighting",
    "WEIGHTINGS",
    "make_weighting",
]
