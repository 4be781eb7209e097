"""The full-fit benchmark: whole AMTL fits (Algorithm 1 to convergence), backend "fast"
against backend "cvxpy", on the release's data and on generated problems.

:func:`run_fit_benchmark` returns rows in long format (one row per fit, keys
:data:`FIT_COLUMNS`); :func:`amtl_cvx.tools.benchmark.report.format_fit_table` renders them.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from amtl_cvx._validation import check_scalar
from amtl_cvx.tools.benchmark.instances import check_int, check_names
from amtl_cvx.tools.results import NAN, rel_gap, say
from amtl_cvx.tools.timing import format_seconds
from amtl_cvx.tools.verification import CVXPY_SOLVERS

__all__ = ["FIT_COLUMNS", "run_fit_benchmark"]

#: Keys of a :func:`run_fit_benchmark` row.
FIT_COLUMNS = (
    "problem",
    "T",
    "d",
    "lam",
    "mu",
    "ridge",
    "transfer_ridge",
    "backend",
    "method",
    "time",
    "n_iter",
    "time_per_iter",
    "converged",
    "objective",
    "rel_gap",
    "status",
)

#: The (backend, method) fits of a problem whose CVXPY statements fit in memory.
_ALL_METHODS = (("fast", "alternating"), ("cvxpy", "alternating"), ("fast", "lbfgs"))


@dataclass(frozen=True)
class _FitCase:
    """One problem of the fit benchmark and the fits it gets."""

    name: str
    data: Any
    lam: float
    ridge: float
    transfer_ridge: Any
    methods: tuple[tuple[str, str], ...] = _ALL_METHODS


def run_fit_benchmark(
    mat_path: str | os.PathLike | None = None,
    *,
    n_tasks: int = 200,
    n_features: int = 20,
    n_samples: int = 30,
    lam_release: float = 10.0,
    lam_generated: float = 1.0,
    mu: float = 0.1,
    max_iter: int = 1000,
    tol: float = 1e-6,
    solver: str | None = None,
    max_iter_cvxpy: int | None = None,
    repeat: int = 3,
    random_state: int | None = 0,
    include_generated: bool = True,
    include_tabular: bool = True,
    tabular_tasks: int = 140,
    ridge_tabular: float = 0.1,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Time whole AMTL fits (Algorithm 1 to convergence): backend "fast" vs "cvxpy".

    Problems:

    (a) the release's ``synthetic_dataset.mat`` at ``mat_path`` (loaded with
        :func:`amtl_cvx.load_release_mat`, bias column appended), ``lam = lam_release``
        (10), ``mu``; skipped when ``mat_path`` is None;
    (b) a generated planted problem (:func:`amtl_cvx.make_regression_tasks`) with
        ``n_tasks`` (200) tasks, ``n_features`` features and ``n_samples`` rows per task,
        ``lam = lam_generated`` (1), ``mu``; skipped when ``include_generated`` is False;
    (c) a real-data-like problem (:func:`amtl_cvx.make_tabular_tasks`: ``tabular_tasks``
        (140) tasks, one-hot groups collinear with the bias, integer features in the
        tens, many tasks with fewer rows than features), ``lam = lam_generated``,
        ``mu``, ``ridge = ridge_tabular`` (0.1: at ``ridge = 0`` this problem has no
        minimiser, see docs/algorithms.md) and the default transfer ridge (``"auto"``:
        without it ``B`` is unbounded on such data); fast backend only (the CVXPY statements at
        140 tasks and 28 features need more memory than a small machine has);
        skipped when ``include_tabular`` is False.

    Each is fitted by :func:`amtl_cvx.fit_alternating` (squared loss; (a) and (b) with the
    paper's objective, ``ridge = transfer_ridge = 0``;
    ``max_iter``, ``tol``) from the same single-task start three times: by alternation
    with both backends (fast and CVXPY subproblems, the same algorithm), and by the fast
    backend's L-BFGS method (``method="lbfgs"``). ``rel_gap`` is relative to the fast
    alternation. ``converged`` is the KKT certificate test of ``fit_alternating``.

    Cost (measured on 2 cores, ``tol = 1e-6``, :func:`~amtl_cvx.fit_alternating`'s
    default extrapolation): the fast backend converges in 89 alternations on the release
    data and in 463 (about 2 minutes) on the default 200-task problem, so the default
    ``max_iter`` (1000) reaches convergence. The CVXPY fit of the 200-task problem (a
    40,000-variable B-step QP per alternation) is far slower: about 90 s per alternation
    with the automatic solver ladder (OSQP stalls on these B-steps before Clarabel takes
    over), i.e. hours to convergence, and about 5 s with ``solver="CLARABEL"``. Lower
    ``max_iter`` or ``n_tasks`` for a quick run: ``converged`` tells whether the stopping
    test was met and ``time_per_iter`` compares the backends' cost per alternation
    either way.

    Parameters
    ----------
    mat_path : str or path-like, optional
        Path of ``synthetic_dataset.mat`` (or another regression file of the release).
    n_tasks, n_features, n_samples : int
        Size of the generated problem.
    lam_release, lam_generated, mu : float
    max_iter : int, default=1000
    tol : float, default=1e-6
        Tolerance on the fits' KKT certificate.
    solver : str, optional
        CVXPY solver for the ``"cvxpy"`` backend (default: the automatic ladder).
    random_state : int or None, default=0
    repeat : int, default=3
        The fast fit is run once as a warm-up and then ``repeat`` times; its median
        time is reported (the CVXPY fit, much slower, is run once).
    max_iter_cvxpy : int, optional
        Cap on the CVXPY backend's alternations (default ``max_iter``). A capped run is
        not to convergence: compare its ``time_per_iter`` (and its objective after
        as many alternations), not its total time.
    include_generated : bool, default=True
    include_tabular : bool, default=True
    tabular_tasks : int, default=140
    ridge_tabular : float, default=0.1
    progress : callable, optional
        Called with one status line per fit.

    Returns
    -------
    list of dict
        One row per (problem, backend, method), keys :data:`FIT_COLUMNS`: ``time`` (wall
        seconds of the fit, including the single-task start), ``n_iter`` (alternations
        or L-BFGS iterations),
        ``time_per_iter`` (``time / n_iter``), ``converged``, ``objective``
        (final ``F(W, B)``, numpy), ``rel_gap = (objective - objective_fast) /
        max(1, |objective_fast|)`` and ``status`` (``"ok"``, the number of
        convergence warnings of the fast solvers, or ``"failed: <message>"``).

    Raises
    ------
    ValueError
        On a bad argument (the message names it).
    """
    from amtl_cvx.data import make_regression_tasks, make_tabular_tasks
    from amtl_cvx.data import load_release_mat

    n_tasks = check_int(n_tasks, "n_tasks", 2)
    tabular_tasks = check_int(tabular_tasks, "tabular_tasks", 2)
    ridge_tabular = check_scalar(ridge_tabular, "ridge_tabular")
    n_features = check_int(n_features, "n_features", 1)
    n_samples = check_int(n_samples, "n_samples", 1)
    lam_release = check_scalar(lam_release, "lam_release", strict=True)
    lam_generated = check_scalar(lam_generated, "lam_generated", strict=True)
    mu = check_scalar(mu, "mu")
    max_iter = check_int(max_iter, "max_iter", 1)
    tol = check_scalar(tol, "tol")
    if solver is not None:
        solver = check_names(solver, "solver", CVXPY_SOLVERS, upper=True)[0]
    if max_iter_cvxpy is not None:
        max_iter_cvxpy = check_int(max_iter_cvxpy, "max_iter_cvxpy", 1)
    repeat = check_int(repeat, "repeat", 1)

    cases: list[_FitCase] = []
    if mat_path is not None:
        path = Path(mat_path)
        if not path.is_file():
            raise ValueError(f"mat_path {str(path)!r} is not a file")
        dataset = load_release_mat(path)
        if dataset.loss != "squared":
            raise ValueError(f"mat_path must hold a regression data set, {path.name} is {dataset.loss}")
        cases.append(_FitCase(path.stem, dataset.train, lam_release, 0.0, 0.0))
    if include_generated:
        ds = make_regression_tasks(
            n_tasks=n_tasks, n_features=n_features, n_samples=n_samples, n_val=1, n_test=1,
            n_parents=min(2, max(1, n_tasks // 3)), random_state=random_state,
        )
        cases.append(_FitCase(ds.name, ds.train, lam_generated, 0.0, 0.0))
    if include_tabular:
        tab = make_tabular_tasks(n_tasks=tabular_tasks, random_state=random_state)
        cases.append(_FitCase(tab.name, tab.train, lam_generated, ridge_tabular, "auto",
                              (("fast", "alternating"), ("fast", "lbfgs"))))

    rows: list[dict[str, Any]] = []
    for case in cases:
        data, obj_fast = case.data, NAN
        for backend, method in case.methods:
            say(progress, f"fit {case.name} (T={data.n_tasks}, d={data.n_features}) backend {backend}, {method}")
            options = {
                "solver": solver if backend == "cvxpy" else None, "tol": tol,
                "max_iter": max_iter if backend == "fast" or max_iter_cvxpy is None else max_iter_cvxpy,
            }
            row = _time_fit(case, mu, backend, method, **options)
            if backend == "fast" and repeat > 1:
                # like the subproblems: the first run was the warm-up, report the median
                runs = [_time_fit(case, mu, backend, method, **options) for _ in range(repeat)]
                row = sorted(runs, key=lambda r: r["time"])[len(runs) // 2]
            if backend == "fast" and method == "alternating":
                obj_fast = row["objective"]
            row["rel_gap"] = rel_gap(row["objective"], obj_fast)
            say(progress, f"fit {case.name} backend {backend}, {method}: {format_seconds(row['time'])}, "
                          f"{row['n_iter']} iterations, F = {row['objective']:.10g} ({row['status']})")
            rows.append({key: row[key] for key in FIT_COLUMNS})
    return rows


def _time_fit(case: _FitCase, mu: float, backend: str, method: str, *,
              solver: str | None, max_iter: int, tol: float) -> dict[str, Any]:
    """One timed :func:`amtl_cvx.fit_alternating` of ``case``: a row without ``rel_gap``."""
    from amtl_cvx.algorithms import ConvergenceWarning
    from amtl_cvx.problems.exact import ExactSolveError
    from amtl_cvx.algorithms import fit_alternating

    data = case.data
    row: dict[str, Any] = {
        "problem": case.name, "T": data.n_tasks, "d": data.n_features, "lam": case.lam, "mu": mu,
        "ridge": case.ridge, "backend": backend if solver is None else f"{backend}-{solver}", "method": method,
    }
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            fit = fit_alternating(
                data, lam=case.lam, mu=mu, loss="squared", ridge=case.ridge, max_iter=max_iter, tol=tol,
                backend=backend, solver=solver, method=method, transfer_ridge=case.transfer_ridge,
            )
        except ExactSolveError as exc:
            row.update(time=time.perf_counter() - t0, n_iter=0, time_per_iter=NAN, converged=False,
                       objective=NAN, status=f"failed: {exc}", transfer_ridge=NAN)
            return row
    elapsed = time.perf_counter() - t0
    n_warn = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    row.update(
        time=elapsed, n_iter=fit.n_iter, time_per_iter=elapsed / max(1, fit.n_iter),
        converged=bool(fit.converged), objective=float(fit.objective), transfer_ridge=fit.transfer_ridge,
        status="ok" if n_warn == 0 else f"{n_warn} solver convergence warnings",
    )
    return row
