"""Result rows in long format (one row per measurement), shared by the benchmark and the
verification: relative gaps, plain-text tables, CSV and JSON files.

A row is a dict; a list of rows becomes a :class:`pandas.DataFrame` (one column per key,
in order of first appearance), which renders the tables (``DataFrame.to_string``) and
writes the CSV files (``DataFrame.to_csv``). The JSON files are written from the frame's
records by :mod:`json`: ``DataFrame.to_json`` keeps at most 15 significant digits, and
the files must round-trip every float exactly.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "NAN",
    "TABLE_COLUMNS",
    "say",
    "rel_gap",
    "check_rows",
    "to_frame",
    "table_columns",
    "render_table",
    "write_csv",
    "write_json",
]

NAN = float("nan")


def say(progress: Callable[[str], None] | None, message: str) -> None:
    """Pass ``message`` to ``progress`` unless it is None (library code prints nothing)."""
    if progress is not None:
        progress(message)


def rel_gap(obj: float, ref: float) -> float:
    """``(obj - ref) / max(1, |ref|)``; NaN unless both are finite."""
    if not (math.isfinite(obj) and math.isfinite(ref)):
        return NAN
    return (obj - ref) / max(1.0, abs(ref))


def check_rows(rows: Any) -> list[dict[str, Any]]:
    """``rows`` as a list of row dicts; ValueError naming ``rows`` otherwise."""
    if isinstance(rows, dict) or not isinstance(rows, Iterable):
        raise ValueError("rows must be a sequence of row dicts")
    rows = list(rows)
    if not all(isinstance(r, dict) for r in rows):
        raise ValueError("rows must be a sequence of row dicts")
    return rows


def to_frame(rows: Sequence[dict[str, Any]], *, dtype: Any = None) -> pd.DataFrame:
    """Rows as a DataFrame: one column per key, in order of first appearance."""
    return pd.DataFrame(check_rows(rows), dtype=dtype)


# --------------------------------------------------------------------------- tables

#: Header and format spec of every column the tables show, by row key.
TABLE_COLUMNS = {
    "problem": ("problem", ""),
    "step": ("step", ""),
    "loss": ("loss", ""),
    "T": ("T", "d"),
    "d": ("d", "d"),
    "lam": ("lam", "g"),
    "mu": ("mu", "g"),
    "ridge": ("ridge", "g"),
    "transfer_ridge": ("transfer ridge", ".3g"),
    "backend": ("backend", ""),
    "method": ("method", ""),
    "time": ("time [s]", ".3g"),
    "n_iter": ("iterations", "d"),
    "time_per_iter": ("s / iteration", ".3g"),
    "converged": ("converged", ""),
    "objective": ("objective", ".12g"),
    "rel_gap": ("rel gap", ".1e"),
    "max_abs_diff": ("max|x - x_fast|", ".1e"),
    "min_entry": ("min entry", ".1e"),
    "max_abs_diag": ("max|diag|", ".1e"),
    "feasibility": ("feasible", ""),
    "status": ("status", ""),
}


def table_columns(*keys: str) -> tuple[tuple[str, str, str], ...]:
    """``(key, header, format spec)`` of each key, for :func:`render_table`."""
    return tuple((key, *TABLE_COLUMNS[key]) for key in keys)



def _fmt_value(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "-"
        return format(float(value), spec)
    return str(value)


def render_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """Plain-text table: ``columns`` are ``(key, header, format spec)``; NaN shows as ``-``.

    A header line, a rule and one line per row; columns are two spaces apart, the last
    column is left-aligned (free text such as a status), the others right-aligned.
    Floats are formatted with their spec, other values with ``str``.
    """
    frame = to_frame(rows, dtype=object).reindex(columns=[key for key, _, _ in columns])
    headers, bodies = [], []
    for key, header, spec in columns:
        headers.append(header)
        bodies.append([_fmt_value(None if v is pd.NA else v, spec) for v in frame[key]])
    widths = [max([len(h)] + [len(c) for c in body]) for h, body in zip(headers, bodies)]
    headers[-1] = headers[-1].ljust(widths[-1])  # the last column is left-aligned
    bodies[-1] = [c.ljust(widths[-1]) for c in bodies[-1]]
    # the header is the first line of cells, and every cell has one leading space: pandas
    # separates columns by one space, the table by two
    spaced = pd.DataFrame({j: [f" {c}" for c in [h, *body]] for j, (h, body) in enumerate(zip(headers, bodies))},
                          dtype=object)
    lines = [line[1:].rstrip() for line in spaced.to_string(index=False, header=False).splitlines()]
    lines[1:1] = ["  ".join("-" * w for w in widths)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- files


def write_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write rows to a CSV file (one column per key, in order of first appearance).

    Floats are written with full precision (``repr``); NaN as ``nan``, None as an empty
    field (a key that a row lacks is NaN, ``nan``).

    Parameters
    ----------
    rows : sequence of dict
    path : str or path-like

    Returns
    -------
    pathlib.Path
        The file written.
    """
    frame = to_frame(rows, dtype=object)  # object: an int stays an int in a column with NaN
    for col in frame.columns:
        frame[col] = pd.Series(["" if v is None else v for v in frame[col]], index=frame.index, dtype=object)
    path = Path(path)
    frame.to_csv(path, index=False, na_rep="nan", lineterminator="\r\n", encoding="utf-8")
    return path


def write_json(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write rows to a JSON file: a list of objects; NaN and infinities become ``null``.

    Every object has every column (a key that a row lacks is ``null``).

    Parameters
    ----------
    rows : sequence of dict
    path : str or path-like

    Returns
    -------
    pathlib.Path
        The file written.
    """
    frame = to_frame(rows).replace([np.inf, -np.inf], np.nan)
    path = Path(path)
    payload = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    with path.open("w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=1, allow_nan=False)
        fh.write("\n")
    return path
