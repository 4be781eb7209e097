"""Seeded generators of multi-task problems with a planted, directed transfer graph.

The planted model: ``n_sources`` *source* tasks have i.i.d. Gaussian parameters and
low noise; every other (*derived*) task is a nonnegative combination of
``n_parents`` sources, ``w_t = W B_true[:, t]``, observed with high noise. Transfer
should therefore flow from the sources (low loss) to the derived tasks (high loss):
``B_true[s, t] > 0`` only for a source s and a derived t.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from amtl_cvx._validation import check_scalar
from amtl_cvx.data.container import MultiTaskData, MultiTaskDataset

__all__ = ["make_regression_tasks", "make_classification_tasks", "make_tabular_tasks", "IMBALANCED_SIZES"]

#: Training rows per task of the release's imbalanced design (12 tasks).
IMBALANCED_SIZES = (500, 500, 500, 5, 5, 5, 500, 500, 500, 5, 5, 5)


def _planted_graph(
    rng: np.random.Generator, n_tasks: int, n_features: int, n_sources: int, n_parents: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not 1 <= n_sources < n_tasks:
        raise ValueError(f"n_sources must be in 1..{n_tasks - 1}, got {n_sources}")
    if not 1 <= n_parents <= n_sources:
        raise ValueError(f"n_parents must be in 1..n_sources={n_sources}, got {n_parents}")
    # Sources and derived tasks are interleaved so that task order carries no hint.
    is_source = np.zeros(n_tasks, dtype=bool)
    is_source[rng.choice(n_tasks, size=n_sources, replace=False)] = True
    sources = np.flatnonzero(is_source)
    W = np.zeros((n_features, n_tasks))
    W[:, sources] = rng.standard_normal((n_features, n_sources))
    B = np.zeros((n_tasks, n_tasks))
    for t in np.flatnonzero(~is_source):
        parents = rng.choice(sources, size=n_parents, replace=False)
        B[parents, t] = rng.uniform(0.5, 1.0, size=n_parents)
        W[:, t] = W @ B[:, t]
    return W, B, is_source


def _sizes(n_samples: int | Sequence[int], n_tasks: int, name: str) -> np.ndarray:
    sizes = np.broadcast_to(np.asarray(n_samples), (n_tasks,)) if np.ndim(n_samples) == 0 else np.asarray(n_samples)
    if sizes.shape != (n_tasks,) or np.any(sizes < 1) or np.any(sizes != np.round(sizes)):
        raise ValueError(f"{name} must be a positive integer or {n_tasks} positive integers")
    return sizes.astype(np.int64)


@dataclass(frozen=True)
class _Design:
    """The planted design of :func:`make_regression_tasks` and :func:`make_classification_tasks`
    (their parameters, unchecked)."""

    n_tasks: int
    n_features: int
    n_samples: int | Sequence[int]
    n_val: int | Sequence[int]
    n_test: int | Sequence[int]
    n_sources: int | None
    n_parents: int
    noise_source: float
    noise_derived: float
    add_bias: bool


def _make(kind: str, design: _Design, random_state: int | None) -> MultiTaskDataset:
    n_tasks, n_features, n_samples = design.n_tasks, design.n_features, design.n_samples
    n_val, n_test, n_sources, n_parents = design.n_val, design.n_test, design.n_sources, design.n_parents
    noise_source, noise_derived, add_bias = design.noise_source, design.noise_derived, design.add_bias
    if int(n_tasks) != n_tasks or n_tasks < 2:
        raise ValueError(f"n_tasks must be an integer >= 2, got {n_tasks}")
    if int(n_features) != n_features or n_features < 1:
        raise ValueError(f"n_features must be a positive integer, got {n_features}")
    noise_source = check_scalar(noise_source, "noise_source")
    noise_derived = check_scalar(noise_derived, "noise_derived")
    rng = np.random.default_rng(random_state)
    n_sources = max(1, n_tasks // 3) if n_sources is None else n_sources
    W, B, is_source = _planted_graph(rng, n_tasks, n_features, n_sources, n_parents)
    noise = np.where(is_source, noise_source, noise_derived)
    sizes = {
        "train": _sizes(n_samples, n_tasks, "n_samples"),
        "val": _sizes(n_val, n_tasks, "n_val"),
        "test": _sizes(n_test, n_tasks, "n_test"),
    }
    splits = {}
    for split, n in sizes.items():
        Xs, ys = [], []
        for t in range(n_tasks):
            X = rng.standard_normal((n[t], n_features))
            z = X @ W[:, t] + noise[t] * rng.standard_normal(n[t])
            Xs.append(X)
            ys.append(z if kind == "squared" else np.where(z >= 0, 1.0, -1.0))
        splits[split] = MultiTaskData(Xs, ys, add_bias=add_bias)
    if add_bias:
        W = np.vstack([W, np.zeros((1, n_tasks))])
    return MultiTaskDataset(
        **splits,
        loss=kind,
        W_true=W,
        B_true=B,
        name=f"planted-{kind}-T{n_tasks}-d{n_features}",
    )


def make_regression_tasks(
    n_tasks: int = 12,
    n_features: int = 20,
    n_samples: int | Sequence[int] = 30,
    *,
    n_val: int | Sequence[int] = 50,
    n_test: int | Sequence[int] = 50,
    n_sources: int | None = None,
    n_parents: int = 2,
    noise_source: float = 0.1,
    noise_derived: float = 2.0,
    add_bias: bool = False,
    random_state: int | None = 0,
) -> MultiTaskDataset:
    """Regression tasks with a planted sparse, directed transfer graph.

    ``y_t = X_t w_t + noise_t * e``, ``X_t`` and ``e`` standard normal. Sources
    (``n_sources``, default ``n_tasks // 3``) have i.i.d. N(0, I) parameters and noise
    ``noise_source``; each derived task is ``w_t = sum_s B_true[s, t] w_s`` over
    ``n_parents`` sources with weights in U(0.5, 1), and noise ``noise_derived``.

    Parameters
    ----------
    n_tasks, n_features : int
    n_samples : int or sequence of int, default=30
        Training rows per task; a sequence gives an imbalanced design, for example
        :data:`IMBALANCED_SIZES` (500 or 5 rows).
    n_val, n_test : int or sequence of int, default=50
        Validation and test rows per task.
    n_sources, n_parents : int
    noise_source, noise_derived : float
        Noise standard deviations of the two kinds of task.
    add_bias : bool, default=False
        Append a ones column (the planted model has no intercept).
    random_state : int or None, default=0

    Returns
    -------
    MultiTaskDataset
        With ``W_true`` (d x T) and ``B_true`` (T x T).
    """
    design = _Design(n_tasks, n_features, n_samples, n_val, n_test, n_sources, n_parents,
                     noise_source, noise_derived, add_bias)
    return _make("squared", design, random_state)


def make_classification_tasks(
    n_tasks: int = 12,
    n_features: int = 20,
    n_samples: int | Sequence[int] = 60,
    *,
    n_val: int | Sequence[int] = 100,
    n_test: int | Sequence[int] = 100,
    n_sources: int | None = None,
    n_parents: int = 2,
    noise_source: float = 0.5,
    noise_derived: float = 4.0,
    add_bias: bool = False,
    random_state: int | None = 0,
) -> MultiTaskDataset:
    """Binary tasks (labels in {-1, +1}) with a planted transfer graph.

    ``y_t = sign(X_t w_t + noise_t * e)``, parameters planted as in
    :func:`make_regression_tasks`; the derived tasks' labels are noisier.
    """
    design = _Design(n_tasks, n_features, n_samples, n_val, n_test, n_sources, n_parents,
                     noise_source, noise_derived, add_bias)
    return _make("logistic", design, random_state)


def make_tabular_tasks(
    n_tasks: int = 140,
    *,
    group_sizes: Sequence[int] = (6, 5, 4),
    n_integer: int = 2,
    n_indicators: int = 10,
    min_samples: int = 13,
    max_samples: int = 150,
    n_val: int = 20,
    n_test: int = 20,
    n_clusters: int = 5,
    random_state: int | None = 0,
) -> MultiTaskDataset:
    """Regression tasks shaped like a real tabular data set, with a bias column.

    Built to break solvers the way real data does (the planted generators above have
    i.i.d. Gaussian, full-rank designs):

    - **one-hot groups** (``group_sizes``): each row has exactly one 1 per group, so
      every group's columns sum to the bias column (exact collinearity in every task);
    - **integer features** (``n_integer``) in the tens (ages, counts: 18..80 and
      Poisson(15));
    - **rare 0/1 indicators** (``n_indicators``) with prevalences from 0.5 down to
      0.005 (standard deviations down to about 0.07), often all zero in a small task;
    - **imbalanced, small tasks**: ``n_t`` log-uniform in ``[min_samples,
      max_samples]``; with the defaults about half the tasks have fewer rows than the
      28 columns (15 one-hot + 2 integer + 10 indicators + bias);
    - related tasks: ``n_clusters`` cluster prototypes plus a shared component, each
      task a perturbed prototype, targets in the tens, noise standard deviation per
      task between 2 and 12.

    Parameters
    ----------
    n_tasks : int, default=140
    group_sizes : sequence of int, default=(6, 5, 4)
        Sizes of the one-hot groups (each at least 2).
    n_integer, n_indicators : int
    min_samples, max_samples : int
        Range of the training rows per task (log-uniform).
    n_val, n_test : int
        Validation and test rows per task.
    n_clusters : int
    random_state : int or None, default=0

    Returns
    -------
    MultiTaskDataset
        ``add_bias`` is set on every split (the ones column is the last feature);
        ``W_true`` holds the generating parameters (bias last), ``B_true`` is None.
    """
    if int(n_tasks) != n_tasks or n_tasks < 2:
        raise ValueError(f"n_tasks must be an integer >= 2, got {n_tasks}")
    groups = [int(g) for g in group_sizes]
    if any(g < 2 for g in groups):
        raise ValueError(f"group_sizes must be integers >= 2, got {tuple(group_sizes)}")
    for name, v in (("n_integer", n_integer), ("n_indicators", n_indicators), ("n_clusters", n_clusters)):
        if int(v) != v or v < (1 if name == "n_clusters" else 0):
            raise ValueError(f"{name} must be a nonnegative integer (n_clusters positive), got {v}")
    if not 1 <= min_samples <= max_samples:
        raise ValueError(f"need 1 <= min_samples <= max_samples, got {min_samples}, {max_samples}")
    rng = np.random.default_rng(random_state)
    d_raw = sum(groups) + n_integer + n_indicators
    prevalence = np.geomspace(0.5, 0.005, n_indicators) if n_indicators else np.zeros(0)
    # Parameters: shared + cluster prototype + task deviation; bias around 30.
    scale = np.concatenate([
        np.full(sum(groups), 4.0), np.full(n_integer, 0.3), np.full(n_indicators, 6.0)
    ])
    shared = scale * rng.standard_normal(d_raw)
    protos = scale * rng.standard_normal((n_clusters, d_raw))
    cluster = rng.integers(n_clusters, size=n_tasks)
    W = (shared + protos[cluster] + 0.3 * scale * rng.standard_normal((n_tasks, d_raw))).T
    bias = 30.0 + 5.0 * rng.standard_normal(n_tasks)
    noise = rng.uniform(2.0, 12.0, size=n_tasks)
    n_train = np.exp(rng.uniform(np.log(min_samples), np.log(max_samples + 1), size=n_tasks)).astype(np.int64)
    n_train = np.clip(n_train, min_samples, max_samples)

    def rows(n: int) -> np.ndarray:
        cols = []
        for g in groups:
            onehot = np.zeros((n, g))
            onehot[np.arange(n), rng.integers(g, size=n)] = 1.0
            cols.append(onehot)
        ints = [rng.integers(18, 81, size=n), rng.poisson(15.0, size=n)]
        cols += [ints[k % 2][:, None].astype(np.float64) for k in range(n_integer)]
        cols.append((rng.random((n, n_indicators)) < prevalence).astype(np.float64))
        return np.hstack(cols)

    splits = {}
    for split, sizes in (("train", n_train), ("val", np.full(n_tasks, n_val)), ("test", np.full(n_tasks, n_test))):
        Xs, ys = [], []
        for t in range(n_tasks):
            X = rows(int(sizes[t]))
            Xs.append(X)
            ys.append(X @ W[:, t] + bias[t] + noise[t] * rng.standard_normal(X.shape[0]))
        splits[split] = MultiTaskData(Xs, ys, add_bias=True)
    return MultiTaskDataset(
        **splits,
        loss="squared",
        W_true=np.vstack([W, bias[None, :]]),
        B_true=None,
        name=f"tabular-T{n_tasks}-d{d_raw + 1}",
    )
