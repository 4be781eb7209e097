"""The amtl-cvx command line, run in-process and as an installed script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from amtl_cvx.tools.cli import main


def test_demo_runs_and_reports(capsys):
    assert main(["demo", "--tasks", "8", "--features", "6", "--lam", "0.1", "--mu", "0,1"]) == 0
    out = capsys.readouterr().out
    assert "per-task test RMSE" in out and "mean" in out
    assert "strongest learned edges" in out and "planted" in out
    assert out.count(" -> ") >= 3


def test_fit_release_file_saves_a_model_load_model_reads(synthetic_path, tmp_path, capsys):
    """The file amtl-cvx fit writes used to be unreadable by load_model."""
    from amtl_cvx import load_model, load_release_mat, stack_tasks
    from amtl_cvx.estimators.metrics import task_errors

    out = tmp_path / "model.npz"
    assert main(["fit", str(synthetic_path), "--lam", "10", "--mu", "0.1", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "per-task test RMSE" in text and "; AMTLRegressor, W (21, 12), B (12, 12)) to " + str(out) in text
    model = load_model(out)
    assert model.lam == 10 and model.mu == 0.1 and model.transfer_matrix_.shape == (12, 12)
    B = model.transfer_matrix_
    assert np.all(B >= 0) and np.all(np.diag(B) == 0)
    # its predictions are the fitted W's: the same test RMSE as the report's AMTL column
    ds = load_release_mat(synthetic_path)
    W = np.vstack([model.coef_.T, model.intercept_[None, :]])
    X, y = stack_tasks(ds.test)
    resid = model.predict(X) - y
    per_task = [np.sqrt(np.mean(resid[X[:, 0] == t] ** 2)) for t in range(12)]
    np.testing.assert_allclose(per_task, task_errors(W, ds.test, "squared"), rtol=1e-10)
    assert f"{np.mean(per_task):9.4f}" in text


def test_fit_reports_every_model_and_which_validation_picks(synthetic_path, tmp_path, capsys):
    """The report lists single-task, pooled, the baselines and both AMTL algorithms, each
    with its validation and test error, and names the model validation picks."""
    import re

    from amtl_cvx import load_release_mat
    from amtl_cvx.estimators.metrics import task_errors
    from amtl_cvx.model_selection import select_baseline, select_single_task

    out = tmp_path / "m.npz"
    assert main(["fit", str(synthetic_path), "--lam", "1", "--mu", "0,3", "-o", str(out),
                 "--baselines", "pooled,mean_regularized,l21,trace_norm"]) == 0
    text = capsys.readouterr().out
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^(.{24}) +(\d+\.\d{4}) +(\d+\.\d{4}) ", line)
        if m:
            rows[m.group(1).strip()] = (float(m.group(2)), float(m.group(3)))
    assert list(rows) == ["single-task", "pooled (one model)", "mean-regularised MTL",
                          "l2,1 feature selection", "trace norm (low rank)",
                          "AMTL, Algorithm 1", "AMTL, Algorithm 2"]
    ds = load_release_mat(synthetic_path)
    for label, sel in (("single-task", select_single_task(ds)), ("pooled (one model)", select_baseline(ds, "pooled"))):
        assert rows[label] == (round(sel.val_error, 4), round(task_errors(sel.W, ds.test, "squared").mean(), 4))
    best = min(rows, key=lambda k: rows[k][0])
    assert f"validation picks: {best} (validation RMSE {rows[best][0]:.4f}" in text
    assert "lam=1, mu=3, ridge=0.1 (auto)" in text and "greedy selection" in text  # 12 tasks: greedy
    # AMTL beats single-task ridge by at least 15% on this file (the target)
    assert rows["AMTL, Algorithm 1"][1] < 0.85 * rows["single-task"][1]


def test_fit_says_when_amtl_chose_no_transfer(synthetic_path, tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert main(["fit", str(synthetic_path), "--lam", "100", "--mu", "10", "--baselines", "none",
                 "--algorithm", "alternating", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "AMTL, Algorithm 1 chose B = 0: it is single-task at lam = 110 (lam 100 + ridge 10)" in text


def test_amtl_at_an_edge_of_its_lam_grid_is_noted(synthetic_path, tmp_path, capsys):
    """On the release data AMTL's optimum is near lam = 1 (docs/results.md): a grid above
    it puts the choice at the grid's lower edge, and the report says so."""
    assert main(["fit", str(synthetic_path), "--lam", "10,30,100", "--mu", "0,0.1,1", "--baselines", "none",
                 "--algorithm", "alternating", "--no-progress", "-o", str(tmp_path / "m.npz")]) == 0
    text = capsys.readouterr().out
    assert "note: AMTL, Algorithm 1's lam=10, mu=1 is at an edge of its grid" in text


def test_grid_edges_flags_an_optimum_at_the_end_of_its_grid(synthetic_path):
    from amtl_cvx import load_release_mat
    from amtl_cvx.model_selection import grid_edges, select_single_task

    ds = load_release_mat(synthetic_path)
    assert grid_edges(select_single_task(ds)) == {}  # the default grid: interior optimum
    assert grid_edges(select_single_task(ds, (10.0, 30.0, 100.0))) == {"lam": 10.0}
    assert grid_edges(select_single_task(ds, (10.0, 100.0))) == {}  # two values: no edge to speak of


def test_fit_classification_file_saves_a_classifier(usps_path, tmp_path, capsys):
    from amtl_cvx import load_model, load_release_mat
    from amtl_cvx.estimators.metrics import one_vs_all_accuracy

    out = tmp_path / "usps.npz"
    assert main(["fit", str(usps_path), "--lam", "10", "--mu", "0.1", "--algorithm", "alternating",
                 "--baselines", "none", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    model = load_model(out)
    assert type(model).__name__ == "AMTLClassifier" and model.task_column is None
    ds = load_release_mat(usps_path)
    X = ds.test.Xs[0][:, :-1]  # shared rows; the bias is the model's intercept
    truth = np.argmax(np.column_stack(ds.test.ys), axis=1)
    W = np.vstack([model.coef_.T, model.intercept_[None, :]])
    acc = float(np.mean(model.predict(X) == truth))
    assert acc == one_vs_all_accuracy(W, ds.test)
    assert f"AMTL {acc:.4f}" in text


def test_fit_default_output_in_cwd(synthetic_path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", str(synthetic_path), "--lam", "10", "--mu", "0"]) == 0
    assert (tmp_path / "synthetic_dataset_amtl.npz").is_file()


def test_bad_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.mat"
    bad.write_text("not matlab")
    assert main(["fit", str(bad)]) == 2
    assert "could not be read" in capsys.readouterr().err


def test_bad_grid_value_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--lam", "-1"])
    assert "nonnegative" in capsys.readouterr().err


def test_console_script_help():
    script = Path(sys.executable).parent / "amtl-cvx"
    if not script.exists():
        pytest.skip("console script not installed next to this Python")
    res = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert "demo" in res.stdout and "fit" in res.stdout


def test_fit_reports_total_time_and_shows_progress_on_request(synthetic_path, tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert main(["fit", str(synthetic_path), "--lam", "10", "--mu", "0.1,1", "-o", str(out),
                 "--progress"]) == 0
    captured = capsys.readouterr()
    assert "done in" in captured.out and "(2 AMTL grid points)" in captured.out
    assert "AMTL grid" in captured.err  # the bar (tqdm writes to stderr)
    # not a terminal and not asked: no bar
    assert main(["fit", str(synthetic_path), "--lam", "10", "--mu", "0.1", "-o", str(out)]) == 0
    assert "AMTL grid" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, match",
    [
        (["demo", "--edges", "-1"], "--edges: expected an integer >= 1"),
        (["demo", "--tasks", "2"], "--tasks: expected an integer >= 3"),
    ],
)
def test_bad_demo_numbers_are_rejected(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and match in capsys.readouterr().err


def test_demo_with_few_tasks_runs(capsys):
    """--tasks 5 used to fail with "n_parents must be in 1..n_sources=1" (an internal name)."""
    assert main(["demo", "--tasks", "5", "--features", "4", "--lam", "0.1", "--mu", "0.1"]) == 0
    assert "per-task test RMSE" in capsys.readouterr().out


@pytest.mark.parametrize("name, match", [
    ("missing_dir/model.npz", "directory .* does not exist"),
    ("model", "must name an .npz file"),
    (".", "must name an .npz file"),
])
def test_fit_output_is_checked_before_fitting(synthetic_path, tmp_path, monkeypatch, capsys, name, match):
    """A missing directory used to end in a traceback after the whole grid; a name
    without .npz was written as NAME.npz while the report said NAME."""
    import re

    monkeypatch.chdir(tmp_path)
    assert main(["fit", str(synthetic_path), "--lam", "10", "--mu", "0.1", "-o", name]) == 2
    captured = capsys.readouterr()
    assert re.search(match, captured.err) and "Traceback" not in captured.err
    assert "per-task" not in captured.out  # refused before fitting
    assert list(tmp_path.iterdir()) == []


def test_verify_prints_a_verdict_and_fails_loudly(monkeypatch, capsys):
    assert main(["verify", "--tasks", "6", "--features", "4", "--step", "bstep"]) == 0
    assert "verdict: all 4 solves passed" in capsys.readouterr().out
    import amtl_cvx.tools.verification as verification

    monkeypatch.setattr(verification, "failed_checks", lambda rows: ["bstep fast: injected"])
    assert main(["verify", "--tasks", "6", "--features", "4", "--step", "bstep"]) == 1
    assert "verdict: 1 check(s) failed: bstep fast: injected" in capsys.readouterr().out


def test_help_shows_defaults_and_no_markup(capsys):
    for argv in (["--help"], ["demo", "--help"], ["fit", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = capsys.readouterr().out
        assert "``" not in text, argv
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 12)" in text and "(default: 0.03,0.1,0.3,1)" in text and "(default: None)" not in text


def test_compare_names_amtl_components_when_bits_are_few(capsys):
    """compare --bits 16 used to fail on an internal n_components."""
    assert main(["compare", "--dataset", "pcba", "--bits", "16"]) == 2
    err = capsys.readouterr().err
    assert "--amtl-components (64) must be at most --bits (16)" in err and "Traceback" not in err


def test_plot_writes_the_figures(synthetic_path, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = b"\x89PNG"
    demo_dir = tmp_path / "demo_figs"
    assert main(["demo", "--tasks", "6", "--features", "4", "--lam", "0.1", "--mu", "1",
                 "--plot", str(demo_dir)]) == 0
    fit_dir = tmp_path / "fit_figs"
    assert main(["fit", str(synthetic_path), "--lam", "10", "--mu", "0.1", "-o", str(tmp_path / "m.npz"),
                 "--plot", str(fit_dir)]) == 0
    for d in (demo_dir, fit_dir):
        for name in ("transfer_matrix.png", "objective_history.png"):
            assert (d / name).read_bytes()[:4] == png
    assert "figures written to" in capsys.readouterr().out
    a_file = tmp_path / "m.npz"
    assert main(["demo", "--tasks", "6", "--plot", str(a_file)]) == 2
    assert "--plot must name a directory" in capsys.readouterr().err


def test_fit_summarises_unconverged_grid_points(synthetic_path, tmp_path, monkeypatch, capsys):
    """One line naming the grid points that stopped at max_iter and the remedy, instead
    of a multi-line warning per fit; other warnings still show."""
    import warnings

    import amtl_cvx.model_selection.validation_split as selection
    from amtl_cvx.algorithms import ConvergenceWarning

    real = selection.fit_alternating

    def fit(data, **kwargs):
        if kwargs["lam"] == 10.0 and kwargs["mu"] == 1.0:
            warnings.warn("stopped at max_iter (injected)", ConvergenceWarning)
            warnings.warn("something else (injected)", RuntimeWarning)
        return real(data, **kwargs)

    monkeypatch.setattr(selection, "fit_alternating", fit)
    with pytest.warns(RuntimeWarning, match="something else"):
        assert main(["fit", str(synthetic_path), "--lam", "10", "--mu", "0.1,1", "--ridge", "0",
                     "--algorithm", "alternating", "-o", str(tmp_path / "m.npz")]) == 0
    out = capsys.readouterr().out
    assert "1 of 2 AMTL grid fits stopped at max_iter without the KKT certificate (lam=10 mu=1)" in out
    assert "use --ridge auto" in out


def test_exact_backend_refusal_is_one_line(synthetic_path, monkeypatch, capsys):
    """A statement too large for the machine: one line naming it and the way out, exit 1."""
    from amtl_cvx.problems import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 40 * 2**20)
    assert main(["fit", str(synthetic_path), "--lam", "10", "--mu", "0.1", "--backend", "cvxpy",
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("amtl-cvx: error: the ") and "statement (T = 12, d = 21" in err
    assert "backend='fast'" in err and err.count("\n") == 1


def test_results_md_usps_numbers_are_what_the_cli_prints(usps_path, tmp_path, capsys):
    """docs/results.md states the command that reproduces its USPS table; run it."""
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text()
    section = text[text.index("## usps1.mat"):]
    single, amtl = map(float, re.search(r"Single-task ([0-9.]+), AMTL ([0-9.]+)\.", section).groups())
    assert "--lam 0.001,0.01,0.1,1 --mu 0,0.1,1`" in section
    assert main(["fit", str(usps_path), "--lam", "0.001,0.01,0.1,1", "--mu", "0,0.1,1",
                 "--no-progress", "--output", str(tmp_path / "m.npz")]) == 0
    out = capsys.readouterr().out
    assert f"one-vs-all test accuracy: single-task {single:.4f}, AMTL {amtl:.4f}" in out


def test_selection_auto_is_greedy_up_to_63_tasks():
    from amtl_cvx.tools.cli import build_parser
    from amtl_cvx.tools.cli.grid import _curriculum_selection

    args = build_parser().parse_args(["fit", "x.mat"])
    assert _curriculum_selection(args, 63) == "greedy" and _curriculum_selection(args, 64) == "static"
    args = build_parser().parse_args(["fit", "x.mat", "--selection", "greedy"])
    assert _curriculum_selection(args, 500) == "greedy"


@pytest.mark.parametrize("argv, name", [
    (["fit", "x.mat", "--backend", "bogus"], "--backend"),
    (["compare", "--preset", "bogus"], "--preset"),
    (["verify", "--tasks", "1"], "--tasks"),
    ([], "command"),
])
def test_usage_errors_are_one_line_naming_the_argument(capsys, argv, name):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and name in captured.err and "usage:" not in captured.err
