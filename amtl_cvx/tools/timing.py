"""Timing and memory measurements shared by the benchmark and the verification.

- :func:`timed`: the wall time of one call (``time.perf_counter``);
- :func:`time_interleaved`: one warm-up of each of several runs, then the medians of
  ``repeat`` rounds that alternate them (their ratios survive a drift of the machine);
- :func:`memory_mark` / :func:`memory_peak_since`: the peak growth of the process's
  resident memory during a call. Linux only: the peak is reset through
  ``/proc/self/clear_refs`` and read from ``VmHWM`` in ``/proc/self/status`` (no portable
  library resets a process's peak); elsewhere the peak is NaN;
- :func:`predict_memory`: the peak memory at a larger size, from the measured ones;
- :func:`certificate_status`: the status text of a fast solver's result;
- :func:`format_seconds`: a duration for a status line.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable, Sequence

from amtl_cvx.tools.results import NAN

__all__ = [
    "MEMORY_EXPONENT_FLOOR",
    "timed",
    "time_interleaved",
    "memory_mark",
    "memory_peak_since",
    "predict_memory",
    "certificate_status",
    "format_seconds",
]


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """``(seconds, fn(*args, **kwargs))``: the wall time of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def time_interleaved(runs: Sequence[Callable[[], tuple[float, float, Any]]],
                     repeat: int) -> list[dict[str, Any]]:
    """One warm-up of each of ``runs``, then ``repeat`` rounds of one timed call of each.

    Each run returns ``(compile_time, solve_time, result)``. The rounds alternate the
    runs, so a drift of the machine's speed during the measurement reaches every run
    alike and their ratios stay right. Returns one dict per run: the medians
    (``compile_time``, ``solve_time``, ``total_time`` and ``wall_time``, the latter two
    equal), ``peak_memory`` (bytes, during the warm-up; NaN where unknown) and the last
    ``result``.
    """
    memory = []
    for run in runs:
        mark = memory_mark()
        run()  # warm-up
        memory.append(memory_peak_since(mark))
    times: list[tuple[list[float], list[float], list[float]]] = [([], [], []) for _ in runs]
    results: list[Any] = [None] * len(runs)
    for _ in range(repeat):
        for i, run in enumerate(runs):
            c, s, results[i] = run()
            times[i][0].append(c)
            times[i][1].append(s)
            times[i][2].append(c + s)
    return [
        {
            "compile_time": statistics.median(ct),
            "solve_time": statistics.median(st),
            "total_time": statistics.median(tt),
            "wall_time": statistics.median(tt),
            "peak_memory": mem,
            "result": res,
        }
        for (ct, st, tt), mem, res in zip(times, memory, results)
    ]


def certificate_status(result: Any, iterations: bool = False) -> str:
    """``"converged (certificate 1.2e-11)"`` or ``"not converged (...)"`` of a
    :class:`solvers.result.SolverResult`, with its iteration count if asked."""
    verdict = "converged" if result.converged else "not converged"
    more = f", {result.n_iter} iterations" if iterations else ""
    return f"{verdict} (certificate {result.certificate:.1e}{more})"


# --------------------------------------------------------------------------- memory


def _proc_status_bytes(key: str) -> int | None:
    """``VmRSS`` / ``VmHWM`` of this process from ``/proc/self/status`` (Linux), in bytes."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_mark() -> int | None:
    """Reset the process's peak resident set (Linux ``clear_refs``); return the current one.

    ``None`` when the platform does not support it (the memory rule is then inactive).
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return None
    return _proc_status_bytes("VmRSS")


def memory_peak_since(mark: int | None) -> float:
    """Peak resident-set growth (bytes) since :func:`memory_mark`, NaN if unknown."""
    if mark is None:
        return NAN
    peak = _proc_status_bytes("VmHWM")
    return NAN if peak is None else float(max(0, peak - mark))


#: Smallest growth exponent ``k`` assumed when predicting memory ``~ T**k``.
MEMORY_EXPONENT_FLOOR = 3.0
_MEMORY_FIT_FLOOR = 50e6  # measurements below this are too noisy to fit an exponent


def predict_memory(history: list[tuple[int, float]], T: int) -> float:
    """Predict peak memory at ``T`` from ``[(T_i, memory_i), ...]`` (increasing T_i)."""
    known = [(t, m) for t, m in history if math.isfinite(m)]
    if not known:
        return NAN
    T1, m1 = known[-1]
    k = MEMORY_EXPONENT_FLOOR
    if len(known) >= 2:
        T0, m0 = known[-2]
        if m0 >= _MEMORY_FIT_FLOOR and m1 >= _MEMORY_FIT_FLOOR and T1 > T0:
            k = max(k, math.log(m1 / m0) / math.log(T1 / T0))
    return max(m1, _MEMORY_FIT_FLOOR) * (T / T1) ** k


def format_seconds(seconds: float) -> str:
    """``"1.23 s"``, or ``"-"`` when not finite."""
    return "-" if not math.isfinite(seconds) else f"{seconds:.3g} s"
