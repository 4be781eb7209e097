"""Loaders for the original AMTL release's ``.mat`` files.

Two layouts (documented in ``../shared/data/README.md``):

- **regression** (``synthetic_dataset.mat``, ``synthetic_inbalance_k.mat``): keys
  ``train_x, train_y, val_x, val_y, test_x, test_y`` hold the rows of all tasks stacked
  task by task, and ``trindex, valindex, teindex`` the **1-based** first row of each task
  in the matching split; task t ends where task t+1 starts.
- **classification** (``usps1.mat``): the same six arrays without index keys; labels
  1..K become K one-vs-all tasks sharing the same rows (task t's label is +1 where
  ``y == t + 1`` and -1 elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from amtl_cvx.data.container import MultiTaskData, MultiTaskDataset

__all__ = ["load_release_mat", "save_release_mat"]

_SPLITS = (("train", "trindex"), ("val", "valindex"), ("test", "teindex"))


def load_release_mat(path: str | os.PathLike, *, add_bias: bool = True) -> MultiTaskDataset:
    """Load a ``.mat`` file in the original release's layout.

    Parameters
    ----------
    path : str or path-like
        The file.
    add_bias : bool, default=True
        Append a column of ones to every design matrix (the original scripts do).

    Returns
    -------
    MultiTaskDataset
        ``loss="squared"`` for the regression layout (index keys present),
        ``loss="logistic"`` with labels in {-1, +1} for the classification layout.

    Raises
    ------
    ValueError
        If the file cannot be read as MATLAB data, a key is missing, the arrays have
        inconsistent shapes, or an index is out of range or not strictly increasing.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} is not a file")
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as exc:
        raise ValueError(f"path {str(path)!r} could not be read as a MATLAB .mat file: {exc}") from exc

    def get(key: str) -> np.ndarray:
        if key not in mat:
            raise ValueError(f"{path.name}: missing key {key!r}")
        value = np.asarray(mat[key])
        if value.dtype == object or not np.issubdtype(value.dtype, np.number):
            raise ValueError(f"{path.name}: key {key!r} is not a numeric array")
        if np.iscomplexobj(value):
            raise ValueError(
                f"{path.name}: key {key!r} is complex ({value.dtype}); the release's data are real"
            )
        return value

    is_regression = any(k in mat for _, k in _SPLITS)
    arrays = {}
    for split, _ in _SPLITS:
        X = get(f"{split}_x").astype(np.float64)
        y = get(f"{split}_y").astype(np.float64)
        if X.ndim != 2:
            raise ValueError(f"{path.name}: {split}_x must be a matrix, got shape {X.shape}")
        if y.ndim == 2 and 1 in y.shape:
            y = y.reshape(-1)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(
                f"{path.name}: {split}_y has shape {get(split + '_y').shape}, "
                f"expected {X.shape[0]} entries to match {split}_x"
            )
        arrays[split] = (X, y)

    if is_regression:
        splits = {}
        n_tasks = None
        for split, key in _SPLITS:
            X, y = arrays[split]
            idx = _check_index(get(key), key, X.shape[0], path.name)
            if n_tasks is None:
                n_tasks = idx.size
            elif idx.size != n_tasks:
                raise ValueError(f"{path.name}: {key} has {idx.size} tasks, trindex has {n_tasks}")
            bounds = np.append(idx, X.shape[0])
            splits[split] = MultiTaskData(
                [X[bounds[t] : bounds[t + 1]] for t in range(n_tasks)],
                [y[bounds[t] : bounds[t + 1]] for t in range(n_tasks)],
                add_bias=add_bias,
            )
        return MultiTaskDataset(**splits, loss="squared", name=path.stem)

    labels = np.unique(arrays["train"][1])
    if labels.size < 2 or np.any(labels != np.round(labels)) or labels.min() < 1:
        raise ValueError(
            f"{path.name}: classification labels must be integers 1..K, got {labels[:10]}"
        )
    classes = np.arange(1, int(labels.max()) + 1)
    splits = {}
    for split, _ in _SPLITS:
        X, y = arrays[split]
        if not np.all(np.isin(y, classes)):
            raise ValueError(f"{path.name}: {split}_y holds labels outside 1..{classes[-1]}")
        splits[split] = MultiTaskData(
            [X] * classes.size,
            [np.where(y == k, 1.0, -1.0) for k in classes],
            add_bias=add_bias,
            task_names=[f"class{k}" for k in classes],
        )
    return MultiTaskDataset(**splits, loss="logistic", name=path.stem)


def save_release_mat(dataset: MultiTaskDataset, path: str | os.PathLike) -> None:
    """Write a regression data set in the release's layout (read back by :func:`load_release_mat`).

    The way to run ``amtl-cvx fit FILE`` or ``amtl-cvx verify FILE`` on one's own data
    (or on a generated data set such as :func:`amtl_cvx.make_tabular_tasks`).

    Parameters
    ----------
    dataset : MultiTaskDataset
        A regression data set (``loss="squared"``). When its splits have
        ``add_bias=True`` the bias column (the last feature) is dropped, since
        :func:`load_release_mat` appends it again by default.
    path : str or path-like
        The ``.mat`` file to write (overwritten).

    Raises
    ------
    ValueError
        For a classification data set (the release's classification layout is one
        multi-class problem, not a set of binary tasks), or a bad ``dataset``.
    """
    from scipy.io import savemat

    if not isinstance(dataset, MultiTaskDataset):
        raise ValueError(f"dataset must be a MultiTaskDataset, got {type(dataset).__name__}")
    if dataset.loss != "squared":
        raise ValueError(
            f"dataset must be a regression data set (loss='squared'), got loss={dataset.loss!r}: "
            "the release's classification layout is one multi-class problem"
        )
    arrays: dict[str, np.ndarray] = {}
    for split, key in _SPLITS:
        data = getattr(dataset, split)
        Xs = [X[:, :-1] if data.add_bias else X for X in data.Xs]
        arrays[f"{split}_x"] = np.vstack(Xs)
        arrays[f"{split}_y"] = np.concatenate(data.ys)[:, None]
        arrays[key] = (1 + np.concatenate([[0], np.cumsum(data.n_samples)[:-1]]))[None, :].astype(np.float64)
    savemat(Path(path), arrays)


def _check_index(raw: np.ndarray, key: str, n_rows: int, fname: str) -> np.ndarray:
    """Turn a 1-based start index into 0-based, checking range and monotonicity."""
    if raw.size == 0:
        raise ValueError(f"{fname}: {key} is empty")
    idx = raw.reshape(-1).astype(np.int64)
    if np.any(idx != raw.reshape(-1)):
        raise ValueError(f"{fname}: {key} must hold integers")
    if idx[0] != 1:
        raise ValueError(f"{fname}: {key} must start at row 1 (1-based), got {idx[0]}")
    if np.any(idx < 1) or np.any(idx > n_rows):
        raise ValueError(f"{fname}: {key} has an index out of range 1..{n_rows}")
    if np.any(np.diff(idx) <= 0):
        raise ValueError(f"{fname}: {key} must be strictly increasing (no empty task)")
    return idx - 1
