"""Baselines: single-task models and the linear multi-task baselines.

The single-task fit is :func:`amtl_cvx.algorithms.single_task.fit_single_task` (AMTL at
``B = 0``, also Algorithm 1's starting point), re-exported here. The multi-task networks
with task weighting (LBTW) are :mod:`amtl_cvx.lbtw`.
"""

from amtl_cvx.algorithms.single_task import fit_single_task
from amtl_cvx.baselines.multitask import (
    MULTITASK_BASELINES,
    GOMTLFit,
    MultiTaskBaseline,
    fit_gomtl,
    fit_l21,
    fit_mean_regularized,
    fit_pooled,
    fit_trace_norm,
)

__all__ = [
    "fit_single_task",
    "fit_pooled",
    "fit_mean_regularized",
    "fit_l21",
    "fit_trace_norm",
    "fit_gomtl",
    "GOMTLFit",
    "MultiTaskBaseline",
    "MULTITASK_BASELINES",
]
