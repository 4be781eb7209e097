"""The AMTL model: its objective in numpy, and one CVXPY statement per subproblem.

:mod:`amtl_cvx.problems.objective` is the one definition of the objective and the
per-task losses (numpy only). :mod:`amtl_cvx.problems.exact` solves a statement at tight
tolerances with its status checked.

Each statement is built once with ``cp.Parameter``s (it is DPP: re-solving with new
parameter values skips most of CVXPY's compilation), asserts ``is_dcp(dpp=True)``, and
is solved by :mod:`amtl_cvx.problems.exact` at tight tolerances. Where its DPP form would need
too much memory it is restated with constant data, and a statement too large for the
machine raises :class:`ExactMemoryError` before CVXPY is called (the memory model of
:mod:`amtl_cvx.problems.memory`). Each class scales its data
internally (see its docstring) so that the solvers see well-conditioned numbers, and
unscales the solution and objective it returns. :mod:`amtl_cvx.problems.custom` holds
the user's own statements of a step (:class:`Variant`), solved the same way.
"""

import importlib

# Where each name lives. The statements import CVXPY: they are loaded on first use, so
# that importing the numpy objective (``amtl_cvx.problems.objective``) does not.
_HOMES = {
    "ExactResult": "base",
    "ExactMemoryError": "memory",
    "CurriculumStepProblem": "curriculum",
    "TransferProblem": "transfer",
    "TransferColumnProblem": "transfer",
    "TasksProblem": "tasks",
    "Variant": "custom",
    "VariantError": "custom",
    "TransferStep": "custom",
    "TasksStep": "custom",
    "CurriculumStep": "custom",
    "PooledProblem": "baselines",
    "MeanRegularizedProblem": "baselines",
    "L21Problem": "baselines",
    "TraceNormProblem": "baselines",
    "GOMTLCodesProblem": "baselines",
    "GOMTLBasisProblem": "baselines",
}


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'amtl_cvx.problems' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"amtl_cvx.problems.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


__all__ = list(_HOMES)
