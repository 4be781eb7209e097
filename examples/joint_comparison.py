"""Algorithm 1's problem three ways, from the same single-task start (issue 10, item 2).

Usage (from the repository root, the release data in ../shared/data)::

    OMP_NUM_THREADS=1 python examples/joint_comparison.py [release reg200 tab140]

For each case it runs

- ``lbfgs``: ``fit_alternating``'s default (``B`` eliminated by exact B-steps, L-BFGS
  over ``W``, Newton finish where it applies);
- ``alternating``: Algorithm 1 with extrapolation (``method="alternating"``);
- ``joint``: a generic quasi-Newton method over both blocks: SciPy's L-BFGS-B on
  ``(W, B)`` with the bounds ``B >= 0`` (the diagonal of ``B`` is not a variable), in
  the same per-task preconditioned coordinates for ``W`` and a diagonal scaling for
  ``B``, 10 correction pairs;

and prints, per method, the iterations, the CPU time, the objective ``F`` and the KKT
certificate (:func:`solvers.joint.amtl_kkt_residual`) at the point it returns. Every
method stops at the certificate ``1e-6`` or its iteration cap. ``F`` is biconvex, not
convex: the methods may stop at different stationary points, and the lowest ``F`` says
which one found the better point, not which one is right.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
from scipy.optimize import minimize

from amtl_cvx import fit_alternating, load_release_mat, make_regression_tasks, make_tabular_tasks
from solvers.joint import _Losses, _kkt
from solvers.tasks import solve_tasks

TOL = 1e-6
JOINT_MAX_ITER = 5000

CASES = {
    # (data, lam, mu, ridge, transfer ridge); the paper's objective for the first two
    "release": (lambda: load_release_mat("../shared/data/synthetic_dataset.mat").train, 10.0, 0.1, 0.0, 0.0),
    "reg200": (lambda: make_regression_tasks(n_tasks=200, n_features=20, random_state=0).train,
               1.0, 0.1, 0.0, 0.0),
    # the real-data-like case with the default transfer ridge (resolved by the first fit)
    "tab140": (lambda: make_tabular_tasks(random_state=0).train, 1.0, 0.1, 0.1, "auto"),
}


def joint_lbfgsb(data, lam, mu, ridge, rho, W0):
    """L-BFGS-B over ``(W, B)`` from ``(W0, 0)``; returns ``(W, B, iterations)``."""
    T, d = data.n_tasks, data.n_features
    Lf = _Losses(data.Xs, data.ys, "squared")
    c = np.ones(T)
    P = Lf.G / Lf.n[:, None, None] + 2.0 * (lam + ridge) * np.eye(d)
    Rt = np.linalg.cholesky(P)
    Rinv = np.linalg.inv(Rt)
    off = ~np.eye(T, dtype=bool)
    # B[s, t] is scaled by the square root of its curvature in the B-step at W0
    sB = np.sqrt(2.0 * lam * np.sum(W0 * W0, axis=0)[:, None] + 2.0 * rho + 1e-12) * np.ones((1, T))
    nW = T * d

    def unpack(x):
        W = np.einsum("tji,tj->it", Rinv, x[:nW].reshape(T, d))
        B = np.zeros((T, T))
        B[off] = x[nW:] / sB[off]
        return W, B

    def fg(x):
        W, B = unpack(x)
        L, gL = Lf(W)
        a = 1.0 + mu * c * B.sum(axis=1)
        R = W - W @ B
        f = a @ L + lam * np.sum(R * R) + ridge * np.sum(W * W) + rho * np.sum(B * B)
        gW = gL * a + 2.0 * lam * (R - R @ B.T) + 2.0 * ridge * W
        gB = (mu * c * L)[:, None] - 2.0 * lam * (W.T @ R) + 2.0 * rho * B
        return f, np.concatenate([np.einsum("tij,jt->ti", Rinv, gW).ravel(), (gB / sB)[off]])

    its = [0]

    def callback(xk):
        its[0] += 1
        if its[0] % 10 == 0 and _kkt(Lf, *unpack(xk), lam, mu, c, ridge, rho) <= TOL:
            raise StopIteration

    x0 = np.concatenate([np.einsum("tji,jt->ti", Rt, W0).ravel(), np.zeros(T * (T - 1))])
    out = minimize(fg, x0, jac=True, method="L-BFGS-B", callback=callback,
                   bounds=[(None, None)] * nW + [(0.0, None)] * (T * (T - 1)),
                   options=dict(maxiter=JOINT_MAX_ITER, maxcor=10, ftol=0.0, gtol=0.0,
                                maxfun=10 * JOINT_MAX_ITER))
    W, B = unpack(out.x)
    return W, B, its[0]


def main(names: list[str]) -> None:
    for name in names:
        make, lam, mu, ridge, rho = CASES[name]
        data = make()
        rows = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the paper's objective warns of a singular I - B
            t0 = time.process_time()
            fit = fit_alternating(data, lam=lam, mu=mu, ridge=ridge, transfer_ridge=rho, tol=TOL)
            rows.append(("lbfgs", fit.n_iter, time.process_time() - t0, fit.objective, fit.certificate))
            rho = fit.transfer_ridge
            t0 = time.process_time()
            alt = fit_alternating(data, lam=lam, mu=mu, ridge=ridge, transfer_ridge=rho, tol=TOL,
                                  method="alternating", max_iter=2000)
            rows.append(("alternating", alt.n_iter, time.process_time() - t0, alt.objective, alt.certificate))
        t0 = time.process_time()
        W0 = solve_tasks(data.Xs, data.ys, np.zeros((data.n_tasks, data.n_tasks)), lam, ridge=ridge,
                         tol=1e-12).solution
        W, B, its = joint_lbfgsb(data, lam, mu, ridge, rho, W0)
        Lf = _Losses(data.Xs, data.ys, "squared")
        c = np.ones(data.n_tasks)
        L, _ = Lf(W)
        R = W - W @ B
        F = float((1.0 + mu * B.sum(axis=1)) @ L + lam * np.sum(R * R) + ridge * np.sum(W * W)
                  + rho * np.sum(B * B))
        rows.append(("joint L-BFGS-B", its, time.process_time() - t0, F, _kkt(Lf, W, B, lam, mu, c, ridge, rho)))
        print(f"{name} (lam={lam:g}, mu={mu:g}, ridge={ridge:g}, transfer ridge={rho:.3g})")
        for method, n, secs, F, cert in rows:
            print(f"  {method:15s} iterations {n:5d}  CPU {secs:7.2f} s  F {F:.10g}  certificate {cert:.1e}")


if __name__ == "__main__":
    main(sys.argv[1:] or list(CASES))
