"""Fast exact solvers for the AMTL subproblems (numpy and scipy only).

This package never imports cvxpy or scikit-learn: the exact CVXPY statements in
:mod:`amtl_cvx.problems` are the referee, this package is the player.
"""

from solvers.result import SolverResult

__all__ = ["SolverResult"]
