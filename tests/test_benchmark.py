"""The timing benchmark on tiny sizes: rows, skip rule, ratios, files, tables."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from amtl_cvx.tools.benchmark import (
    BENCH_COLUMNS,
    FIT_COLUMNS,
    format_benchmark_table,
    format_fit_table,
    make_bench_instance,
    run_benchmark,
    run_fit_benchmark,
)
from amtl_cvx.tools.results import write_csv, write_json
from amtl_cvx.problems.objective import bstep_objective, task_losses

GAP = 1e-7
CVXPY_BACKENDS = {"cvxpy-OSQP", "cvxpy-ECOS", "cvxpy-CLARABEL"}


@pytest.fixture(scope="module")
def rows():
    return run_benchmark([10, 5], [3], repeat=1)


@pytest.fixture(scope="module")
def rows_no_time():
    lines: list[str] = []
    out = run_benchmark([5, 10], [3], repeat=1, time_limit=0, progress=lines.append)
    return out, lines


def _fast(rows, step, T):
    (row,) = [r for r in rows if r["step"] == step and r["T"] == T and r["backend"] == "fast"]
    return row


def test_rows_long_format(rows):
    assert len(rows) == 2 * 2 * 4  # steps x sizes x backends
    for row in rows:
        assert tuple(row) == BENCH_COLUMNS
        assert row["d"] == 3
    assert [r["T"] for r in rows][:8] == [5] * 8  # sizes run in increasing order
    assert {r["backend"] for r in rows} == {"fast"} | CVXPY_BACKENDS
    for row in rows:
        if row["backend"] == "fast":
            assert row["status"].startswith("converged")
            assert row["rel_gap"] == 0.0
        elif row["status"] == "optimal":  # every solve that succeeded agrees
            assert -GAP <= row["rel_gap"] <= GAP
        else:  # a failed solve is a row, not a crash
            assert row["status"].startswith("failed: ")
            assert math.isnan(row["objective"]) and math.isnan(row["ratio"])
    for step in ("bstep", "wstep"):
        for T in (5, 10):
            statuses = [r["status"] for r in rows if r["step"] == step and r["T"] == T]
            assert "optimal" in statuses


def test_ratio_and_times_consistent(rows):
    for row in rows:
        if row["status"].startswith("failed"):
            continue
        fast = _fast(rows, row["step"], row["T"])
        assert row["ratio"] == pytest.approx(row["total_time"] / fast["total_time"], rel=1e-12)
        assert row["compile_time"] >= 0 and row["solve_time"] > 0
        if row["backend"] == "fast":
            assert row["ratio"] == 1.0
            if row["step"] == "bstep":
                assert row["compile_time"] == 0.0
        else:
            assert row["total_time"] == pytest.approx(row["compile_time"] + row["solve_time"], rel=1e-12)
            assert row["wall_time"] >= row["solve_time"]


def test_objective_is_the_numpy_one(rows):
    inst = make_bench_instance(5, 3)
    np.testing.assert_allclose(inst.penalty, 0.1 * task_losses(inst.W, inst.data))
    np.testing.assert_allclose(inst.weights, 1 + 0.1 * inst.B.sum(axis=1))
    fast = _fast(rows, "bstep", 5)
    assert fast["objective"] == pytest.approx(bstep_objective(inst.W, inst.B, inst.penalty, inst.lam), rel=1e-12)


def test_time_limit_zero_skips_larger_sizes(rows_no_time):
    rows, lines = rows_no_time
    for row in rows:
        if row["backend"] == "fast":
            assert row["status"].startswith("converged")
        elif row["T"] == 5:
            assert row["status"] == "optimal" or row["status"].startswith("failed: ")
        else:
            assert row["status"].startswith("skipped")
            assert "time_limit" in row["status"]
            assert math.isnan(row["total_time"]) and math.isnan(row["ratio"]) and math.isnan(row["objective"])
    assert any("skipped" in line for line in lines)
    table = format_benchmark_table(rows)
    assert "skipped" in table and "B-step" in table and "W-step" in table


def test_memory_rule_skips_larger_sizes():
    from amtl_cvx.tools.timing import memory_mark as _memory_mark

    if _memory_mark() is None:
        pytest.skip("peak memory cannot be measured on this platform")
    rows = run_benchmark([5, 10], [3], steps=["bstep"], solvers=["OSQP"], repeat=1, memory_limit_gb=1e-9)
    small, large = [r for r in rows if r["backend"] == "cvxpy-OSQP"]
    assert not small["status"].startswith("skipped") and small["peak_memory_mb"] >= 0
    assert large["status"].startswith("skipped: predicted memory")
    assert math.isnan(large["peak_memory_mb"])
    with pytest.raises(ValueError, match="memory_limit_gb"):
        run_benchmark([5], [3], memory_limit_gb=0)


def test_csv_and_json_round_trip(rows_no_time, tmp_path):
    rows, _ = rows_no_time
    csv_path = write_csv(rows, tmp_path / "bench.csv")
    with open(csv_path, newline="") as fh:
        back = list(csv.DictReader(fh))
    assert len(back) == len(rows)
    assert tuple(back[0]) == BENCH_COLUMNS
    for orig, row in zip(rows, back):
        assert row["backend"] == orig["backend"] and int(row["T"]) == orig["T"]
        for key in ("total_time", "ratio", "objective", "rel_gap"):
            value = float(row[key])
            assert (math.isnan(value) and math.isnan(orig[key])) or value == orig[key]
        if not math.isnan(float(row["ratio"])):
            fast = [r for r in back if r["step"] == row["step"] and r["T"] == row["T"] and r["backend"] == "fast"][0]
            assert float(row["ratio"]) == pytest.approx(float(row["total_time"]) / float(fast["total_time"]))

    json_path = write_json(rows, tmp_path / "bench.json")
    loaded = json.loads(json_path.read_text())
    assert len(loaded) == len(rows)
    for orig, row in zip(rows, loaded):
        assert tuple(row) == BENCH_COLUMNS
        for key in ("total_time", "ratio"):
            if math.isnan(orig[key]):
                assert row[key] is None
            else:
                assert row[key] == orig[key]


def test_table_has_per_size_ratios(rows):
    text = format_benchmark_table(rows)
    assert text.count("max |rel gap|") == 2
    assert "x)" in text
    for T in (5, 10):
        assert any(line.strip().startswith(str(T)) for line in text.splitlines())


def test_fit_benchmark_generated():
    lines: list[str] = []
    rows = run_fit_benchmark(None, n_tasks=6, n_features=3, max_iter=4, include_tabular=False,
                             progress=lines.append)
    assert [(r["backend"], r["method"]) for r in rows] == [
        ("fast", "alternating"), ("cvxpy", "alternating"), ("fast", "lbfgs")]
    for row in rows:
        assert tuple(row) == FIT_COLUMNS
        assert row["T"] == 6 and row["n_iter"] >= 1 and row["time"] > 0
    assert rows[0]["rel_gap"] == 0.0 and abs(rows[1]["rel_gap"]) <= 1e-6
    assert lines
    text = format_fit_table(rows)
    assert "iterations" in text and "cvxpy" in text


def test_fit_benchmark_release(synthetic_path):
    rows = run_fit_benchmark(synthetic_path, include_generated=False, include_tabular=False, max_iter=3)
    assert [r["problem"] for r in rows] == ["synthetic_dataset"] * 3
    assert all(r["lam"] == 10.0 and r["mu"] == 0.1 for r in rows)
    assert abs(rows[1]["rel_gap"]) <= 1e-6


def test_fit_benchmark_real_data_like_case():
    rows = run_fit_benchmark(None, include_generated=False, tabular_tasks=12, max_iter=3, repeat=1)
    assert [(r["problem"], r["backend"], r["method"]) for r in rows] == [
        ("tabular-T12-d28", "fast", "alternating"), ("tabular-T12-d28", "fast", "lbfgs")]
    assert all(r["ridge"] == 0.1 and r["T"] == 12 and r["d"] == 28 for r in rows)
    assert "ridge" in format_fit_table(rows)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="T_values"):
        run_benchmark([1], [3])
    with pytest.raises(ValueError, match="d_values"):
        run_benchmark([5], [])
    with pytest.raises(ValueError, match="time_limit"):
        run_benchmark([5], [3], time_limit=-1)
    with pytest.raises(ValueError, match="repeat"):
        run_benchmark([5], [3], repeat=0)
    with pytest.raises(ValueError, match="steps"):
        run_benchmark([5], [3], steps=["curriculum"])
    with pytest.raises(ValueError, match="solvers"):
        run_benchmark([5], [3], solvers=["SCS"])
    with pytest.raises(ValueError, match="mat_path"):
        run_fit_benchmark(tmp_path / "missing.mat")
    with pytest.raises(ValueError, match="ridge_tabular"):
        run_fit_benchmark(None, ridge_tabular=-1.0)
    with pytest.raises(ValueError, match="rows"):
        write_csv({"a": 1}, tmp_path / "x.csv")


def test_first_order_bstep_row():
    rows = run_benchmark([6], [3], steps=["bstep"], solvers=["CLARABEL"], repeat=1, first_order=True)
    assert [r["backend"] for r in rows] == ["fast", "fast-first-order", "cvxpy-CLARABEL"]
    fo = rows[1]
    assert tuple(fo) == BENCH_COLUMNS
    assert fo["status"].startswith("converged")
    assert abs(fo["rel_gap"]) <= 1e-9
    assert fo["ratio"] == pytest.approx(fo["total_time"] / rows[0]["total_time"], rel=1e-12)
    assert "fast-first-order" in format_benchmark_table(rows)


def test_interleaved_timing_alternates_the_runs_and_keeps_their_medians():
    from amtl_cvx.tools.timing import time_interleaved

    calls = []

    def run(name, seconds):
        def f():
            calls.append(name)
            return 0.5, seconds[len([c for c in calls if c == name]) - 1], name
        return f

    out = time_interleaved([run("a", [9.0, 1.0, 3.0, 2.0]), run("b", [9.0, 10.0, 30.0, 20.0])], 3)
    assert calls == ["a", "b", "a", "b", "a", "b", "a", "b"]  # warm-ups, then alternating rounds
    assert [o["solve_time"] for o in out] == [2.0, 20.0]  # the warm-up (9.0) is not counted
    assert [o["total_time"] for o in out] == [2.5, 20.5]
    assert [o["result"] for o in out] == ["a", "b"]
