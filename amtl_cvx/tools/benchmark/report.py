"""Plain-text tables of the benchmark's rows (long format in, one table per block out)."""

from __future__ import annotations

import math
from typing import Any, Sequence

from amtl_cvx.tools.benchmark.fits import FIT_COLUMNS
from amtl_cvx.tools.results import NAN, check_rows, render_table, table_columns, to_frame

__all__ = ["format_benchmark_table", "format_fit_table"]

_STEP_NAMES = {"bstep": "B-step", "wstep": "W-step (squared loss)"}


def _cell(row: dict[str, Any], fast: bool) -> str:
    status = str(row.get("status", ""))
    if status.startswith("skipped"):
        return "skipped"
    if status.startswith("n/a"):
        return "n/a"
    total = row.get("total_time", NAN)
    if not isinstance(total, (int, float)) or not math.isfinite(total):
        return "failed"
    if fast:
        return f"{total:.3g} s"
    return f"{total:.3g} s ({row.get('ratio', NAN):.3g}x)"


def _abs_gap(row: dict[str, Any]) -> float:
    """``|rel_gap|`` of a CVXPY row that returned a solution, NaN otherwise."""
    g = row.get("rel_gap", NAN)
    if row["backend"] == "fast" or not isinstance(g, (int, float)) or not math.isfinite(g):
        return NAN
    return abs(g)


def format_benchmark_table(rows: Sequence[dict[str, Any]]) -> str:
    """Plain-text summary of :func:`~amtl_cvx.tools.benchmark.run_benchmark` rows, one
    block per step and ``d``.

    Each line is one ``T``: the fast solver's total time, then for every CVXPY backend
    its total time (compile + solve) and the ratio to the fast time, ``skipped``,
    ``failed`` or ``n/a``; the last column is the largest ``|rel_gap|`` among the CVXPY
    backends that returned a solution.

    Parameters
    ----------
    rows : sequence of dict

    Returns
    -------
    str
    """
    rows = check_rows(rows)
    if not rows:
        return ""
    frame = to_frame(rows)
    frame["T"], frame["d"] = frame["T"].astype(int), frame["d"].astype(int)
    frame["cell"] = [_cell(r, r["backend"] == "fast") for r in rows]
    frame["abs_gap"] = [_abs_gap(r) for r in rows]
    blocks = []
    for (step, d), group in frame.groupby(["step", "d"], sort=False):
        backends = list(dict.fromkeys(group["backend"]))
        if "fast" in backends:
            backends.remove("fast")
            backends.insert(0, "fast")
        group = group.drop_duplicates(["T", "backend"], keep="last")
        table = group.pivot(index="T", columns="backend", values="cell").reindex(columns=backends).fillna("")
        table["gap"] = group.groupby("T")["abs_gap"].max()
        columns = [("T", "T", "d")] + [(b, b, "") for b in backends] + [("gap", "max |rel gap|", ".1e")]
        title = f"{_STEP_NAMES.get(step, step)}, d = {d}: total time (compile + solve), ratio to fast"
        blocks.append(title + "\n" + render_table(table.reset_index().to_dict("records"), columns))
    return "\n\n".join(blocks)


_FIT_FORMAT = table_columns(*FIT_COLUMNS)


def format_fit_table(rows: Sequence[dict[str, Any]]) -> str:
    """Plain-text table of :func:`~amtl_cvx.tools.benchmark.run_fit_benchmark` rows.

    Parameters
    ----------
    rows : sequence of dict

    Returns
    -------
    str
    """
    return render_table(check_rows(rows), _FIT_FORMAT)
