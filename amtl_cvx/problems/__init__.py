"""One CVXPY statement per AMTL subproblem.

Each statement is built once with ``cp.Parameter``s (it is DPP: re-solving with new
parameter values skips most of CVXPY's compilation), asserts ``is_dcp(dpp=True)``, and
is solved by :mod:`amtl_cvx.exact` at tight tolerances. Where its DPP form would need
too much memory it is restated with constant data, and a statement too large for the
machine raises :class:`ExactMemoryError` before CVXPY is called (the memory model of
:mod:`amtl_cvx.problems.memory`). Each class scales its data
internally (see its docstring) so that the solvers see well-conditioned numbers, and
unscales the solution and objective it returns. :mod:`amtl_cvx.problems.custom` holds
the user's own statements of a step (:class:`Variant`), solved the same way.
"""

from amtl_cvx.problems.base import ExactResult
from amtl_cvx.problems.memory import ExactMemoryError
from amtl_cvx.problems.curriculum import CurriculumStepProblem
from amtl_cvx.problems.transfer import TransferColumnProblem, TransferProblem
from amtl_cvx.problems.tasks import TasksProblem
from amtl_cvx.problems.custom import CurriculumStep, TasksStep, TransferStep, Variant, VariantError
from amtl_cvx.problems.baselines import (
    GOMTLBasisProblem,
    GOMTLCodesProblem,
    L21Problem,
    MeanRegularizedProblem,
    PooledProblem,
    TraceNormProblem,
)

__all__ = [
    "ExactResult",
    "ExactMemoryError",
    "TransferProblem",
    "TransferColumnProblem",
    "TasksProblem",
    "CurriculumStepProblem",
    "Variant",
    "VariantError",
    "TransferStep",
    "TasksStep",
    "CurriculumStep",
    "PooledProblem",
    "MeanRegularizedProblem",
    "L21Problem",
    "TraceNormProblem",
    "GOMTLCodesProblem",
    "GOMTLBasisProblem",
]
