"""Mutation testing of the modules that decide correctness (issue 17, item 4).

Runs mutmut 3 on a *copy* of the repository (never on the working tree: other people
run tests there), restricted to the functions listed in ``selection.toml`` and judged by
the tests listed there, then prints a table per module::

    killed / survived / timeout / no tests / excluded (equivalent or accepted) / score

``score = (killed + timeout) / (mutants - excluded)``; a mutant that no selected test
reaches ("no tests") counts as surviving. Mutants listed in ``equivalent.toml`` are
excluded from the score; they are keyed by the function and the mutated line (before and
after, stripped), not by mutmut's mutant number, so the list survives unrelated edits.
Entries that match no mutant any more are reported as stale.

Usage (from the repository root, in the dev venv)::

    nice -n 10 python tests/mutation/run_mutation.py               # everything selected
    nice -n 10 python tests/mutation/run_mutation.py amtl_cvx/problems/objective.py solvers/bstep/certificate.py
    python tests/mutation/run_mutation.py --only 'transfer_kkt_residual' solvers/bstep/certificate.py

Options: ``--max-children N`` (parallel workers, default 2), ``--keep`` (keep the
temporary copy and print its path; ``mutmut show <name>`` / ``mutmut browse`` work there),
``--json FILE`` (write the per-mutant results), ``--fail-under P`` (exit 1 if the total
score is below P percent).

Requires the ``mutation`` extra (mutmut). Not run in CI: a full run takes tens of minutes
on a busy two-core machine.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SEP = "\u01c1"  # mutmut's separator in mangled method names: x\u01c1Class\u01c1method

STATUS = {  # mutmut exit codes -> our categories (mutmut.stats.status_by_exit_code)
    1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests",
    36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout",
    37: "killed",  # caught by a type checker (none configured)
}


@dataclass
class Mutant:
    name: str
    path: str
    function: str  # "func" or "Class.method"
    status: str
    old: str = ""
    new: str = ""
    excluded: dict | None = None


@dataclass
class Row:
    killed: int = 0
    survived: int = 0
    timeout: int = 0
    no_tests: int = 0
    excluded: int = 0
    other: int = 0
    names: list = field(default_factory=list)

    @property
    def scored(self) -> int:
        return self.killed + self.survived + self.timeout + self.no_tests + self.other

    @property
    def score(self) -> float:
        return 100.0 * (self.killed + self.timeout) / self.scored if self.scored else 100.0


def _load_toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10: the toml package, a dependency of mutmut there
        import toml

        return toml.loads(path.read_text())
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def _module_name(path: str) -> str:
    return path[:-3].replace("/", ".").removesuffix(".__init__")


def _function_of(mutant: str) -> str:
    """``pkg.mod.x_func__mutmut_3`` -> ``func``; ``pkg.mod.x\u01c1C\u01c1m__mutmut_1`` -> ``C.m``."""
    mangled = mutant.partition("__mutmut_")[0].rpartition(".")[2]
    if SEP in mangled:
        _, cls, meth = mangled.split(SEP)
        return f"{cls}.{meth}"
    return mangled.removeprefix("x_")


def _globs(path: str, functions: list[str]) -> list[str]:
    """mutmut name globs for the selected functions of ``path``."""
    mod = _module_name(path)
    out = []
    for f in functions:
        if f == "*":
            out.append(f"{mod}.*")
        elif "." in f:
            cls, meth = f.split(".")
            out.append(f"{mod}.x{SEP}{cls}{SEP}{meth}*")
        else:
            out.append(f"{mod}.x_{f}*")
    return out


def _selected(function: str, functions: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(function, f) for f in functions)


def _copy_tree(work: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", "mutants")
    for name in ("amtl_cvx", "solvers", "tests"):
        shutil.copytree(ROOT / name, work / name, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", work / "pyproject.toml")


def _fence(path: Path, functions: list[str]) -> None:
    """Wrap every top-level function or class of ``path`` that is not selected in
    ``# pragma: no mutate start`` / ``end`` comments (in the copy): mutmut then generates
    no mutants for it, which makes generating the mutants of a large solver module fast.
    A class is kept whole when any of its methods is selected."""
    if functions == ["*"]:
        return
    lines = path.read_text().splitlines(keepends=True)
    inserts = []
    for node in ast.parse("".join(lines)).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            keep = _selected(node.name, functions)
        elif isinstance(node, ast.ClassDef):
            keep = any(_selected(f"{node.name}.{m.name}", functions) for m in node.body
                       if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)))
        else:
            continue
        if not keep:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            inserts += [(first - 1, "# pragma: no mutate start\n"), (node.end_lineno, "# pragma: no mutate end\n")]
    for index, text in sorted(inserts, reverse=True):
        lines.insert(index, text)
    path.write_text("".join(lines))


def _write_config(work: Path, modules: dict, tests: list[str]) -> None:
    """Append a ``[tool.mutmut]`` table to the *copied* pyproject.toml."""
    cfg = {
        "source_paths": ["amtl_cvx", "solvers"],
        "only_mutate": sorted(modules),
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-q"],
        "pytest_add_cli_args_test_selection": tests,
        "use_git_change_detection": False,
    }
    lines = ["", "[tool.mutmut]"] + [f"{k} = {json.dumps(v)}" for k, v in cfg.items()]
    with open(work / "pyproject.toml", "a") as fh:
        fh.write("\n".join(lines) + "\n")


def _diff_lines(work: Path, name: str, path: str) -> tuple[str, str]:
    """The changed line(s) of a mutant, before and after, stripped and joined by ' / '."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    cwd = os.getcwd()
    os.chdir(work)
    try:
        diff = get_diff_for_mutant(name, path=path)
    finally:
        os.chdir(cwd)
    old = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    new = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    return " / ".join(old), " / ".join(new)


def _match(m: Mutant, entries: list[dict]) -> dict | None:
    for e in entries:
        if e["path"] == m.path and e["function"] == m.function and e["old"] == m.old and e["new"] == m.new:
            return e
    return None


def _run_group(name: str, modules: dict, tests: list[str], args: argparse.Namespace) -> tuple[list[Mutant], Path]:
    """One mutmut run over ``modules`` judged by ``tests``, in a fresh temporary copy."""
    work = Path(tempfile.mkdtemp(prefix=f"amtl-mutation-{name}-"))
    _copy_tree(work)
    for p, fs in modules.items():
        _fence(work / p, fs)
    found = [t for t in tests if (ROOT / t).exists()]
    if len(found) < len(tests):
        print(f"[{name}] test files not found, not used: {sorted(set(tests) - set(found))}")
    _write_config(work, modules, found)
    globs = [g for p, fs in modules.items() for g in _globs(p, fs)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               CI="1",  # the derandomized Hypothesis profile of tests/conftest.py
               AMTL_DATA_DIR=os.environ.get("AMTL_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children), *globs]
    print(f"[{name}] $ {' '.join(cmd)}\n[{name}]   in {work}, judged by {' '.join(found)}", flush=True)
    log = work / "mutmut.log"
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, cwd=work, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        print(log.read_text()[-5000:])
        raise SystemExit(f"[{name}] mutmut failed with exit code {rc} (log: {log})")
    mutants: list[Mutant] = []
    for path, functions in modules.items():
        meta = json.loads((work / "mutants" / (path + ".meta")).read_text())
        for key, code in meta["exit_code_by_key"].items():
            func = _function_of(key)
            if not _selected(func, functions):
                continue
            status = STATUS.get(code, "not checked" if code is None else f"other({code})")
            mutants.append(Mutant(key, path, func, status))
    for m in mutants:
        if m.status != "killed":
            m.old, m.new = _diff_lines(work, m.name, m.path)
    return mutants, work


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", help="module paths from selection.toml (default: all)")
    ap.add_argument("--only", action="append", default=[],
                    help="restrict to these functions (glob, 'Class.method'); repeatable")
    ap.add_argument("--max-children", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the temporary copies")
    ap.add_argument("--json", type=Path, help="write per-mutant results to this file")
    ap.add_argument("--fail-under", type=float, default=None)
    ap.add_argument("--selection", type=Path, default=HERE / "selection.toml")
    ap.add_argument("--equivalent", type=Path, default=HERE / "equivalent.toml")
    args = ap.parse_args(argv)

    sel = _load_toml(args.selection)
    modules = {p: v["functions"] for p, v in sel["modules"].items()}
    if args.modules:
        unknown = [m for m in args.modules if m not in modules]
        if unknown:
            ap.error(f"modules not in {args.selection.name}: {unknown}")
        modules = {p: modules[p] for p in args.modules}
    if args.only:
        modules = {p: args.only for p in modules}
    entries = _load_toml(args.equivalent).get("mutant", []) if args.equivalent.exists() else []
    grouped = {p for g in sel["groups"].values() for p in g["modules"]}
    if set(modules) - grouped:
        ap.error(f"modules in no group of {args.selection.name}: {sorted(set(modules) - grouped)}")

    start = time.monotonic()
    mutants: list[Mutant] = []
    works: list[Path] = []
    try:
        for name, group in sel["groups"].items():
            mods = {p: fs for p, fs in modules.items() if p in group["modules"]}
            if mods:
                found, work = _run_group(name, mods, group["tests"], args)
                mutants += found
                works.append(work)
    finally:
        for work in works:
            if args.keep:
                print(f"kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - start
    for m in mutants:
        if m.status != "killed":
            m.excluded = _match(m, entries)

    rows: dict[str, Row] = {p: Row() for p in modules}
    for m in mutants:
        row = rows[m.path]
        if m.excluded is not None and m.status in ("survived", "no tests"):
            row.excluded += 1
        elif m.status == "killed":
            row.killed += 1
        elif m.status == "survived":
            row.survived += 1
        elif m.status == "timeout":
            row.timeout += 1
        elif m.status == "no tests":
            row.no_tests += 1
        else:
            row.other += 1
    total = Row()
    for r in rows.values():
        for k in ("killed", "survived", "timeout", "no_tests", "excluded", "other"):
            setattr(total, k, getattr(total, k) + getattr(r, k))

    head = (f"{'module':33s} {'mutants':>7s} {'killed':>6s} {'t/o':>4s} {'surv.':>5s} {'no t.':>5s} "
            f"{'excl.':>5s} {'score':>7s}")
    print()
    print(head)
    print("-" * len(head))
    for p, r in list(rows.items()) + [("TOTAL", total)]:
        print(f"{p:33s} {r.scored + r.excluded:7d} {r.killed:6d} {r.timeout:4d} {r.survived + r.other:5d} "
              f"{r.no_tests:5d} {r.excluded:5d} {r.score:6.1f}%")
    print(f"\nscore = (killed + timeout) / (mutants - excluded); 'no tests' counts as surviving")
    print(f"run time {elapsed / 60:.1f} min (mutmut {_mutmut_version()}, --max-children {args.max_children})")

    alive = [m for m in mutants if m.status not in ("killed", "timeout")]
    open_ = [m for m in alive if m.excluded is None]
    if open_:
        print(f"\nSurviving mutants not in {args.equivalent.name} ({len(open_)}):")
        for m in open_:
            print(f"  [{m.status}] {m.name}\n      {m.path}::{m.function}\n      - {m.old}\n      + {m.new}")
    excl = [m for m in alive if m.excluded is not None]
    if excl:
        print(f"\nExcluded ({len(excl)}):")
        for m in excl:
            print(f"  {m.path}::{m.function} [{m.excluded.get('kind', 'equivalent')}] {m.excluded['reason']}")
    in_scope = [e for e in entries if e["path"] in modules and _selected(e["function"], modules[e["path"]])]
    stale = [e for e in in_scope if not any(m.excluded is e for m in mutants)]
    if stale:
        print(f"\nStale entries in {args.equivalent.name} (no surviving mutant matches; remove them):")
        for e in stale:
            print(f"  {e['path']}::{e['function']}  - {e['old']}  + {e['new']}")
    if args.json:
        args.json.write_text(json.dumps(
            [{"name": m.name, "path": m.path, "function": m.function, "status": m.status,
              "old": m.old, "new": m.new, "excluded": bool(m.excluded)} for m in mutants], indent=1))
    if args.fail_under is not None and total.score < args.fail_under:
        print(f"\ntotal score {total.score:.1f}% < {args.fail_under}%")
        return 1
    return 0


def _mutmut_version() -> str:
    from importlib.metadata import version

    return version("mutmut")


if __name__ == "__main__":
    sys.exit(main())
