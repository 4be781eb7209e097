"""Tools around the library: the benchmark, the verification, the command line, plotting.

- :mod:`amtl_cvx.tools.benchmark`: timing of the fast solvers against CVXPY;
- :mod:`amtl_cvx.tools.verification`: one subproblem, fast solver against every CVXPY solver;
- :mod:`amtl_cvx.tools.cli`: the ``amtl-cvx`` command line;
- :mod:`amtl_cvx.tools.plotting`: figures of a fitted model;
- shared by the benchmark and the verification: :mod:`~amtl_cvx.tools.results` (rows,
  tables, files), :mod:`~amtl_cvx.tools.timing` (times, memory) and
  :mod:`~amtl_cvx.tools.subproblems` (each step solved by each backend).

Nothing here is imported by ``import amtl_cvx``.
"""
