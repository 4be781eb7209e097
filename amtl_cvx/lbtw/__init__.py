"""The LBTW baseline: multi-task networks with task weighting, and their comparison with AMTL.

Modules
-------
weighting
    Task-weighting strategies (equal, LBTW, GradNorm, cosine / RMTL).
model, network
    The shared-bottom network in numpy: its model (parameters, forward and backward
    passes) and :class:`MultiTaskNetwork` (constructor, Adam, early stopping).
single_task_networks
    :class:`SingleTaskNetworks`, one network per task.
scores
    Per-task PR-AUC, ROC-AUC and enrichment factors.
methods, results, linear_methods, comparison, report, compare_cli
    The comparison of AMTL with the networks (``amtl-cvx compare``): its methods and
    presets, its results and negative transfer, its linear side (single-task logistic
    regression, AMTL), the run, the table and plot, the command.
"""

from amtl_cvx.lbtw.network import MultiTaskNetwork
from amtl_cvx.lbtw.scores import EF_FRACTIONS, average_precision, ef_key, enrichment_factor, roc_auc, task_scores
from amtl_cvx.lbtw.single_task_networks import SingleTaskNetworks
from amtl_cvx.lbtw.weighting import WEIGHTINGS, TaskWeighting, make_weighting

#: The names of the comparison (imported on first use: it loads the AMTL side).
_COMPARISON = {
    "compare": "comparison", "compare_pcba": "comparison", "compare_usps": "comparison", "fine_tune": "comparison",
    "Comparison": "results", "MethodResult": "results", "negative_transfer": "results",
    "METHODS": "methods", "PRESETS": "methods", "DEFAULT_METHODS": "methods",
    "format_comparison": "report", "plot_negative_transfer": "report",
}

__all__ = [
    "MultiTaskNetwork",
    "SingleTaskNetworks",
    "TaskWeighting",
    "WEIGHTINGS",
    "make_weighting",
    "EF_FRACTIONS",
    "average_precision",
    "roc_auc",
    "enrichment_factor",
    "ef_key",
    "task_scores",
    *_COMPARISON,
]


def __getattr__(name: str):
    if name in _COMPARISON:
        import importlib

        return getattr(importlib.import_module(f"amtl_cvx.lbtw.{_COMPARISON[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
