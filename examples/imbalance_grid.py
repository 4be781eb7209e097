"""Alternating AMTL over the results grid of one release file, at ``ridge = RATIO * lam``.

Usage::

    python examples/imbalance_grid.py ../shared/data/synthetic_inbalance_1.mat 0.1
    python examples/imbalance_grid.py ../shared/data/synthetic_inbalance_1.mat 0.1 --transfer-ridge 0

For every (lam, mu) of the grid of ``examples/reproduce_release.py`` (80 points) it fits
``fit_alternating`` (fast backend, one BLAS thread; along each lam, mu increasing, every
point warm-started from the previous one, the first from the single-task models) and
prints one line per point (test and validation RMSE, the smallest singular value of
``I - B``, whether the KKT certificate was reached), then a summary: the worst grid
point's mean test RMSE over the best point's, and the point validation picks. The
numbers of docs/objective.md, "The default ridge" and "The transfer ridge", are these
summaries. ``--transfer-ridge`` (default ``auto``, the fit's default) sets the ridge on ``B``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from amtl_cvx.algorithms import fit_alternating
from amtl_cvx.data import load_release_mat
from amtl_cvx.estimators.metrics import task_errors

LAMS = (0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
MUS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", help="a release .mat file (squared loss)")
    parser.add_argument("ratio", type=float, help="ridge = ratio * lam (0: the paper's objective)")
    parser.add_argument("--transfer-ridge", default="auto",
                        help="transfer_ridge of fit_alternating: 'auto' (default) or a number (0: the paper's)")
    args = parser.parse_args()
    transfer_ridge = args.transfer_ridge if args.transfer_ridge == "auto" else float(args.transfer_ridge)
    ds = load_release_mat(args.path)
    rows = []
    t0 = time.perf_counter()
    for lam in LAMS:
        previous = None
        for mu in MUS:
            start = {} if previous is None else dict(W_init=previous.W, B_init=previous.B)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # counted below instead
                fit = fit_alternating(ds.train, lam=lam, mu=mu, ridge=args.ratio * lam,
                                      transfer_ridge=transfer_ridge, **start)
            previous = fit
            s = np.linalg.svd(np.eye(ds.train.n_tasks) - fit.B, compute_uv=False)[-1]
            test = task_errors(fit.W, ds.test, "squared").mean()
            val = task_errors(fit.W, ds.val, "squared").mean()
            rows.append((lam, mu, test, val, fit.converged))
            print(f"lam={lam:g} mu={mu:g}: test {test:.2f} val {val:.2f} smallest singular value "
                  f"of I - B {s:.1e} certified {fit.converged}", flush=True)
    test = np.array([r[2] for r in rows])
    lam, mu, t_best, _, _ = rows[int(np.argmin([r[3] for r in rows]))]
    print(f"SUMMARY {args.path} ridge = {args.ratio:g} lam, transfer_ridge {args.transfer_ridge}: best test {test.min():.2f}, worst "
          f"{test.max():.2f}, worst/best {test.max() / test.min():.2f}; validation picks lam={lam:g} "
          f"mu={mu:g} (test {t_best:.2f}); {sum(not r[4] for r in rows)} of {len(rows)} fits at "
          f"max_iter; {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
