"""Every subproblem met along full fits on the release data: fast solution == exact solution.

A recording backend runs a fit with the fast solvers and keeps every subproblem it
meets; each one is then solved exactly with CVXPY (Clarabel, the tightest) and the two
are compared on objective (the numpy definition), feasibility and, where the minimiser
is unique, the solution.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from amtl_cvx import MultiTaskData, fit_alternating, fit_curriculum, load_release_mat
from amtl_cvx.backends import FastBackend
from amtl_cvx.objective import bstep_objective, curriculum_objective, wstep_objective
from amtl_cvx.problems import CurriculumStepProblem, TasksProblem, TransferProblem
from tests.conftest import release_file

GAP = 1e-7  # relative objective gap allowed between the fast and the exact solutions


class RecordingBackend(FastBackend):
    """The fast backend, keeping a copy of every subproblem and its fast solution."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[tuple] = []

    def transfer(self, W, penalty, lam, B0=None, ridge=0.0):
        B = super().transfer(W, penalty, lam, B0, ridge)
        self.calls.append(("transfer", (W.copy(), penalty.copy(), lam, ridge), B))
        return B

    def tasks(self, B, lam, weights, ridge, W0=None):
        W = super().tasks(B, lam, weights, ridge, W0)
        self.calls.append(("tasks", (B.copy(), lam, weights.copy(), ridge), W))
        return W

    def curriculum(self, task, W, learned, q, lam, ridge):
        w, b = super().curriculum(task, W, learned, q, lam, ridge)
        self.calls.append(("curriculum", (task, W.copy(), learned.copy(), q.copy(), lam, ridge), (w, b)))
        return w, b


def _record(monkeypatch, fitter, data, **kwargs):
    engines = []

    def make(backend, data_, loss, solver=None, tol=1e-9):
        engine = RecordingBackend(data_, loss, tol)
        engines.append(engine)
        return engine

    monkeypatch.setattr("amtl_cvx.fit.make_backend", make)
    fitter(data, **kwargs)
    return engines[0].calls


def _rel(a, b):
    return (a - b) / max(1.0, abs(b))


def _check_calls(calls, data, loss):
    seen = set()
    for kind, args, fast in calls:
        seen.add(kind)
        if kind == "transfer":
            W, p, lam, rho = args
            # with a transfer ridge the referee is the ridge-free statement of [W; sqrt(rho/lam) I]
            Wa = np.vstack([W, np.sqrt(rho / lam) * np.eye(W.shape[1])]) if rho > 0 else W
            exact = TransferProblem(*Wa.shape).set(Wa, p, lam).solve().solution
            assert np.all(fast >= 0) and np.all(np.diag(fast) == 0)
            f_fast = bstep_objective(W, fast, p, lam) + rho * np.sum(fast**2)
            f_exact = bstep_objective(W, exact, p, lam) + rho * np.sum(exact**2)
        elif kind == "tasks":
            B, lam, a, ridge = args
            exact = TasksProblem(data, loss).set(B, lam, a, ridge).solve().solution
            f_fast = wstep_objective(fast, B, data, lam=lam, weights=a, loss=loss, ridge=ridge)
            f_exact = wstep_objective(exact, B, data, lam=lam, weights=a, loss=loss, ridge=ridge)
            if loss == "squared":  # n_t > d: strictly convex, unique minimiser
                np.testing.assert_allclose(fast, exact, atol=1e-6 * max(1.0, np.abs(exact).max()))
        else:
            task, W, learned, q, lam, ridge = args
            X, y = data.Xs[task], data.ys[task]
            w_e, b_e = CurriculumStepProblem(X, y, data.n_tasks, task, loss).set(W, learned, q, lam, ridge).solve().solution
            w_f, b_f = fast
            assert np.all(b_f >= 0) and np.all(b_f[~learned] == 0)
            S = learned
            f_fast = curriculum_objective(X, y, w_f, b_f[S], W[:, S], q[S], lam=lam, loss=loss, ridge=ridge)
            f_exact = curriculum_objective(X, y, w_e, b_e[S], W[:, S], q[S], lam=lam, loss=loss, ridge=ridge)
        # the fast solution is never worse than the exact one beyond GAP
        assert _rel(f_fast, f_exact) <= GAP, (kind, f_fast, f_exact)
        # and the exact one is not much worse either (the referee is tight)
        assert _rel(f_exact, f_fast) <= 1e-6, (kind, f_fast, f_exact)
    return seen


@pytest.mark.parametrize("name", ["synthetic_dataset.mat", "synthetic_inbalance_1.mat"])
@pytest.mark.parametrize("lam, mu", [(10.0, 0.1), (1.0, 1.0)])
def test_alternating_on_release_regression(monkeypatch, name, lam, mu):
    data = load_release_mat(release_file(name)).train
    calls = _record(monkeypatch, fit_alternating, data, lam=lam, mu=mu, sigma=0.5, max_iter=6, method="alternating")
    assert _check_calls(calls, data, "squared") == {"transfer", "tasks"}
    assert len(calls) >= 7


def test_curriculum_on_release_regression(monkeypatch):
    data = load_release_mat(release_file("synthetic_dataset.mat")).train
    calls = _record(monkeypatch, fit_curriculum, data, lam=10.0, mu=0.1, selection="static")
    assert _check_calls(calls, data, "squared") == {"curriculum", "tasks"}


def _usps_subset(rows_per_class: int = 15) -> MultiTaskData:
    """The release's USPS tasks on a class-balanced subset of the training rows."""
    full = load_release_mat(release_file("usps1.mat")).train
    Y = np.column_stack(full.ys)
    keep = np.concatenate([np.flatnonzero(Y[:, k] == 1)[:rows_per_class] for k in range(Y.shape[1])])
    X = full.Xs[0][keep, :-1]
    return MultiTaskData([X] * full.n_tasks, [y[keep] for y in full.ys], add_bias=True)


def test_alternating_on_release_usps_logistic(monkeypatch):
    data = _usps_subset()
    calls = _record(monkeypatch, fit_alternating, data, lam=0.3, mu=0.1, loss="logistic", ridge=0.01, max_iter=2, method="alternating")
    assert _check_calls(calls, data, "logistic") == {"transfer", "tasks"}


def test_curriculum_on_release_usps_logistic(monkeypatch):
    data = _usps_subset(8)
    calls = _record(monkeypatch, fit_curriculum, data, lam=0.3, mu=0.1, loss="logistic", ridge=0.01, selection="static")
    assert _check_calls(calls, data, "logistic") == {"curriculum", "tasks"}


def test_solvers_never_import_cvxpy_or_sklearn():
    code = (
        "import sys, solvers, solvers.transfer, solvers.tasks, solvers.curriculum, solvers.losses;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('cvxpy', 'sklearn', 'amtl_cvx')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
