"""One network per task: the single-task reference of the LBTW comparison.

Each task's network is a one-head :class:`amtl_cvx.lbtw.network.MultiTaskNetwork` on the
rows labelled for it, trained in this process or in joblib's worker processes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from joblib import Parallel, delayed

from amtl_cvx._progress import progress_bar
from amtl_cvx.lbtw.model import _as_input, _as_labels
from amtl_cvx.lbtw.network import MultiTaskNetwork
from amtl_cvx.lbtw.scores import task_scores

__all__ = ["SingleTaskNetworks"]


def _fit_one(task_type: str, seed: np.random.SeedSequence, network_params: dict, args: tuple) -> "MultiTaskNetwork":
    """One task's network of :class:`SingleTaskNetworks` (a joblib job)."""
    net = MultiTaskNetwork(task_types=task_type, random_state=np.random.default_rng(seed), **network_params)
    return net.fit(*args)


class SingleTaskNetworks:
    """One network per task (same architecture as the multi-task one), each on its own rows.

    Task t's network is a one-head :class:`MultiTaskNetwork` trained on the rows that
    carry a label for t, early-stopped on its own validation score; seeds are drawn from
    ``random_state`` (one independent stream per task).

    Parameters
    ----------
    tasks : sequence of int, optional
        Train only these tasks (predictions of the others are NaN).
    progress : bool, default=False
        Progress bar over tasks.
    n_jobs : int, optional
        Networks trained at once, in joblib's worker processes (``None``: one at a time
        in this process; ``-1``: one per core). Each network has its own seed, so the
        result does not depend on ``n_jobs``.
    **network_params
        Passed to :class:`MultiTaskNetwork` (``weighting`` is not allowed).
    """

    def __init__(self, *, tasks: Sequence[int] | None = None, random_state: int | None = None,
                 progress: bool = False, n_jobs: int | None = None, **network_params) -> None:
        if "weighting" in network_params or "weighting_params" in network_params:
            raise ValueError("single-task networks take no weighting")
        if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0):
            raise ValueError(f"n_jobs must be None or a nonzero integer, got {n_jobs!r}")
        self.tasks = None if tasks is None else [int(t) for t in tasks]
        self.random_state = random_state
        self.progress = bool(progress)
        self.n_jobs = n_jobs
        self.network_params = dict(network_params)
        task_types = self.network_params.pop("task_types", "binary")
        self.task_types = task_types
        MultiTaskNetwork(**self.network_params)  # validate now

    def fit(self, X, Y, X_val=None, Y_val=None) -> "SingleTaskNetworks":
        """Fit one network per task on its labelled rows (validation likewise)."""
        dtype = np.dtype(self.network_params.get("dtype", np.float64)).type
        sparse_input = self.network_params.get("sparse_input", "auto")
        X = _as_input(X, "X", dtype, sparse_input)
        Y = _as_labels(Y, "Y", X.shape[0], None, np.float64)
        T = Y.shape[1]
        types = (self.task_types,) * T if isinstance(self.task_types, str) else tuple(self.task_types)
        if len(types) != T:
            raise ValueError(f"task_types has {len(types)} entries for {T} tasks")
        if X_val is not None:
            X_val = _as_input(X_val, "X_val", dtype, sparse_input)
            Y_val = _as_labels(Y_val, "Y_val", X_val.shape[0], T, np.float64)
        tasks = list(range(T)) if self.tasks is None else self.tasks
        if any(t < 0 or t >= T for t in tasks):
            raise ValueError(f"tasks must be indices in 0..{T - 1}")
        seeds = np.random.SeedSequence(self.random_state).spawn(T)
        self.networks_: dict[int, MultiTaskNetwork] = {}
        self.types_ = types
        self.n_tasks_ = T
        for t in tasks:
            if not np.any(~np.isnan(Y[:, t])):
                raise ValueError(f"task {t} has no labelled training row")

        def job(t: int):
            rows = np.flatnonzero(~np.isnan(Y[:, t]))
            args = (X[rows], Y[rows, t])
            if X_val is not None:
                vr = np.flatnonzero(~np.isnan(Y_val[:, t]))
                args += (X_val[vr], Y_val[vr, t])
            return delayed(_fit_one)(types[t], seeds[t], self.network_params, args)

        with progress_bar(self.progress, len(tasks), "single-task networks") as bar:
            if self.n_jobs is None or self.n_jobs == 1:
                nets = []
                for t in tasks:
                    fn, fargs, fkwargs = job(t)
                    nets.append(fn(*fargs, **fkwargs))
                    bar.update(1)
            else:
                nets = []
                for net in Parallel(n_jobs=self.n_jobs, return_as="generator")(job(t) for t in tasks):
                    nets.append(net)
                    bar.update(1)
        self.networks_ = dict(zip(tasks, nets))
        return self

    def predict(self, X) -> np.ndarray:
        """Predictions of every task's network, shape (n, T) (NaN for untrained tasks)."""
        if not hasattr(self, "networks_"):
            raise ValueError("call fit first")
        P = np.full((X.shape[0], self.n_tasks_), np.nan)
        for t, net in self.networks_.items():
            P[:, t] = net.predict(X)[:, 0]
        return P

    def evaluate(self, X, Y) -> dict[str, np.ndarray]:
        """Per-task metrics (see :func:`task_scores`); untrained tasks give NaN."""
        Y = _as_labels(Y, "Y", X.shape[0], self.n_tasks_, np.float64)
        P = self.predict(X)
        Y = np.where(np.isnan(P), np.nan, Y)
        return task_scores(Y, np.nan_to_num(P), self.types_)
