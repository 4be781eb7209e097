"""The AMTL algorithms, each subproblem solved by a backend.

- :mod:`~amtl_cvx.algorithms.alternating`: Algorithm 1, :func:`fit_alternating`
  (alternating minimisation, or L-BFGS with B eliminated by B-steps);
- :mod:`~amtl_cvx.algorithms.curriculum`: Algorithm 2, :func:`fit_curriculum`;
- :mod:`~amtl_cvx.algorithms.backends`: the subproblem solvers (``"fast"``,
  ``"first-order"``, ``"cvxpy"``, and a variant's own statements);
- :mod:`~amtl_cvx.algorithms.result`: :class:`AMTLFit` and the warnings of a fit;
- :mod:`~amtl_cvx.algorithms.hyperparameters`: ``ridge`` and ``transfer_ridge``
  (``"auto"`` resolved); :mod:`~amtl_cvx.algorithms.threads`: :func:`blas_limit`;
- :mod:`~amtl_cvx.algorithms.variants`: a :class:`~amtl_cvx.problems.custom.Variant`
  inside Algorithm 1 and 2; :mod:`~amtl_cvx.algorithms.losses`: fast loss evaluation.
"""

from amtl_cvx.algorithms.alternating import METHODS, fit_alternating
from amtl_cvx.algorithms.backends import BACKENDS, make_backend
from amtl_cvx.algorithms.curriculum import SELECTIONS, fit_curriculum
from amtl_cvx.algorithms.result import (
    AMTLFit,
    ConvergenceWarning,
    NonMonotoneWarning,
    SingularTransferWarning,
)
from amtl_cvx.algorithms.threads import blas_limit

__all__ = [
    "AMTLFit",
    "fit_alternating",
    "fit_curriculum",
    "METHODS",
    "SELECTIONS",
    "BACKENDS",
    "make_backend",
    "ConvergenceWarning",
    "SingularTransferWarning",
    "NonMonotoneWarning",
    "blas_limit",
]
