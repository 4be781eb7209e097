"""Input checks and scales shared by the B-step solvers (active-set and first-order):
``W``, the prices and ``lam`` (:func:`_check_inputs`), ``B`` dense (:func:`_check_B`) or
dense / sparse (:func:`_check_B_any`), the transfer ridge (:func:`_check_ridge`)."""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
import scipy.sparse as sp

# Target number of float64 entries of the temporary arrays (about 32 MB).
_BLOCK_ENTRIES = 4_000_000

#: prices above this (in the solver's units: lam = 1, max |W| = 1) keep B at zero
_P_MAX = 1e300


def _check_inputs(
    W: np.ndarray, penalty: np.ndarray, lam: float
) -> tuple[np.ndarray, np.ndarray, float]:
    W = np.asarray(W)
    if W.ndim != 2:
        raise ValueError(f"W must be a 2-D array (d x T), got ndim={W.ndim}")
    if W.shape[0] < 1 or W.shape[1] < 1:
        raise ValueError(f"W must be non-empty, got shape {W.shape}")
    if not (np.issubdtype(W.dtype, np.floating) or np.issubdtype(W.dtype, np.integer)):
        raise ValueError(f"W must be a real numeric array, got dtype {W.dtype}")
    W = np.ascontiguousarray(W, dtype=np.float64)
    if not np.all(np.isfinite(W)):
        raise ValueError("W must contain only finite values")
    T = W.shape[1]
    p = np.asarray(penalty)
    if p.shape != (T,):
        raise ValueError(f"penalty must have shape ({T},), got {p.shape}")
    if not (np.issubdtype(p.dtype, np.floating) or np.issubdtype(p.dtype, np.integer)):
        raise ValueError(f"penalty must be a real numeric array, got dtype {p.dtype}")
    p = np.asarray(p, dtype=np.float64)
    if not np.all(np.isfinite(p)):
        raise ValueError("penalty must contain only finite values")
    if np.any(p < 0):
        raise ValueError("penalty must be nonnegative")
    if isinstance(lam, bool) or not isinstance(lam, (Real, np.floating, np.integer)):
        raise ValueError(f"lam must be a real number, got {type(lam).__name__}")
    lam = float(lam)
    if not np.isfinite(lam) or lam <= 0:
        raise ValueError(f"lam must be finite and > 0, got {lam}")
    return W, p, lam



def _check_B(B: np.ndarray, T: int, name: str) -> np.ndarray:
    B = np.asarray(B)
    if B.shape != (T, T):
        raise ValueError(f"{name} must have shape ({T}, {T}), got {B.shape}")
    if not (np.issubdtype(B.dtype, np.floating) or np.issubdtype(B.dtype, np.integer)):
        raise ValueError(f"{name} must be a real numeric array, got dtype {B.dtype}")
    B = np.asarray(B, dtype=np.float64)
    if not np.all(np.isfinite(B)):
        raise ValueError(f"{name} must contain only finite values")
    return B



def _check_B_any(B: Any, T: int, name: str) -> sp.csc_matrix:
    """``B`` (dense or SciPy sparse, ``T x T``, finite) as a CSC matrix."""
    if sp.issparse(B):
        Bs = sp.csc_matrix(B, dtype=np.float64)
    else:
        arr = np.asarray(B)
        if arr.ndim != 2:
            raise ValueError(f"{name} must have shape ({T}, {T}), got {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
        Bs = sp.csc_matrix(np.asarray(arr, dtype=np.float64))
    if Bs.shape != (T, T):
        raise ValueError(f"{name} must have shape ({T}, {T}), got {Bs.shape}")
    if not np.all(np.isfinite(Bs.data)):
        raise ValueError(f"{name} must contain only finite values")
    Bs.sum_duplicates()
    return Bs


def _check_ridge(ridge: Any) -> float:
    """The transfer ridge: a finite real ``>= 0``."""
    if isinstance(ridge, bool) or not isinstance(ridge, (Real, np.floating, np.integer)):
        raise ValueError(f"ridge must be a real number, got {ridge!r}")
    rho = float(ridge)
    if not np.isfinite(rho) or rho < 0:
        raise ValueError(f"ridge must be finite and >= 0, got {ridge}")
    return rho



def _grad_scale(W: np.ndarray, p: np.ndarray, lam: float) -> float:
    """``2 lam max_s ||w_s||^2 + max_s p_s`` (>= ``max |gradient at B = 0|``), or 1."""
    scale = 2.0 * lam * float(np.max(np.einsum("ij,ij->j", W, W))) + float(np.max(p))
    return scale if scale > 0 else 1.0



def _block_size(rows: int, per_col: int = 1) -> int:
    return max(1, min(4096, _BLOCK_ENTRIES // max(1, rows * per_col)))

