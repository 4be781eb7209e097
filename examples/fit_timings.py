"""Time whole fits (``fit_alternating`` defaults: L-BFGS with B eliminated by B-steps, one BLAS thread).

Usage (from the repository root, the release data in ../shared/data)::

    python examples/fit_timings.py release reg200 release_defaults tab140_ridge0.1 tab140_mu0

Prints, per case, the median and minimum wall time of 3 fits, the iterations, whether
the KKT certificate reached ``tol = 1e-6``, the objective, the largest entry of ``B``, the
transfer ridge and the number of warnings. The ``*_paperB`` cases have no ridge on ``B``.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

from amtl_cvx import fit_alternating, load_release_mat, make_regression_tasks, make_tabular_tasks

CASES = {
    # the paper's objective (both ridges 0): the targets
    "release": (lambda: load_release_mat("../shared/data/synthetic_dataset.mat").train,
                dict(lam=10.0, mu=0.1, ridge=0.0, transfer_ridge=0.0)),
    "reg200": (lambda: make_regression_tasks(n_tasks=200, n_features=20, random_state=0).train,
               dict(lam=1.0, mu=0.1, ridge=0.0, transfer_ridge=0.0)),
    # the defaults (ridge 0.1 lam, transfer ridge auto)
    "release_defaults": (lambda: load_release_mat("../shared/data/synthetic_dataset.mat").train,
                         dict(lam=10.0, mu=0.1)),
    "tab140_ridge0.1": (lambda: make_tabular_tasks(random_state=0).train, dict(lam=1.0, mu=0.1, ridge=0.1)),
    "tab140_mu0": (lambda: make_tabular_tasks(random_state=0).train, dict(lam=0.1, mu=0.0)),
    "tab140_mu0_paperB": (lambda: make_tabular_tasks(random_state=0).train, dict(lam=0.1, mu=0.0, transfer_ridge=0.0,
                                                                                  max_iter=30)),
    "tab140_lam0.1": (lambda: make_tabular_tasks(random_state=0).train, dict(lam=0.1, mu=0.1)),
    "tab140_lam0.1_paperB": (lambda: make_tabular_tasks(random_state=0).train, dict(lam=0.1, mu=0.1,
                                                                                     transfer_ridge=0.0)),
}


def main(names: list[str]) -> None:
    for name in names:
        make, kwargs = CASES[name]
        data = make()
        times = []
        for _ in range(3):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                t0 = time.perf_counter()
                fit = fit_alternating(data, **kwargs)
                times.append(time.perf_counter() - t0)
        print(f"{name}: median {np.median(times):.3g} s (min {min(times):.3g}), n_iter {fit.n_iter}, "
              f"converged {fit.converged}, certificate {fit.certificate:.1e}, F {fit.objective:.10g}, "
              f"max B {fit.B.max():.3g}, transfer_ridge {fit.transfer_ridge:.3g}, warnings {len(caught)}")


if __name__ == "__main__":
    main(sys.argv[1:] or list(CASES))
