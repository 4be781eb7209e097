"""Does the first-order B-step's inner method identify the supports? (docs/first_order.md)

For every working-set solve of ``solve_transfer_first_order``, compares the support of
the inner method's iterate (cut to its ``d`` largest entries, the warm start of the
support solve) with the support of the exact working-set solution that follows, and
reports the fraction of columns where they agree, with the solve time, for several
settings (relative stopping threshold, cap: epochs of coordinate descent, and four
times as many FISTA iterations); ``--inner`` picks the method (default: coordinate
descent, as when the numbers of docs/first_order.md were measured; the solver's default
is FISTA). One BLAS thread::

    OMP_NUM_THREADS=1 python examples/bstep_cd_identification.py [--tasks 2000] [--kind dense] [--inner fista]

A diagnostic: it sets the module's private tunables for each row and restores them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bstep_fista_comparison import instance_from_args  # noqa: E402

import solvers.bstep.coordinate_descent as cd  # noqa: E402
from solvers.first_order import solve_transfer_first_order  # noqa: E402

#: (relative stopping threshold, epoch cap): the default (1e-2) first, then the one before it
SETTINGS = [(1e-2, 50), (1e-3, 50), (1e-3, 10), (1e-3, 5), (1e-6, 200), (1e-9, 1000)]


def main() -> None:
    args, W, p, lam = instance_from_args(
        __doc__.splitlines()[0], None, 2000,
        lambda parser: parser.add_argument("--inner", choices=("cd", "fista"), default="cd"))
    real_lh, real = cd._lh_batch, (cd._HANDOVER_REL, cd._MAX_EPOCHS, cd._MAX_FISTA, cd._INNER)
    agree: list[np.ndarray] = []

    def lh(G, c, valid, thr, x, rank):
        xs, passive, fail = real_lh(G, c, valid, thr, x, rank)
        agree.append(np.all((x > 0) == (xs > 0), axis=1))
        return xs, passive, fail

    print(f"{args.kind} W, T = {args.tasks}, d = {args.features}, inner method {args.inner}")
    print("    threshold  epoch cap   time [s]  supports agreeing  objective")
    cd._lh_batch = lh
    try:
        for rel, epochs in SETTINGS:
            cd._HANDOVER_REL, cd._MAX_EPOCHS, cd._MAX_FISTA, cd._INNER = rel, epochs, 4 * epochs, args.inner
            agree.clear()
            t0 = time.perf_counter()
            res = solve_transfer_first_order(W, p, lam)
            elapsed = time.perf_counter() - t0
            frac = float(np.concatenate(agree).mean())
            print(f"{rel:13.0e}  {epochs:9d}  {elapsed:9.2f}  {frac:17.0%}  {res.objective:.10g}")
    finally:
        cd._lh_batch = real_lh
        cd._HANDOVER_REL, cd._MAX_EPOCHS, cd._MAX_FISTA, cd._INNER = real


if __name__ == "__main__":
    main()
