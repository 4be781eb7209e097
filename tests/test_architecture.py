"""The layout of docs/architecture.md: arrows point one way, modules stay readable.

Reads the sources (every import statement, including those inside functions) instead of
importing them, so a lazy import cannot hide an arrow that points backwards.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: the folders of amtl_cvx in dependency order: a module may import from its own folder
#: or from an earlier one (docs/architecture.md)
LAYERS = ["data", "problems", "algorithms", "estimators", "baselines", "lbtw", "model_selection", "tools"]
#: private helpers that every layer may use
SHARED = {"_validation", "_argtypes", "_progress"}
#: a module longer than this says why in its docstring
MAX_LINES = 500


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every absolute module name the file imports (with its line)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module in ("amtl_cvx", "solvers"):
                # ``from amtl_cvx import estimators`` (a subpackage) or ``... import fit_alternating``
                out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module))
    return out


def _layer(module: str) -> int | None:
    """The layer a module name belongs to; ``len(LAYERS)`` for the package's public API
    (``import amtl_cvx``, ``from amtl_cvx import fit_alternating``: every layer at once);
    None outside ``amtl_cvx`` and for the shared private helpers and ``__version__``."""
    parts = module.split(".")
    if parts[0] != "amtl_cvx" or (len(parts) > 1 and (parts[1] in SHARED or parts[1] == "__version__")):
        return None
    if len(parts) == 1 or parts[1] not in LAYERS:
        return len(LAYERS)
    return LAYERS.index(parts[1])


def test_every_amtl_cvx_module_is_in_a_layer():
    for path in _modules("amtl_cvx"):
        rel = path.relative_to(ROOT / "amtl_cvx").parts
        if len(rel) == 1:
            assert path.stem in SHARED | {"__init__"}, f"{path}: put it in one of the folders {LAYERS}"
        else:
            assert rel[0] in LAYERS, f"{path}: {rel[0]} is not one of the layers {LAYERS}"


@pytest.mark.parametrize("path", _modules("amtl_cvx"), ids=lambda p: str(p.relative_to(ROOT)))
def test_amtl_cvx_arrows_point_one_way(path):
    rel = path.relative_to(ROOT / "amtl_cvx").parts
    if len(rel) == 1:
        return  # the package's __init__ (the public API) and the shared private helpers
    own = LAYERS.index(rel[0])
    for line, module in _imports(path):
        target = _layer(module)
        name = LAYERS[target] if target is not None and target < len(LAYERS) else "the package's public API"
        assert target is None or target <= own, (
            f"{path.relative_to(ROOT)}:{line} imports {module}: {LAYERS[own]} may not depend on {name}"
        )


@pytest.mark.parametrize("path", _modules("solvers"), ids=lambda p: str(p.relative_to(ROOT)))
def test_solvers_import_only_numpy_and_scipy(path):
    for line, module in _imports(path):
        top = module.split(".")[0]
        assert top not in ("amtl_cvx", "cvxpy", "sklearn", "pandas", "torch"), (
            f"{path.relative_to(ROOT)}:{line} imports {module}: solvers/ is numpy and scipy only"
        )


@pytest.mark.parametrize("path", _modules("amtl_cvx") + _modules("solvers"), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_short_or_say_why(path):
    text = path.read_text()
    n = text.count("\n")
    doc = ast.get_docstring(ast.parse(text)) or ""
    assert n <= MAX_LINES or "longer than" in doc, (
        f"{path.relative_to(ROOT)} has {n} lines: split it, or say in its docstring why it is longer than {MAX_LINES}"
    )
