"""Per-task scores of the LBTW comparison: PR-AUC, ROC-AUC and the enrichment factor.

The metrics of the LBTW release (``evaluation.py``): scikit-learn's
``average_precision_score`` and ``roc_auc_score`` and the release's enrichment factor,
each task scored on its labelled rows (:func:`task_scores`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from amtl_cvx._validation import check_scalar

__all__ = ["EF_FRACTIONS", "average_precision", "roc_auc", "enrichment_factor", "ef_key", "task_scores"]

# --------------------------------------------------------------------------- metrics
#: Fractions of the enrichment factor in the LBTW release (``json/*.json``,
#: ``"enrichment_factor": {"ratio_list": [0.02, 0.01, 0.0015, 0.001]}``).
EF_FRACTIONS = (0.02, 0.01, 0.0015, 0.001)


def _binary_pair(y_true, score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true and score must have the same length, got {y.size} and {s.size}")
    return y > 0.5, s


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """Average precision: scikit-learn's ``average_precision_score``; ``NaN`` without a positive.

    ``sum_k (R_k - R_{k-1}) P_k`` over the distinct score thresholds, highest first: the
    PR-AUC of the LBTW release (``evaluation.py``, ``precision_auc_single``).
    """
    from sklearn.metrics import average_precision_score

    y, s = _binary_pair(y_true, score)
    if y.size == 0 or not y.any():
        return float("nan")
    return float(average_precision_score(y, s))


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: scikit-learn's ``roc_auc_score``; ``NaN`` for one class.

    The ROC-AUC of the LBTW release (``evaluation.py``, ``roc_auc_single``).
    """
    from sklearn.metrics import roc_auc_score

    y, s = _binary_pair(y_true, score)
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, s))


def enrichment_factor(y_true: np.ndarray, score: np.ndarray, fraction: float) -> float:
    """Enrichment factor at ``fraction``, as in the LBTW release (``evaluation.py``).

    With ``n`` rows, ``k = int(n * fraction)`` rows with the highest scores are
    selected; ``EF = (positives among them) / (all positives) / fraction``. Ties are
    broken as a stable sort of the scores, reversed (the release uses NumPy's default
    sort, whose order among equal scores is unspecified). ``NaN`` without a positive
    (the release reports ``'ND'``).
    """
    y, s = _binary_pair(y_true, score)
    fraction = check_scalar(fraction, "fraction", strict=True)
    if fraction > 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    n_act = int(y.sum())
    if n_act == 0:
        return float("nan")
    k = int(y.size * fraction)
    top = np.argsort(s, kind="stable")[::-1][:k]
    return float(y[top].sum() / n_act / fraction)


def ef_key(fraction: float) -> str:
    """The key of :func:`task_scores` for the enrichment factor at ``fraction``."""
    return f"ef{fraction:g}"


def task_scores(
    Y: np.ndarray, P: np.ndarray, task_types: Sequence[str], ef_fractions: Sequence[float] = EF_FRACTIONS
) -> dict[str, np.ndarray]:
    """Per-task metrics of predictions ``P`` against labels ``Y`` (NaN = missing).

    Each task is scored on its labelled rows only (the release's ``sample_weight == 1``).

    Returns
    -------
    dict
        ``"pr_auc"``, ``"roc_auc"`` (binary tasks; NaN elsewhere or when a class is
        absent), ``ef_key(f)`` for every ``f`` in ``ef_fractions`` (binary tasks, see
        :func:`enrichment_factor`), ``"rmse"`` (regression tasks; NaN elsewhere) and
        ``"n"`` (labelled rows), each of shape (T,).
    """
    Y = np.asarray(Y, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    if P.ndim == 1:
        P = P[:, None]
    if Y.shape != P.shape:
        raise ValueError(f"Y and P must have the same shape, got {Y.shape} and {P.shape}")
    T = Y.shape[1]
    keys = ("pr_auc", "roc_auc", "rmse") + tuple(ef_key(f) for f in ef_fractions)
    out = {k: np.full(T, np.nan) for k in keys}
    out["n"] = np.zeros(T, dtype=np.int64)
    for t in range(T):
        m = ~np.isnan(Y[:, t])
        out["n"][t] = m.sum()
        if not m.any():
            continue
        if task_types[t] == "binary":
            out["pr_auc"][t] = average_precision(Y[m, t], P[m, t])
            out["roc_auc"][t] = roc_auc(Y[m, t], P[m, t])
            for f in ef_fractions:
                out[ef_key(f)][t] = enrichment_factor(Y[m, t], P[m, t], f)
        else:
            out["rmse"][t] = float(np.sqrt(np.mean((Y[m, t] - P[m, t]) ** 2)))
    return out
