"""The first-order backend where a user selects it: ``amtl-cvx fit/verify --backend
first-order``, ``fit_alternating(client=...)``, and the baselines' own backends."""

from __future__ import annotations

import numpy as np
import pytest

from amtl_cvx import fit_alternating, load_model, make_regression_tasks, save_release_mat
from amtl_cvx.baselines.multitask import fit_pooled
from amtl_cvx.tools.cli import main


def test_verify_backend_first_order_adds_its_rows(capsys):
    assert main(["verify", "--tasks", "6", "--features", "4", "--step", "bstep", "--backend", "first-order"]) == 0
    out = capsys.readouterr().out
    assert "first-order" in out
    assert "solves passed (fast and first-order: converged and exactly feasible" in out


def test_verify_default_has_no_first_order_row(capsys):
    assert main(["verify", "--tasks", "6", "--features", "4", "--step", "bstep"]) == 0
    out = capsys.readouterr().out
    assert "first-order" not in out


def test_fit_backend_first_order(tmp_path, capsys):
    path = tmp_path / "small.mat"
    save_release_mat(make_regression_tasks(n_tasks=6, n_features=3, n_samples=30, random_state=0), path)
    code = main(["fit", str(path), "--backend", "first-order", "--lam", "1", "--mu", "0.1",
                 "--baselines", "none", "--algorithm", "alternating", "--output", str(tmp_path / "m.npz")])
    assert code == 0
    model = load_model(tmp_path / "m.npz")
    assert model.backend == "first-order"
    assert np.isfinite(model.coef_).all()


def test_fit_alternating_client_needs_first_order():
    data = make_regression_tasks(n_tasks=6, n_features=2, n_samples=20, random_state=0).train
    with pytest.raises(ValueError, match="client"):
        fit_alternating(data, client=object())


def test_first_order_fit_matches_fast():
    data = make_regression_tasks(n_tasks=6, n_features=4, n_samples=25, random_state=1).train
    fo = fit_alternating(data, lam=1.0, mu=0.1, backend="first-order", method="alternating", max_iter=300)
    fast = fit_alternating(data, lam=1.0, mu=0.1, backend="fast", method="alternating", max_iter=300)
    assert fo.converged and fast.converged
    assert abs(fo.objective - fast.objective) <= 1e-6 * abs(fast.objective)


def test_baselines_refuse_first_order_backend():
    data = make_regression_tasks(n_tasks=6, n_features=2, n_samples=20, random_state=0).train
    with pytest.raises(ValueError, match="backend must be one of"):
        fit_pooled(data, 1.0, backend="first-order")


def test_bench_backend_first_order_adds_its_row(tmp_path, capsys):
    out_stem = tmp_path / "bench"
    assert main(["bench", "--tasks", "8", "--features", "3", "--steps", "bstep", "--repeat", "1",
                 "--backend", "first-order", "--output", str(out_stem)]) == 0
    assert "fast-first-order" in capsys.readouterr().out
    assert "fast-first-order" in (tmp_path / "bench.csv").read_text()


def test_bench_times_only_the_cvxpy_solvers_named(tmp_path, capsys):
    out_stem = tmp_path / "bench"
    assert main(["bench", "--tasks", "8", "--features", "3", "--steps", "bstep", "--repeat", "1",
                 "--backend", "first-order", "--solvers", "CLARABEL", "--output", str(out_stem)]) == 0
    out = capsys.readouterr().out
    assert "cvxpy-CLARABEL" in out and "OSQP" not in out and "ECOS" not in out


def test_bench_refuses_an_unknown_solver(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--solvers", "SCS"])
    assert exc.value.code != 0
    assert "--solvers" in capsys.readouterr().err
