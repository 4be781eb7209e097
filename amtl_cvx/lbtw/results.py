"""Results of the LBTW comparison: per-method scores and negative transfer.

A task *loses* (negative transfer) when its multi-task score minus its single-task score
is below 0 (Liu, Liang & Gitter, AAAI 2019); :func:`negative_transfer` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["MethodResult", "Comparison", "negative_transfer"]


@dataclass
class MethodResult:
    """Test scores of one method.

    Attributes
    ----------
    key, label : str
    reference : str or None
        Key of the single-task method it is compared with.
    scores : dict of numpy.ndarray
        Per-task test metrics (``"pr_auc"``, ``"roc_auc"``, ...; NaN where undefined or
        not evaluated).
    seconds : float
        Wall time of fitting (including its validation-based choices).
    params : dict
        Chosen hyperparameters and notes.
    extra : dict
        Scalar test metrics (e.g. ``"ova_accuracy"`` on USPS).
    """

    key: str
    label: str
    reference: str | None
    scores: dict
    seconds: float
    params: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


@dataclass
class Comparison:
    """All methods on one data set.

    Attributes
    ----------
    name : str
    task_names : tuple of str
    results : dict of MethodResult
        By method key, in the order run.
    metric : str
        The metric negative transfer is measured on (``"pr_auc"``).
    """

    name: str
    task_names: tuple
    results: dict
    metric: str = "pr_auc"

    def negative_transfer(self, key: str, metric: str | None = None) -> dict[str, Any]:
        """:func:`negative_transfer` of method ``key`` against its reference."""
        res = self.results[key]
        if res.reference is None or res.reference not in self.results:
            raise ValueError(f"method {key!r} has no single-task reference in this comparison")
        metric = metric or self.metric
        return negative_transfer(res.scores[metric], self.results[res.reference].scores[metric],
                                 higher_is_better=metric != "rmse")


def negative_transfer(
    multi: np.ndarray, single: np.ndarray, *, higher_is_better: bool = True
) -> dict[str, Any]:
    """Per-task multi-task score minus single-task score, and the tasks that lose.

    Parameters
    ----------
    multi, single : array_like, shape (T,)
        Per-task scores; tasks where either is NaN are not compared.
    higher_is_better : bool, default=True
        False for errors (RMSE): the difference is then ``single - multi`` so that a
        negative difference always means the multi-task model is worse.

    Returns
    -------
    dict
        ``"difference"`` (T,) (NaN where not compared), ``"negative"`` indices of tasks
        with a difference < 0, ``"n_negative"``, ``"n_compared"``.
    """
    multi = np.asarray(multi, dtype=np.float64)
    single = np.asarray(single, dtype=np.float64)
    if multi.shape != single.shape or multi.ndim != 1:
        raise ValueError(f"multi and single must be vectors of the same length, got {multi.shape} and {single.shape}")
    diff = multi - single if higher_is_better else single - multi
    ok = ~np.isnan(diff)
    neg = np.flatnonzero(ok & (np.where(ok, diff, 0.0) < 0))
    return {"difference": diff, "negative": neg, "n_negative": int(neg.size), "n_compared": int(ok.sum())}


def _mean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")
