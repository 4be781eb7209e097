"""Three AMTL variants, each a few lines of CVXPY, next to plain AMTL (docs/prototyping.md).

1. column sums of B at most 1 (a task receives at most one unit of transfer);
2. a group (row-wise l2) penalty on B (a task sends to all or none);
3. a Huber loss in the W-step (outliers).

Each is fitted by Algorithm 1 (its custom step by CVXPY, the other step by the fast
solvers) on the release's synthetic_dataset.mat, on a generated imbalanced problem
(tasks of 500 and 5 rows) at the default ridge and (the two B-step variants) at
ridge = 0, and on the same imbalanced problem with 10% of its training targets
corrupted. Usage::

    python examples/variants.py [--data-dir ../shared/data] [--lam 1] [--mu 0.1]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import cvxpy as cp
import numpy as np

from amtl_cvx import Variant, fit_alternating, load_release_mat, make_regression_tasks
from amtl_cvx.data import IMBALANCED_SIZES
from amtl_cvx.estimators.metrics import task_rmse

# ------------------------------------------------------------ the user code: 3 variants
# 1. column sums of B at most 1 (4 lines)
column_sums = Variant(
    transfer=lambda s: cp.Problem(cp.Minimize(s.objective), [cp.sum(s.B, axis=0) <= 1]),
    name="column sums <= 1",
)


# 2. group (row-wise l2) penalty on B (6 lines)
class GroupRows(Variant):
    def __init__(self, gamma=1.0):
        self.gamma = gamma

    def transfer_problem(self, s):
        return cp.Problem(cp.Minimize(s.objective + self.gamma * cp.sum(cp.norm(s.B, 2, axis=1))))


# 3. Huber loss in the W-step (the losses also price the edges of the B-step) (14 lines)
class HuberLoss(Variant):
    def __init__(self, M=1.0):
        self.M = M

    def task_loss_values(self, W, data, loss):
        r = [np.abs(X @ W[:, t] - y) for t, (X, y) in enumerate(zip(data.Xs, data.ys))]
        return np.array([np.sum(np.where(a <= self.M, a * a, 2 * self.M * a - self.M**2)) / (2 * len(a))
                         for a in r])

    def tasks_problem(self, s):
        L = [cp.sum(cp.huber(X @ s.W[:, t] - y, self.M)) / (2 * len(y))
             for t, (X, y) in enumerate(zip(s.data.Xs, s.data.ys))]
        return cp.Problem(cp.Minimize(s.weights @ cp.hstack(L) + s.penalty))
# ------------------------------------------------------------------------------------


def _corrupt(ds, fraction: float = 0.1, size: float = 20.0, seed: int = 0):
    """The dataset with ``fraction`` of every task's training targets shifted by
    +-``size`` times the targets' standard deviation (validation and test untouched)."""
    from amtl_cvx.data import MultiTaskData

    rng = np.random.default_rng(seed)
    ys = []
    for y in ds.train.ys:
        y = y.copy()
        k = max(1, int(round(fraction * len(y))))
        idx = rng.choice(len(y), size=k, replace=False)
        y[idx] += rng.choice([-1.0, 1.0], size=k) * size * np.std(y)
        ys.append(y)
    train = MultiTaskData(list(ds.train.Xs), ys)
    return train, ds.test


def _row(name, fit, test, seconds):
    W, B = fit.W, fit.B
    senders = int(np.sum(B.max(axis=1) > 1e-6))
    return (f"| {name} | {fit.objective:.6g} | {fit.n_iter} | {'yes' if fit.converged else 'no'} | "
            f"{seconds:.2f} | {task_rmse(W, test).mean():.4g} | {B.sum(axis=0).max():.4g} | {senders} | "
            f"{np.linalg.norm(W, axis=0).max():.4g} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser.add_argument("--lam", type=float, default=1.0)
    parser.add_argument("--mu", type=float, default=0.1)
    parser.add_argument("--gamma", type=float, default=1.0, help="group penalty weight")
    parser.add_argument("--huber", type=float, default=None,
                        help="Huber threshold M (default: 1.345 times the robust scale, 1.4826 times "
                             "the median absolute residual, of plain AMTL's training residuals)")
    args = parser.parse_args(argv)

    problems = []
    path = Path(args.data_dir) / "synthetic_dataset.mat"
    if path.is_file():
        ds = load_release_mat(path)
        problems.append(("synthetic_dataset.mat", ds.train, ds.test, "auto"))
    else:
        print(f"({path} not found: release data skipped)")
    gen = make_regression_tasks(n_samples=IMBALANCED_SIZES, random_state=0)
    problems.append(("generated imbalanced (500 / 5 rows)", gen.train, gen.test, "auto"))
    problems.append(("generated imbalanced, ridge = 0", gen.train, gen.test, 0.0))
    train, test = _corrupt(gen)
    problems.append(("generated imbalanced, 10% outliers", train, test, "auto"))

    for title, train, test, ridge in problems:
        kw = dict(lam=args.lam, mu=args.mu, ridge=ridge, max_iter=500)
        t0 = time.perf_counter()
        # Algorithm 1, fast solvers, on the problem the variants modify (no ridge on B)
        plain = fit_alternating(train, method="alternating", transfer_ridge=0.0, **kw)
        plain_seconds = time.perf_counter() - t0
        residuals = np.concatenate([y - X @ plain.W[:, t] for t, (X, y) in enumerate(zip(train.Xs, train.ys))])
        M = args.huber if args.huber is not None else 1.345 * 1.4826 * float(np.median(np.abs(residuals)))
        print(f"\n### {title} (lam = {args.lam:g}, mu = {args.mu:g}, ridge = {ridge})\n")
        print("| fit | objective | alternations | converged | seconds | test RMSE | max column sum of B "
              "| sending tasks | max norm of w_t |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        print(_row("plain AMTL (built-in, fast)", plain, test, plain_seconds))
        variants = [("column sums <= 1", column_sums), (f"group rows, gamma = {args.gamma:g}", GroupRows(args.gamma))]
        if ridge != 0.0:  # (at ridge = 0 the question is the B-step's)
            variants.append((f"Huber W-step, M = {M:.3g}", HuberLoss(M)))
        for name, variant in variants:
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fit = fit_alternating(train, variant=variant, **kw)
            seconds = time.perf_counter() - t0
            print(_row(name, fit, test, seconds))
            for w in caught:
                print(f"  ({type(w.message).__name__}: {str(w.message)[:160]})")


if __name__ == "__main__":
    main()
