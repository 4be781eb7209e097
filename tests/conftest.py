"""Shared fixtures: the release data in ../shared/data and small generated problems."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the property tests on a fixed sequence of examples (reproducible failures);
# locally they explore new examples on every run.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("AMTL_DATA_DIR", ROOT.parent / "shared" / "data"))


def release_file(name: str) -> Path:
    """Path of a release data file; the test is skipped (with the reason) if absent."""
    path = DATA_DIR / name
    if not path.is_file():
        pytest.skip(f"release data {path} not found (set AMTL_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def synthetic_path() -> Path:
    return release_file("synthetic_dataset.mat")


@pytest.fixture(scope="session")
def usps_path() -> Path:
    return release_file("usps1.mat")
