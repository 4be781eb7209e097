"""Save and load fitted estimators without pickle: one ``.npz`` file with JSON metadata.

The file is a NumPy ``.npz`` archive written with ``allow_pickle=False`` and read with
``allow_pickle=False``: it holds only numeric, boolean and fixed-width string arrays,
so loading a file never executes code. Its entries:

- ``__amtl_cvx_model__``: a 0-d string array holding JSON metadata::

      {"format": "amtl-cvx-model", "format_version": 1, "amtl_cvx_version": "0.1.0",
       "estimator": "AMTLRegressor", "params": {...}, "attributes": {...}}

  ``params`` are the estimator's ``get_params()`` (they must be JSON values: numbers,
  strings, booleans, None), ``attributes`` the fitted scalars (``n_iter_``,
  ``objective_`` ...);
- one array per fitted array attribute (``coef_``, ``intercept_``, ``transfer_matrix_``,
  ``objective_history_``, ``tasks_``, ``classes_`` ...).

Loading checks the marker, the format version (a file written by a newer format is
refused with a message saying so), the estimator name against the four estimators of
:mod:`amtl_cvx.estimators` (no import by name), and the shapes of the arrays; any
other file gives a ``ValueError`` saying it is not an amtl-cvx model. What a fit
guarantees is checked again on load: valid parameters, finite coefficients, a
nonnegative transfer matrix with a zero diagonal, sorted unique task ids and an
``n_features_in_`` that matches ``coef_``.

Labels stored as Python objects (for example strings in an ``object`` array, as pandas
produces) are saved as fixed-width strings and come back as ``numpy.str_`` arrays.
"""

from __future__ import annotations

import io
import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
from sklearn.utils.validation import check_is_fitted

from amtl_cvx import estimators as _est
from amtl_cvx.estimators.base import _ClassifierBase

__all__ = ["save_model", "load_model", "FORMAT", "FORMAT_VERSION"]

logger = logging.getLogger(__name__)

#: Marker of the file format.
FORMAT = "amtl-cvx-model"
#: Current (and highest readable) format version.
FORMAT_VERSION = 1

_META_KEY = "__amtl_cvx_model__"

_ESTIMATORS = {
    cls.__name__: cls
    for cls in (
        _est.AMTLRegressor,
        _est.AMTLClassifier,
        _est.SingleTaskRegressor,
        _est.SingleTaskClassifier,
    )
}

_ARRAYS = (
    "coef_",
    "intercept_",
    "transfer_matrix_",
    "objective_history_",
    "order_",
    "imbalance_weights_",
    "tasks_",
)
_OPTIONAL_ARRAYS = ("classes_", "feature_names_in_")
_SCALARS = {
    "n_iter_": int,
    "n_tasks_": int,
    "n_features_in_": int,
    "objective_": float,
    "converged_": bool,
}


def _package_version() -> str:
    from amtl_cvx import __version__

    return __version__


def _plain_array(value: object, name: str) -> np.ndarray:
    """``value`` as an array without Python objects (strings become fixed-width)."""
    arr = np.asarray(value)
    if arr.dtype.hasobject:
        flat = arr.ravel()
        if not all(isinstance(v, str) for v in flat):
            raise ValueError(
                f"{name} holds Python objects that are not strings; it cannot be saved "
                "without pickle"
            )
        arr = arr.astype(str)
    if arr.dtype.kind not in "biufU":
        raise ValueError(f"{name} has dtype {arr.dtype}, which cannot be saved without pickle")
    return arr


def save_model(estimator, path: str | os.PathLike) -> Path:
    """Save a fitted amtl-cvx estimator to ``path`` (an ``.npz`` file; no pickle).

    Parameters
    ----------
    estimator : AMTLRegressor, AMTLClassifier, SingleTaskRegressor or SingleTaskClassifier
        A fitted estimator.
    path : str or path-like
        The file to write, exactly as given (no suffix is added).

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If ``estimator`` is not one of the four estimators, or a parameter is not a
        JSON value (for example a ``RandomState`` instance as ``random_state``).
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    """
    name = type(estimator).__name__
    if _ESTIMATORS.get(name) is not type(estimator):
        raise ValueError(
            f"estimator must be one of {sorted(_ESTIMATORS)}, got {type(estimator).__name__}"
        )
    check_is_fitted(estimator)
    params = estimator.get_params(deep=False)
    if params.get("variant") is not None:
        raise ValueError(
            "variant: a model fitted with a Variant cannot be saved; a variant is Python code "
            "(CVXPY statements) and save_model stores only parameters and arrays, never code. "
            "Save its coef_, intercept_ and transfer_matrix_ with numpy instead"
        )
    for key, value in params.items():
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise ValueError(
                f"parameter {key}={value!r} is not a JSON value and cannot be saved "
                "(use an int or None for random_state)"
            )
        if isinstance(value, np.generic):  # numpy scalars -> Python
            params[key] = value.item()
    attributes = {k: cast(getattr(estimator, k)) for k, cast in _SCALARS.items()}
    attributes["y_2d"] = bool(getattr(estimator, "_y_2d", False))
    arrays = {k: _plain_array(getattr(estimator, k), k) for k in _ARRAYS}
    for k in _OPTIONAL_ARRAYS:
        if hasattr(estimator, k):
            arrays[k] = _plain_array(getattr(estimator, k), k)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "amtl_cvx_version": _package_version(),
        "estimator": name,
        "params": params,
        "attributes": attributes,
        "arrays": sorted(arrays),
    }
    arrays[_META_KEY] = np.array(json.dumps(meta, sort_keys=True))
    path = Path(path)
    with open(path, "wb") as fh:
        np.savez_compressed(fh, allow_pickle=False, **arrays)
    logger.debug("saved %s to %s", name, path)
    return path


def _not_a_model(path: Path, why: str) -> ValueError:
    return ValueError(f"{str(path)!r} is not an amtl-cvx model file: {why}")


def _check_loaded(path: Path, estimator, arrays: dict, attributes: dict, T: int, d: int) -> None:
    """The checks ``fit`` guarantees, made again on what a file holds."""
    try:
        estimator._check_layout_params()
        estimator._check_solver_params()
    except (ValueError, TypeError) as exc:
        raise _not_a_model(path, f"invalid parameters ({exc})") from exc
    for k in ("coef_", "intercept_", "transfer_matrix_", "imbalance_weights_"):
        value = arrays[k]
        if value.dtype.kind not in "fiu" or not np.all(np.isfinite(value)):
            raise _not_a_model(path, f"{k} must hold finite numbers")
    B = arrays["transfer_matrix_"]
    if np.any(B < 0) or np.any(np.diag(B) != 0):
        raise _not_a_model(path, "transfer_matrix_ must be nonnegative with a zero diagonal")
    tasks = arrays["tasks_"]
    if T > 1 and not np.all(tasks[1:] > tasks[:-1]):
        raise _not_a_model(path, "tasks_ must be sorted and unique")
    n_in = attributes["n_features_in_"]
    expected = d + (estimator.task_column is not None)
    if isinstance(n_in, bool) or not isinstance(n_in, int) or n_in != expected:
        raise _not_a_model(
            path, f"n_features_in_={n_in!r} does not match coef_ ({d} features"
            f"{' plus the task column' if expected != d else ''})"
        )


def load_model(path: str | os.PathLike):
    """Load an estimator saved by :func:`save_model` (never unpickles anything).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    AMTLRegressor, AMTLClassifier, SingleTaskRegressor or SingleTaskClassifier
        Fitted, with the saved parameters and fitted attributes.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is not a file, is not an amtl-cvx model (not an ``.npz`` archive,
        no metadata, pickled content, a wrong marker, an unknown estimator, missing or
        inconsistent arrays), holds what no fit produces (invalid parameters, non-finite
        coefficients, a negative transfer matrix or one with a nonzero diagonal, unsorted
        task ids, ``n_features_in_`` that does not match ``coef_``), or was written by a
        newer format version.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path {str(path)!r} does not exist")
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} is not a file")
    raw = path.read_bytes()
    if not zipfile.is_zipfile(io.BytesIO(raw)):
        raise _not_a_model(path, "it is not an .npz archive")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            if _META_KEY not in npz.files:
                raise _not_a_model(path, f"no {_META_KEY!r} metadata entry")
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "is not an amtl-cvx model" in str(exc):
            raise
        raise _not_a_model(path, f"it could not be read without pickle ({exc})") from exc
    except Exception as exc:  # a damaged archive: zipfile / format errors
        raise _not_a_model(path, f"it could not be read ({type(exc).__name__}: {exc})") from exc

    meta_arr = arrays.pop(_META_KEY)
    if meta_arr.dtype.kind != "U" or meta_arr.ndim != 0:
        raise _not_a_model(path, "its metadata entry is not a JSON string")
    try:
        meta = json.loads(str(meta_arr))
    except json.JSONDecodeError as exc:
        raise _not_a_model(path, f"its metadata is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _not_a_model(path, f"the format marker is not {FORMAT!r}")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _not_a_model(path, f"invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{str(path)!r} was written in amtl-cvx model format version {version} "
            f"(by amtl-cvx {meta.get('amtl_cvx_version', '?')}); this amtl-cvx "
            f"({_package_version()}) reads format versions up to {FORMAT_VERSION}: upgrade amtl-cvx"
        )
    name = meta.get("estimator")
    cls = _ESTIMATORS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise _not_a_model(path, f"unknown estimator {name!r}")
    params = meta.get("params")
    attributes = meta.get("attributes")
    if not isinstance(params, dict) or not isinstance(attributes, dict):
        raise _not_a_model(path, "its metadata lacks params or attributes")
    if meta.get("amtl_cvx_version") != _package_version():
        logger.info(
            "%s was saved by amtl-cvx %s, loading with %s",
            path, meta.get("amtl_cvx_version"), _package_version(),
        )
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise _not_a_model(path, f"the parameters do not match {name} ({exc})") from exc

    for k in _ARRAYS:
        if k not in arrays:
            raise _not_a_model(path, f"missing array {k!r}")
    for k in _SCALARS:
        if k not in attributes:
            raise _not_a_model(path, f"missing attribute {k!r}")
    coef = arrays["coef_"]
    if coef.ndim != 2 or coef.dtype.kind != "f":
        raise _not_a_model(path, f"coef_ must be a 2-D float array, got shape {coef.shape}")
    T, d = coef.shape
    expected = {
        "intercept_": (T,),
        "transfer_matrix_": (T, T),
        "imbalance_weights_": (T,),
        "tasks_": (T,),
    }
    for k, shape in expected.items():
        if arrays[k].shape != shape:
            raise _not_a_model(path, f"{k} has shape {arrays[k].shape}, expected {shape}")
    if int(attributes["n_tasks_"]) != T:
        raise _not_a_model(path, f"n_tasks_={attributes['n_tasks_']} but coef_ has {T} rows")
    _check_loaded(path, estimator, arrays, attributes, T, d)

    for k in _ARRAYS + _OPTIONAL_ARRAYS:
        if k in arrays:
            value = arrays[k]
            if k == "feature_names_in_":
                value = value.astype(object)
            setattr(estimator, k, value)
    for k, cast in _SCALARS.items():
        setattr(estimator, k, cast(attributes[k]))
    estimator._y_2d = bool(attributes.get("y_2d", False))
    if isinstance(estimator, _ClassifierBase) and not hasattr(estimator, "classes_"):
        raise _not_a_model(path, "a classifier without classes_")
    return estimator
