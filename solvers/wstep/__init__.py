"""The W-step solvers' shared parts (numpy/scipy only).

- :mod:`solvers.wstep.coupling`: the coupling ``M = (I - B)(I - B)'`` and the per-task
  Gram matrices.
- :mod:`solvers.wstep.linalg`: BLAS-free inner products, PCG with the two-level
  preconditioner, Armijo backtracking.
- :mod:`solvers.wstep.objective`: input checks, the W-step objective, gradient and
  result.

The entry points are :func:`solvers.tasks.solve_tasks` (second order) and
:func:`solvers.first_order_tasks.solve_tasks_first_order`.
"""
