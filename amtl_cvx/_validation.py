"""Input checks shared by the package: each raises ``ValueError`` naming the argument."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_array", "check_scalar", "check_transfer_matrix"]


def check_array(value: object, name: str, *, ndim: int | None = None) -> np.ndarray:
    """Return ``value`` as a finite float64 array, or raise ``ValueError`` naming ``name``.

    Parameters
    ----------
    value : array_like
        The input.
    name : str
        Argument name used in error messages.
    ndim : int, optional
        Required number of dimensions.
    """
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name} could not be converted to an array: {exc}") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
    ):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real, got a complex array")
    arr = arr.astype(np.float64, copy=False)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_scalar(
    value: object,
    name: str,
    *,
    min_value: float | None = 0.0,
    strict: bool = False,
) -> float:
    """Return ``value`` as a finite float, enforcing ``value >= min_value``.

    With ``strict=True`` the bound is strict (``value > min_value``).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    val = float(value)
    if not np.isfinite(val):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if min_value is not None:
        if strict and not val > min_value:
            raise ValueError(f"{name} must be > {min_value}, got {value!r}")
        if not strict and not val >= min_value:
            raise ValueError(f"{name} must be >= {min_value}, got {value!r}")
    return val


def check_transfer_matrix(B: object, n_tasks: int, name: str = "B") -> np.ndarray:
    """Validate a transfer matrix: shape (T, T), finite, ``B >= 0``, zero diagonal."""
    arr = check_array(B, name, ndim=2)
    if arr.shape != (n_tasks, n_tasks):
        raise ValueError(f"{name} must have shape ({n_tasks}, {n_tasks}), got {arr.shape}")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be nonnegative (min entry {arr.min():.3g})")
    if np.any(np.diag(arr) != 0):
        raise ValueError(f"{name} must have a zero diagonal")
    return arr
