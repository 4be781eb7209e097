r"""Memory model of the CVXPY statements: a predicted peak before anything is compiled.

CVXPY compiles a statement into the solver's matrices; a *parametric* (DPP) statement
also keeps a map from every parameter entry to every matrix entry it touches, so that
later solves skip the compilation. That map is what exhausts memory: measured (peak
growth of the resident set while building, compiling and solving one statement, one
process, d = 28 unless stated), with ``N`` the training rows of all tasks:

=====================  ==========  ============================  ==========================
statement              form        grows like                    measured
=====================  ==========  ============================  ==========================
B-step                 constant    ``d T^2``                     108 MB at T = 140
B-step                 DPP, QP     ``d T^2``                     109 MB at T = 140
B-step                 DPP, cone   ``d T^3``                     2.3 GB at T = 140 (ECOS)
W-step, squared        constant    ``d (nnz(I - B) + N)``        175 MB at T = 140
W-step, squared        DPP, QP     ``d (T^2 + N)``               209 MB at T = 140
W-step, squared        DPP, cone   ``d T^4``                     5.9 GB at T = 60 (ECOS)
W-step, logistic       constant    ``d (nnz(I - B) + N)``        34 MB at T = 80
W-step, logistic       DPP, cone   ``T^3 N``                     5.9 GB at T = 40 (Clarabel)
curriculum step        DPP         ``d (n_t + T) + d T^2``       246 MB at T = 500, d = 20 (ECOS)
=====================  ==========  ============================  ==========================

"QP" is the path of OSQP, and of Clarabel on the squared loss (a quadratic objective);
"cone" is ECOS on the squared loss (second-order cones) and every solver on the
logistic loss (exponential cones). :func:`predict_peak` multiplies the count in the
third column by a number of bytes per entry fitted on these measurements with a margin
(:data:`BYTES_PER_ENTRY`), plus :data:`BASE_BYTES`, plus for the W-step the solver's
factorisation of the coupled system (:data:`WSTEP_FACTOR_BYTES`), which dominates at
large T (T = 500, d = 20: 81 MB to compile, 729 MB to solve).

The choice made with it (:class:`amtl_cvx.problems.base.StatedProblem`):

- a statement is solved in its DPP form when the predicted peak of that form on the
  solver's path is at most :data:`DPP_BUDGET_BYTES` (and an eighth of the available
  memory); otherwise it is rebuilt with constant data for that solve, where the
  W-step's coupling ``W (I - B)`` is written with ``I - B`` as a sparse constant, so
  its size grows with the support of ``B``, not with ``T^2``;
- whatever the form, when its predicted peak exceeds half the memory available
  (``MemAvailable``), :class:`ExactMemoryError` is raised before CVXPY is called.
"""

from __future__ import annotations

import math
import os

__all__ = [
    "BASE_BYTES",
    "BYTES_PER_ENTRY",
    "CURRICULUM_MAP_BYTES",
    "DPP_BUDGET_BYTES",
    "WSTEP_FACTOR_BYTES",
    "ExactMemoryError",
    "available_memory",
    "format_bytes",
    "predict_peak",
    "solver_path",
]

#: Fixed part of every prediction (CVXPY's own bookkeeping of a small statement).
BASE_BYTES = 32 * 2**20

#: Bytes per counted entry, by (statement, form, path); the counts are in
#: :func:`predict_peak`. Fitted on the measurements of the module docstring (largest
#: ratio seen, rounded up by about a half).
BYTES_PER_ENTRY: dict[tuple[str, str, str], float] = {
    ("bstep", "constant", "qp"): 300.0,
    ("bstep", "constant", "cone"): 300.0,
    ("bstep", "dpp", "qp"): 300.0,
    ("bstep", "dpp", "cone"): 50.0,
    ("wstep", "constant", "qp"): 400.0,
    ("wstep", "constant", "cone"): 400.0,
    ("wstep", "dpp", "qp"): 450.0,
    ("wstep", "dpp", "cone"): 25.0,  # squared loss with ECOS, per d T^4
    ("wstep-logistic", "dpp", "cone"): 120.0,  # per T^3 N
    ("curriculum", "dpp", "qp"): 400.0,
    ("curriculum", "dpp", "cone"): 400.0,
}

#: Bytes per entry of the solver's factorisation of a W-step: the coupling
#: ``(I - B)(I - B)'`` ties the tasks' d x d blocks together, so the factor holds up to
#: ``d^2 T^2`` numbers (a dense ``(I - B)(I - B)'``, as with the B-step's answer on
#: planted data). Measured at T = 500, d = 20 (constant data, sparse ``I - B`` with
#: 7,561 edges): compiling took 81 MB, solving 729 MB (Clarabel) and 683 MB (OSQP).
WSTEP_FACTOR_BYTES = 8.0

#: Bytes per ``d T^2`` of the curriculum step's parametric map (``sqrt(lam) W_S`` times
#: ``b``): measured 152 MB (Clarabel) and 246 MB (ECOS) at T = 500, d = 20, 22 MB at
#: T = 140, d = 28.
CURRICULUM_MAP_BYTES = 60.0

#: Largest predicted peak for which a statement is solved in its DPP form (a DPP
#: statement saves the compilation of later solves; it is not worth gigabytes).
DPP_BUDGET_BYTES = 512 * 2**20


class ExactMemoryError(MemoryError):
    """A statement would need more memory than the machine has to spare."""


def solver_path(solver: str, loss: str) -> str:
    """``"qp"`` or ``"cone"``: how CVXPY hands a statement of ``loss`` to ``solver``."""
    if loss == "logistic":
        return "cone"
    return "cone" if solver.upper() == "ECOS" else "qp"


def predict_peak(
    statement: str,
    form: str,
    path: str,
    *,
    n_tasks: int,
    n_features: int,
    n_rows: int = 0,
    coupling_nnz: int | None = None,
    loss: str = "squared",
) -> float:
    """Predicted peak memory (bytes) of building, compiling and solving one statement.

    Parameters
    ----------
    statement : {"bstep", "bstep-column", "wstep", "curriculum"}
    form : {"dpp", "constant"}
    path : {"qp", "cone"}
        See :func:`solver_path`.
    n_tasks, n_features : int
        ``T`` and ``d``.
    n_rows : int
        Training rows in the statement (all tasks for the W-step, the new task's for
        the curriculum step).
    coupling_nnz : int, optional
        Nonzeros of ``I - B`` in the constant W-step (default ``T^2``).
    loss : {"squared", "logistic"}

    Returns
    -------
    float
    """
    T, d, N = float(n_tasks), float(n_features), float(n_rows)
    key = (statement, form, path)
    if statement in ("bstep", "bstep-column"):
        entries = d * T**3 if (form, path) == ("dpp", "cone") else d * T * T
        if statement == "bstep-column":  # one column of the B-step
            key, entries = ("bstep", form, path), entries / T
    elif statement == "wstep":
        if form == "constant":
            entries = d * ((T * T if coupling_nnz is None else coupling_nnz) + N)
        elif loss == "logistic":
            key, entries = ("wstep-logistic", "dpp", "cone"), T**3 * N
        elif path == "cone":
            entries = d * T**4
        else:
            entries = d * (T * T + N)
        factor = WSTEP_FACTOR_BYTES * d * d * T * T  # the solver's factorisation
        return BASE_BYTES + BYTES_PER_ENTRY[key] * entries + factor
    elif statement == "curriculum":
        # its data, plus CVXPY's map of the parameter sqrt(lam) W_S times the variable b
        entries = d * (N + T)
        key = (statement, "dpp", path)
        return BASE_BYTES + BYTES_PER_ENTRY[key] * entries + CURRICULUM_MAP_BYTES * d * T * T
    else:
        raise ValueError(
            f"statement must be 'bstep', 'bstep-column', 'wstep' or 'curriculum', got {statement!r}"
        )
    return BASE_BYTES + BYTES_PER_ENTRY[key] * entries


def available_memory() -> float:
    """Available physical memory in bytes (``MemAvailable``), ``inf`` if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return math.inf


def format_bytes(n: float) -> str:
    """``n`` bytes as ``"1.2 GB"`` / ``"350 MB"``."""
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"
