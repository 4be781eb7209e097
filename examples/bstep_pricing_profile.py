"""Where the first-order B-step spends its time, and how many violators each pricing pass sees.

Runs ``solve_transfer_first_order`` once under ``cProfile`` on an instance of
``examples/bstep_fista_comparison.py`` and prints (1) the cumulative time of its stages:
pricing passes, coordinate descent, the support solve, the final objective and gap
pass; (2) for every pricing pass, the columns priced and the fraction of their
coordinates that violate (``g_s < 0`` off the support), i.e. whether the pass took
its sparse path (the fraction over the whole pass; the choice is made per block). One BLAS thread::

    OMP_NUM_THREADS=1 python examples/bstep_pricing_profile.py [--tasks 10000] [--kind dense]

A diagnostic (docs/first_order.md): it wraps the private pricing function to count.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bstep_fista_comparison import instance_from_args  # noqa: E402

import solvers.bstep.compact_certificate as cc  # noqa: E402
import solvers.first_order as fo  # noqa: E402

STAGES = {
    "pricing passes": "compact_certificate.py:_price_block",
    "coordinate descent": "coordinate_descent.py:_cd",
    "support solve": "lawson_hanson.py:_lh_batch",
    "objective and gap pass": "compact_certificate.py:_column_gaps",
}


def main(argv: list[str] | None = None) -> int:
    args, W, p, lam = instance_from_args(__doc__.splitlines()[0], argv, 10000)

    passes: list[tuple[int, float]] = []
    price = cc._price_block

    def counting(pr, cols, sup_idx, sup_x, m, thr):
        out = price(pr, cols, sup_idx, sup_x, m, thr)
        # violators: -g_s > 0 off the support and the own index (recomputed, not timed apart)
        R = pr.W[:, cols] - (np.einsum("dns,ns->dn", pr.W[:, sup_idx], sup_x) if sup_idx.shape[1] else 0.0)
        V = (2.0 * R).T @ pr.W - pr.p
        V[np.arange(cols.size), cols] = -np.inf
        rows = np.repeat(np.arange(cols.size), sup_idx.shape[1])
        V[rows, sup_idx.ravel()] = np.where(sup_x.ravel() > 0, -np.inf, V[rows, sup_idx.ravel()])
        passes.append((cols.size, float(np.count_nonzero(V > 0)) / V.size))
        return out

    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    res = fo.solve_transfer_first_order(W, p, lam, tol=1e-10)
    prof.disable()
    total = time.perf_counter() - t0
    stats = pstats.Stats(prof).stats
    print(f"{args.kind} T={args.tasks} d={args.features}: {total:.2f} s under cProfile, "
          f"{res.n_iter} epochs, certificate {res.certificate:.1e}")
    for name, key in STAGES.items():
        file, func = key.split(":")
        cum = sum(v[3] for k, v in stats.items() if k[0].endswith(file) and k[2] == func)
        print(f"  {name:24s} {cum:7.2f} s")
    arg = sum(v[3] for k, v in stats.items() if k[2] == "<method 'argpartition' of 'numpy.ndarray' objects>")
    print(f"  {'of which ranking (argpartition)':24s} {arg:7.2f} s")

    # second run, untimed, counting the violators of every pricing pass
    fo._price_block = counting
    try:
        fo.solve_transfer_first_order(W, p, lam, tol=1e-10)
    finally:
        fo._price_block = price
    print(f"pricing passes (columns priced, fraction of their coordinates that violate; a block "
          f"works on its violators alone at <= 1/{cc._SPARSE_FRACTION}):")
    for k, (n, frac) in enumerate(passes, 1):
        print(f"  {k:3d} {n:6d} {frac:8.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
