"""The B-step solvers, one algorithm per module (numpy/scipy only).

- :mod:`solvers.bstep.checks`: input checks and scales shared by every B-step solver.
- :mod:`solvers.bstep.certificate`: objective, KKT certificate and pricing pass.
- :mod:`solvers.bstep.lawson_hanson`: batched Lawson-Hanson on working sets.
- :mod:`solvers.bstep.full_pricing`: batched Lawson-Hanson priced over all coordinates.
- :mod:`solvers.bstep.polish`: QR polish of the pivots' supports and the NNLS rescue.
- :mod:`solvers.bstep.semidefinite`: sequential active-set fallback for a PSD Gram block.
- :mod:`solvers.bstep.working_set`: the working-set (column-generation) method.
- :mod:`solvers.bstep.coordinate_descent`: coordinate descent on working sets (first order).
- :mod:`solvers.bstep.compact_certificate`: the certificate and duality gap from compact
  (support) form, in column blocks.

The entry points are :func:`solvers.transfer.solve_transfer` (exact, active set) and
:func:`solvers.first_order.solve_transfer_first_order` (coordinate descent).
"""
