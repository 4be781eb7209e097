"""The amtl-cvx command line, run in-process and as an installed script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from amtl_cvx.cli import main


def test_demo_runs_and_reports(capsys):
    assert main(["demo", "--tasks", "8", "--features", "6", "--lam", "0.1", "--mu", "0,1"]) == 0
    out = capsys.readouterr().out
    assert "per-task test RMSE" in out and "mean" in out
    assert "strongest learned edges" in out and "planted" in out
    assert out.count(" -> ") >= 3


def test_fit_release_file_saves_npz(synthetic_path, tmp_path, capsys):
    out = tmp_path / "model.npz"
    assert main(["fit", str(synthetic_path), "--lam", "10", "--mu", "0.1", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "per-task test RMSE" in text and f"saved W (21, 12) and B (12, 12) to {out}" in text
    with np.load(out, allow_pickle=False) as z:
        assert z["W"].shape == (21, 12) and z["B"].shape == (12, 12)
        assert np.all(z["B"] >= 0) and np.all(np.diag(z["B"]) == 0)


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
