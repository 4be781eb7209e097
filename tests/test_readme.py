"""Every Python block of README.md runs on its own, as a new user would paste it."""

from __future__ import annotations

import re

import pytest

from tests.conftest import DATA_DIR, ROOT

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("k", range(len(BLOCKS)))
def test_readme_block_runs_alone(k, tmp_path, monkeypatch):
    code = BLOCKS[k]
    if "../shared/data/" in code:
        if not DATA_DIR.is_dir():
            pytest.skip(f"release data {DATA_DIR} not found (set AMTL_DATA_DIR)")
        code = code.replace("../shared/data/", f"{DATA_DIR.as_posix()}/")
    monkeypatch.chdir(tmp_path)  # the blocks write files (model.npz)
    exec(compile(code, f"README.md block {k}", "exec"), {"__name__": f"readme_block_{k}"})
