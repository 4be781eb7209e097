"""Baselines: single-task models and multi-task networks with task weighting (LBTW)."""

from amtl_cvx.baselines.network import MultiTaskNetwork, SingleTaskNetworks
from amtl_cvx.baselines.single_task import fit_single_task
from amtl_cvx.baselines.weighting import WEIGHTINGS, TaskWeighting, make_weighting

#: The multi-task baselines of amtl_cvx.baselines.multitask (imported lazily, below).
_MULTITASK = ("fit_pooled", "fit_mean_regularized", "fit_l21", "fit_trace_norm", "fit_gomtl",
              "GOMTLFit", "MultiTaskBaseline", "MULTITASK_BASELINES")

__all__ = [
    "fit_single_task",
    "MultiTaskNetwork",
    "SingleTaskNetworks",
    "TaskWeighting",
    "WEIGHTINGS",
    "make_weighting",
    *_MULTITASK,
]


def __getattr__(name: str):
    # imported on first use: the estimators of amtl_cvx.baselines.multitask subclass
    # amtl_cvx.estimators, which imports this package
    if name in _MULTITASK:
        from amtl_cvx.baselines import multitask

        return getattr(multitask, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
