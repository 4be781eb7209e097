"""The registry of the multi-task baselines: name -> fit function, objective, default grid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from amtl_cvx.baselines._common import _check_data
from amtl_cvx.baselines.convex import fit_l21, fit_mean_regularized, fit_pooled, fit_trace_norm
from amtl_cvx.baselines.gomtl import GOMTLFit, fit_gomtl
from amtl_cvx.baselines.objectives import (
    gomtl_objective,
    l21_objective,
    mean_regularized_objective,
    pooled_objective,
    trace_norm_objective,
)
from amtl_cvx.data import MultiTaskData
from solvers import baselines as fast

__all__ = ["MultiTaskBaseline", "MULTITASK_BASELINES"]


@dataclass(frozen=True)
class MultiTaskBaseline:
    """One baseline of :data:`MULTITASK_BASELINES`.

    Attributes
    ----------
    name : str
    function : callable
        ``function(data, *params, loss, backend=..., solver=...)``: the fit function
        (:func:`fit_gomtl` returns a :class:`GOMTLFit`, the others ``W``).
    params : tuple of str
        Hyperparameter names: ``function``'s positional hyperparameters in order, then
        those in ``keyword_params``.
    objective : callable
        The numpy objective, ``objective(W, data, **params, loss=...)`` (GO-MTL:
        ``objective(L, S, data, ...)``).
    grid : mapping
        Default values per hyperparameter; for the names in ``relative`` they are
        multiples of ``lambda_max(data)`` (see :meth:`param_grid`).
    keyword_params : tuple of str
        Hyperparameters ``function`` takes by keyword, with a default (``rho`` of the
        norms).
    relative : tuple of str
        Hyperparameters whose grid is relative to the data.
    penalty : str
        For ``relative``: the penalty of :func:`solvers.baselines.lambda_max` giving the
        scale (``"l1"`` for GO-MTL: the largest entry of the gradient at ``W = 0``).
    description : str
    warm_start : str, optional
        The hyperparameter along which a grid is walked with warm starts (``function``
        takes ``W0``; :func:`amtl_cvx.model_selection.validation_split.select_baseline` fits decreasing values
        from the previous ``W``).
    """

    name: str
    function: Callable[..., Any]
    params: tuple[str, ...]
    objective: Callable[..., float]
    grid: Mapping[str, tuple[float, ...]]
    keyword_params: tuple[str, ...] = ()
    relative: tuple[str, ...] = ()
    penalty: str = ""
    description: str = ""
    warm_start: str | None = None

    def param_grid(self, data: MultiTaskData | None = None, loss: str = "squared") -> dict[str, list]:
        """The default grid (a ``ParameterGrid``-style dict of lists).

        Parameters
        ----------
        data : MultiTaskData, optional
            Needed when the grid has relative entries (the norms, GO-MTL's ``mu``);
            GO-MTL's ``n_latent`` values are clipped to ``1..d``.
        loss : {"squared", "logistic"}
        """
        grid = {k: list(v) for k, v in self.grid.items()}
        if self.relative or "n_latent" in grid:
            if data is None:
                raise ValueError(f"the {self.name} grid is relative to the data: pass data")
            data = _check_data(data, loss)
        if self.relative:
            scale = fast.lambda_max(data.Xs, data.ys, penalty=self.penalty, loss=loss)
            scale = scale if scale > 0 else 1.0
            for key in self.relative:
                grid[key] = [v * scale for v in grid[key]]
        if "n_latent" in grid:
            grid["n_latent"] = [k for k in grid["n_latent"] if k <= data.n_features] or [data.n_features]
        return grid

    def fit(self, data: MultiTaskData, loss: str = "squared", *, backend: str = "fast",
            solver: str | None = None, W0: np.ndarray | None = None, **params: Any) -> np.ndarray:
        """``W`` (d x T) of this baseline with hyperparameters ``params`` (by name);
        ``W0``: a warm start of the fast backend (baselines with ``warm_start`` only)."""
        if W0 is not None:
            if self.warm_start is None:
                raise ValueError(f"{self.name} takes no warm start W0")
            params["W0"] = W0
        missing = [p for p in self.params if p not in params and p not in self.keyword_params]
        if missing:
            raise ValueError(f"{self.name} needs the hyperparameters {missing}")
        unknown = [p for p in params if p not in self.params and p != "W0"]
        if unknown:
            raise ValueError(f"{self.name} has no hyperparameters {unknown} (it has {list(self.params)})")
        positional = [params.pop(p) for p in self.params if p not in self.keyword_params]
        result = self.function(data, *positional, loss, backend=backend, solver=solver, **params)
        return result.W if isinstance(result, GOMTLFit) else result


_RIDGE_GRID = tuple(float(v) for v in np.logspace(-5, 2, 15))

#: The baselines by name (see :class:`MultiTaskBaseline`).
MULTITASK_BASELINES: dict[str, MultiTaskBaseline] = {
    b.name: b
    for b in (
        MultiTaskBaseline(
            "pooled", fit_pooled, ("lam",), pooled_objective, {"lam": _RIDGE_GRID},
            description="one ridge / L2-logistic model for all tasks",
        ),
        MultiTaskBaseline(
            "mean_regularized", fit_mean_regularized, ("lam", "rho"), mean_regularized_objective,
            {"lam": tuple(float(v) for v in np.logspace(-4, 2, 7)), "rho": tuple(float(v) for v in np.logspace(-5, 1, 7))},
            description="tasks pulled towards their mean (Evgeniou & Pontil 2004)",
        ),
        MultiTaskBaseline(
            "l21", fit_l21, ("lam", "rho"), l21_objective,
            {"lam": tuple(float(v) for v in np.logspace(-4, 0, 13)), "rho": (0.0,)},
            keyword_params=("rho",), relative=("lam",), penalty="l21", warm_start="lam",
            description="joint feature selection, l2,1 norm of the rows of W",
        ),
        MultiTaskBaseline(
            "trace_norm", fit_trace_norm, ("lam", "rho"), trace_norm_objective,
            {"lam": tuple(float(v) for v in np.logspace(-4, 0, 13)), "rho": (0.0,)},
            keyword_params=("rho",), relative=("lam",), penalty="trace", warm_start="lam",
            description="low rank, nuclear norm of W",
        ),
        MultiTaskBaseline(
            "gomtl", fit_gomtl, ("n_latent", "mu", "lam"), gomtl_objective,
            {"n_latent": (1, 2, 3, 5, 8), "mu": tuple(float(v) for v in np.logspace(-3, 0, 7)), "lam": (1e-3, 1e-1)},
            relative=("mu",), penalty="l1",
            description="W = L S, sparse codes over a latent basis (Kumar & Daume III 2012)",
        ),
    )
}
