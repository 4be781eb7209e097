"""Smoke tests of the diagnostic examples that wrap private solver functions: a refactor
of the wrapped function must not leave the documented commands broken."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("kind", ["dense", "planted"])
def test_bstep_screening_runs_and_counts_every_pass(kind, capsys):
    assert _load("bstep_screening").main(["--tasks", "120", "--features", "5", "--kind", kind]) == 0
    out = capsys.readouterr().out
    n_passes = int(out.split(" pricing passes")[0].split()[-1])
    rows = [line for line in out.splitlines() if line[:4].strip().isdigit()]
    assert n_passes >= 2 and len(rows) == n_passes
    # the screens accumulate and never exceed the coordinates: fractions in [0, 1]
    assert all(0.0 <= float(v) <= 1.0 for line in rows for v in line.split()[2:5])
    assert "screened coordinates nonzero in the solution: 0" in out  # the rule is safe


def test_bstep_pricing_profile_runs(capsys):
    assert _load("bstep_pricing_profile").main(["--tasks", "120", "--features", "5"]) == 0
    out = capsys.readouterr().out
    assert "pricing passes" in out and "support solve" in out
