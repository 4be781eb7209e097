"""The linear side of the LBTW comparison: single-task logistic regression and AMTL.

Both are chosen on the validation split's mean PR-AUC (``lam`` of single-task logistic
regression, then AMTL's ``mu`` at that ``lam``) and scored on the test split with the
networks' metrics (:func:`amtl_cvx.lbtw.scores.task_scores`). On fingerprints they see a
whitened principal-component projection (:func:`fingerprint_pca`).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from amtl_cvx.data import MultiTaskDataset
from amtl_cvx.lbtw.results import _mean
from amtl_cvx.lbtw.scores import task_scores

__all__ = ["fingerprint_pca"]


def fingerprint_pca(X_train: np.ndarray, n_components: int) -> Callable[[np.ndarray], np.ndarray]:
    """A whitened projection on the top ``n_components`` principal components of ``X_train``."""
    X = np.asarray(X_train, dtype=np.float64)
    if isinstance(n_components, bool) or int(n_components) != n_components or not 1 <= n_components <= X.shape[1]:
        raise ValueError(f"n_components must be an integer in 1..{X.shape[1]}, got {n_components!r}")
    mean = X.mean(axis=0)
    C = (X - mean).T @ (X - mean) / max(1, X.shape[0] - 1)
    vals, vecs = np.linalg.eigh(C)
    top = np.argsort(vals)[::-1][: int(n_components)]
    P = vecs[:, top] / np.sqrt(np.maximum(vals[top], 1e-12))

    def transform(Z: np.ndarray) -> np.ndarray:
        return (np.asarray(Z, dtype=np.float64) - mean) @ P

    return transform


def _linear_scores(W: np.ndarray, ds_split, T: int, Y: np.ndarray) -> np.ndarray:
    """Sigmoid scores of ``X_t w_t`` placed in an (n, T) array at task t's labelled rows."""
    P = np.zeros(Y.shape)
    for t in range(T):
        rows = np.flatnonzero(~np.isnan(Y[:, t]))
        z = ds_split.Xs[t] @ W[:, t]
        P[rows, t] = 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))
    return P


def _amtl_methods(ds: MultiTaskDataset, Y: dict, lams, mus, ridge, max_iter, want, say) -> dict:
    from amtl_cvx.algorithms.single_task import fit_single_task
    from amtl_cvx.algorithms import fit_alternating

    T = ds.train.n_tasks
    types = ("binary",) * T
    out = {}
    t0 = time.perf_counter()
    best = None
    for lam in lams:
        W = fit_single_task(ds.train, lam, "logistic")
        val = _mean(task_scores(Y["val"], _linear_scores(W, ds.val, T, Y["val"]), types)["pr_auc"])
        say(f"single-task logistic lam={lam:g}: val PR-AUC {val:.4f}")
        if best is None or val > best[0]:
            best = (val, lam, W)
    val, lam, W = best
    scores = task_scores(Y["test"], _linear_scores(W, ds.test, T, Y["test"]), types)
    out["stl_logistic"] = (scores, time.perf_counter() - t0, {"lam": lam, "val_pr_auc": val}, W)
    if "amtl" in want:
        t0 = time.perf_counter()
        best = None
        for mu in mus:
            fit = fit_alternating(ds.train, lam=lam, mu=mu, loss="logistic", ridge=ridge,
                                  max_iter=max_iter, backend="fast")
            v = _mean(task_scores(Y["val"], _linear_scores(fit.W, ds.val, T, Y["val"]), types)["pr_auc"])
            say(f"AMTL lam={lam:g} mu={mu:g}: val PR-AUC {v:.4f} ({fit.n_iter} alternations, "
                f"{int((fit.B > 0).sum())} edges)")
            if best is None or v > best[0]:
                best = (v, mu, fit)
        v, mu, fit = best
        scores = task_scores(Y["test"], _linear_scores(fit.W, ds.test, T, Y["test"]), types)
        out["amtl"] = (scores, time.perf_counter() - t0,
                       {"lam": lam, "mu": mu, "ridge": ridge, "max_iter": max_iter, "val_pr_auc": v,
                        "n_edges": int((fit.B > 0).sum())}, fit.W)
    return out

