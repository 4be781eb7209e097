"""What gap-safe screening could save the first-order B-step: a measurement.

Gap-safe screening (Fercoq, Gramfort and Salmon 2015; Ndiaye et al. 2017) is one of the
candidates issue 13 names. Column ``t`` of the B-step in the solver's units
(``lam = 1``, ridge 0) is ``min ||w_t - W b||^2 + p'b`` over ``b >= 0, b_t = 0``; its
dual ``D(u) = u'w_t - ||u||^2 / 4`` subject to ``W_s'u <= p_s`` is 1/2-strongly concave,
so the dual optimum lies within ``2 sqrt(gap_t)`` of any feasible ``u``, and coordinate
``s`` is zero at the optimum if ``W_s'u + 2 sqrt(gap_t) ||W_s|| < p_s``. Once screened, a
coordinate need not be priced again.

This script runs ``solve_transfer_first_order`` once, records the supports every
pricing pass sees, and for each pass computes (from that pass's supports, with the
dual point and gap of ``transfer_duality_gap``) which coordinates the rule screens,
and checks that none of them is nonzero in the solution (exit status 1 otherwise).
A screening solver would price, in pass ``j``, only the coordinates no earlier pass
screened (the screens are safe, so they accumulate). For every pass it prints the
violators (``g_s < 0``), the coordinates screened so far and those left to price, and
times, on that pass's block, the dense pricing product ``(2 R)' W`` that the solver
computes against the gathered products over the coordinates left (median of 5).
One BLAS thread::

    OMP_NUM_THREADS=1 python examples/bstep_screening.py [--tasks 4000] [--kind dense]

A diagnostic (docs/first_order.md); it wraps the private pricing function.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bstep_fista_comparison import instance_from_args  # noqa: E402

import solvers.first_order as fo  # noqa: E402

_CHUNK = 1 << 19  # coordinates per gathered product (bounded memory)


def _median_time(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _screen(W, p, norms, cols, sup_idx, sup_x):
    """(violators, screened) boolean (n, T) masks of one pass, units lam = 1, ridge 0."""
    n = cols.size
    S = sup_idx.shape[1]
    R = W[:, cols] - (np.einsum("dns,ns->dn", W[:, sup_idx], sup_x) if S else 0.0)
    U = 2.0 * R  # the dual point of the residual (as transfer_duality_gap)
    Wu = U.T @ W
    ar = np.arange(n)
    Wu[ar, cols] = -np.inf
    lim = np.divide(p[None, :], Wu, out=np.full(Wu.shape, np.inf), where=Wu > 0)
    amax = np.minimum(lim.min(axis=1), 1.0e300)
    uw = np.einsum("dn,dn->n", U, W[:, cols])
    uu = np.einsum("dn,dn->n", U, U)
    with np.errstate(divide="ignore", invalid="ignore"):
        astar = np.where(uu > 0, 2.0 * uw / uu, 0.0)
    a = np.clip(astar, 0.0, amax)
    primal = np.einsum("dn,dn->n", R, R) + (np.einsum("ns,ns->n", p[sup_idx], sup_x) if S else 0.0)
    gap = np.maximum(primal - (a * uw - 0.25 * a * a * uu), 0.0)
    radius = 2.0 * np.sqrt(gap)
    screened = a[:, None] * Wu + radius[:, None] * norms[None, :] < p[None, :]
    screened[ar, cols] = False
    violators = Wu - p[None, :] > 0  # -g_s > 0 (on the support too: counted apart below)
    if S:
        on = sup_x > 0
        rr, ss = np.nonzero(on)
        violators[rr, sup_idx[rr, ss]] = False
        screened[rr, sup_idx[rr, ss]] = False
    return violators, screened, R


def main(argv: list[str] | None = None) -> int:
    args, W, p, lam = instance_from_args(__doc__.splitlines()[0], argv, 4000)
    T = args.tasks

    passes = []
    price = fo._price_block

    def recording(pr, cols, sup_idx, sup_x, m, thr):
        passes.append((pr, cols.copy(), sup_idx.copy(), sup_x.copy()))
        return price(pr, cols, sup_idx, sup_x, m, thr)

    fo._price_block = recording
    try:
        res = fo.solve_transfer_first_order(W, p, lam, tol=1e-10)
    finally:
        fo._price_block = price
    print(f"{args.kind} T={T} d={args.features}: {len(passes)} pricing passes, certificate {res.certificate:.1e}")
    print("pass  columns  violators  screened  to price  dense product [s]  gathered [s]")
    done = {}  # column -> screened mask accumulated over earlier passes
    tot_dense = tot_gather = 0.0
    for k, (pr, cols, sup_idx, sup_x) in enumerate(passes, 1):
        Wn, pn = pr.W, pr.p
        if pr.rho != 0:
            print("ridge > 0: not measured")
            return 1
        viol, scr, R = _screen(Wn, pn, pr.norms, cols, sup_idx, sup_x)
        before = np.stack([done.get(int(c), np.zeros(T, bool)) for c in cols])
        left = ~before
        left[np.arange(cols.size), cols] = False
        rows, ss = np.nonzero(left)
        R2 = 2.0 * R
        t_dense = _median_time(lambda: R2.T @ Wn)
        t_gather = _median_time(lambda: [np.einsum("dk,dk->k", R2[:, rows[i:i + _CHUNK]], Wn[:, ss[i:i + _CHUNK]])
                                         for i in range(0, rows.size, _CHUNK)])
        tot_dense += t_dense
        tot_gather += t_gather
        for i, c in enumerate(cols):
            done[int(c)] = before[i] | scr[i]
        n_all = cols.size * (T - 1)
        print(f"{k:4d} {cols.size:8d} {viol.sum() / n_all:10.4f} {(before | scr).sum() / n_all:9.4f}"
              f" {rows.size / n_all:9.4f} {t_dense:18.4f} {t_gather:13.4f}")
    # the rule is safe: no screened coordinate may be nonzero in the solution
    Bs = sp.csc_matrix(res.solution)
    unsafe = sum(int(np.count_nonzero(mask[Bs.indices[Bs.indptr[c]:Bs.indptr[c + 1]]])) for c, mask in done.items())
    print(f"screened coordinates nonzero in the solution: {unsafe}")
    print(f"total over the passes: dense {tot_dense:.3f} s, gathered over the coordinates left {tot_gather:.3f} s "
          f"(solver's own pricing passes include ranking and certificates besides the product)")
    return 0 if unsafe == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
