"""Per-task losses and the input checks shared by the fast solvers.

Every loss is a *mean* over the task's rows (see ``docs/objective.md``):

- squared:  ``L(w) = 1/(2 n) * ||y - X w||^2``
- logistic: ``L(w) = 1/n * sum_i log(1 + exp(-y_i * x_i' w))``, labels in {-1, +1}

Both are twice differentiable with Hessian ``X' diag(D) X / n`` where ``D`` is
returned by :meth:`Loss.hessian_weights` (all ones for the squared loss,
``sigma(m) * sigma(-m)`` with margins ``m = y * X w`` for the logistic loss).

This module uses numpy and scipy only.
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

__all__ = [
    "Loss",
    "SquaredLoss",
    "LogisticLoss",
    "LOSSES",
    "get_loss",
]


class Loss:
    """Base class of a mean per-task loss ``L(w)`` of a linear model ``X w``.

    Subclasses implement :meth:`value_and_gradient` and :meth:`hessian_weights`.
    All methods take the task's design ``X`` (n x d), targets ``y`` (n,) and a
    weight vector ``w`` (d,).
    """

    name: str = ""

    def check_labels(self, y: np.ndarray, name: str) -> None:
        """Raise ``ValueError`` naming ``name`` if ``y`` is not valid for this loss."""

    def value(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
        """Return ``L(w)``."""
        return self.value_and_gradient(X, y, w)[0]

    def gradient(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Return ``grad L(w)`` (shape (d,))."""
        return self.value_and_gradient(X, y, w)[1]

    def value_and_gradient(
        self, X: np.ndarray, y: np.ndarray, w: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Return ``(L(w), grad L(w))``."""
        raise NotImplementedError

    def hessian_weights(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Return ``D`` (shape (n,)) such that ``Hess L(w) = X' diag(D) X / n``."""
        raise NotImplementedError

    def hessian(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Return the dense Hessian ``X' diag(D) X / n`` (d x d)."""
        D = self.hessian_weights(X, y, w)
        return (X.T @ (D[:, None] * X)) / X.shape[0]

    def hessp(
        self, X: np.ndarray, y: np.ndarray, w: np.ndarray, v: np.ndarray
    ) -> np.ndarray:
        """Return the Hessian-vector product ``Hess L(w) v``."""
        D = self.hessian_weights(X, y, w)
        return X.T @ (D * (X @ v)) / X.shape[0]


class SquaredLoss(Loss):
    """``L(w) = 1/(2 n) * ||y - X w||^2``; gradient ``X'(X w - y) / n``."""

    name = "squared"

    def value_and_gradient(
        self, X: np.ndarray, y: np.ndarray, w: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Return ``(L(w), X'(X w - y) / n)``."""
        n = X.shape[0]
        r = X @ w - y
        return float(r @ r) / (2.0 * n), X.T @ r / n

    def hessian_weights(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Return ones: the Hessian is ``X'X / n``."""
        return np.ones(X.shape[0])


class LogisticLoss(Loss):
    """``L(w) = mean(log(1 + exp(-y * X w)))`` with ``y`` in {-1, +1}.

    Gradient ``-X'(y * sigma(-m)) / n`` and Hessian weights ``sigma(m) sigma(-m)``
    with margins ``m = y * X w``; evaluated stably with ``logaddexp`` / ``expit``.
    """

    name = "logistic"

    def check_labels(self, y: np.ndarray, name: str) -> None:
        """Raise ``ValueError`` unless every label is -1 or +1."""
        if not np.all((y == 1.0) | (y == -1.0)):
            raise ValueError(f"{name}: logistic labels must be in {{-1, +1}}")

    def value_and_gradient(
        self, X: np.ndarray, y: np.ndarray, w: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Return ``(L(w), -X'(y * sigma(-m)) / n)``."""
        n = X.shape[0]
        m = y * (X @ w)
        val = float(np.sum(np.logaddexp(0.0, -m))) / n
        return val, -(X.T @ (y * expit(-m))) / n

    def hessian_weights(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Return ``sigma(m) * sigma(-m)`` with ``m = y * X w``."""
        m = y * (X @ w)
        return expit(m) * expit(-m)


LOSSES: dict[str, Loss] = {"squared": SquaredLoss(), "logistic": LogisticLoss()}


def get_loss(loss: str | Loss) -> Loss:
    """Return the loss object for ``"squared"``, ``"logistic"`` or a :class:`Loss`.

    Raises
    ------
    ValueError
        If ``loss`` is not a known loss name.
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]
    raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")


# ----------------------------------------------------------------------------
# Input checks (shared by solvers.tasks and solvers.curriculum)
# ----------------------------------------------------------------------------


def _check_array(value: Any, name: str, ndim: int | None = None) -> np.ndarray:
    """Return ``value`` as a finite float64 array or raise ``ValueError`` naming it."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name} could not be converted to an array: {exc}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real")
    arr = arr.astype(np.float64, copy=False)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _check_scalar(value: Any, name: str, *, strict: bool) -> float:
    """Return a finite real ``value`` that is ``> 0`` (strict) or ``>= 0``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    val = float(value)
    if not np.isfinite(val):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if strict and not val > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if not strict and not val >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return val


def _check_solver_options(tol: Any, max_iter: Any) -> tuple[float, int]:
    """Validate ``tol > 0`` and an integer ``max_iter >= 0``."""
    tol_f = _check_scalar(tol, "tol", strict=True)
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 0:
        raise ValueError(f"max_iter must be a nonnegative integer, got {max_iter!r}")
    return tol_f, int(max_iter)


def _check_task(X: Any, y: Any, loss: Loss, xname: str, yname: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate one task's design (n x d, n >= 1) and targets (n,)."""
    Xa = _check_array(X, xname, ndim=2)
    ya = _check_array(y, yname, ndim=1)
    if Xa.shape[0] == 0:
        raise ValueError(f"{xname} is an empty task (0 rows)")
    if Xa.shape[1] == 0:
        raise ValueError(f"{xname} has no features (0 columns)")
    if ya.shape[0] != Xa.shape[0]:
        raise ValueError(
            f"{yname} has {ya.shape[0]} entries but {xname} has {Xa.shape[0]} rows"
        )
    loss.check_labels(ya, yname)
    return Xa, ya


# The last validated pair of task tuples. Tuples of read-only float64 arrays (as
# ``amtl_cvx.MultiTaskData`` holds) cannot change, so repeated solves on the same data
# (every alternation of a fit) validate them once.
_VALIDATED: list[tuple[Any, Any, str, list[np.ndarray], list[np.ndarray]]] = []


def _immutable(seq: Any) -> bool:
    return isinstance(seq, tuple) and all(
        isinstance(a, np.ndarray) and a.dtype == np.float64 and not a.flags.writeable for a in seq
    )


def _check_tasks(
    Xs: Sequence[Any], ys: Sequence[Any], loss: Loss
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Validate the task lists: same length >= 1, equal feature counts, finite."""
    if _VALIDATED:
        Xc, yc, name, Xl, yl = _VALIDATED[0]
        if Xc is Xs and yc is ys and name == loss.name:
            return Xl, yl
    Xl, yl = _check_tasks_uncached(Xs, ys, loss)
    if _immutable(Xs) and _immutable(ys):
        _VALIDATED[:] = [(Xs, ys, loss.name, Xl, yl)]
    return Xl, yl


def _check_tasks_uncached(
    Xs: Sequence[Any], ys: Sequence[Any], loss: Loss
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if isinstance(Xs, np.ndarray) and Xs.ndim != 3:
        raise ValueError("Xs must be a sequence of 2-d arrays (one per task)")
    try:
        T = len(Xs)
        Ty = len(ys)
    except TypeError as exc:
        raise ValueError("Xs and ys must be sequences of arrays") from exc
    if T == 0:
        raise ValueError("Xs must contain at least one task")
    if Ty != T:
        raise ValueError(f"ys has {Ty} tasks but Xs has {T}")
    Xl: list[np.ndarray] = []
    yl: list[np.ndarray] = []
    d = None
    for t in range(T):
        Xa, ya = _check_task(Xs[t], ys[t], loss, f"Xs[{t}]", f"ys[{t}]")
        if d is None:
            d = Xa.shape[1]
        elif Xa.shape[1] != d:
            raise ValueError(f"Xs[{t}] has {Xa.shape[1]} features, Xs[0] has {d}")
        Xl.append(Xa)
        yl.append(ya)
    return Xl, yl


def _check_transfer(B: Any, T: int, name: str = "B") -> np.ndarray | sp.csr_matrix:
    """Validate a (T, T) transfer matrix: finite, ``>= 0``, zero diagonal.

    Sparse input stays sparse (CSR); dense input is returned as float64 array.
    """
    if sp.issparse(B):
        Bs = sp.csr_matrix(B, dtype=np.float64)
        if Bs.shape != (T, T):
            raise ValueError(f"{name} must have shape ({T}, {T}), got {Bs.shape}")
        Bs.sum_duplicates()
        if not np.all(np.isfinite(Bs.data)):
            raise ValueError(f"{name} contains NaN or infinite values")
        if np.any(Bs.data < 0):
            raise ValueError(f"{name} must be nonnegative")
        if np.any(Bs.diagonal() != 0):
            raise ValueError(f"{name} must have a zero diagonal")
        Bs.eliminate_zeros()
        return Bs
    Ba = _check_array(B, name, ndim=2)
    if Ba.shape != (T, T):
        raise ValueError(f"{name} must have shape ({T}, {T}), got {Ba.shape}")
    if np.any(Ba < 0):
        raise ValueError(f"{name} must be nonnegative")
    if np.any(np.diag(Ba) != 0):
        raise ValueError(f"{name} must have a zero diagonal")
    return Ba
