"""The exact layer at real sizes: the memory model, the DPP / constant choice, the refusal.

The last test runs ``amtl-cvx verify`` on a 140-task, 28-feature file in a subprocess
whose address space is capped at 3 GB: before the memory model, ECOS's DPP W-step
statement asked for more than 12 GB there and the process died with a MemoryError.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import numpy as np
import pytest

import amtl_cvx.problems.base as base_module
from amtl_cvx import make_regression_tasks, make_tabular_tasks, save_release_mat
from amtl_cvx.problems import CurriculumStepProblem, ExactMemoryError, TasksProblem, TransferProblem, memory

# (statement, form, path, T, d, N, measured peak growth in MB): the measurements of the
# memory module's docstring, build + compile + solve in a fresh process.
MEASURED = [
    ("bstep", "constant", "qp", 140, 28, 0, 108),
    ("bstep", "dpp", "qp", 140, 28, 0, 109),
    ("bstep", "dpp", "cone", 140, 28, 0, 2353),
    ("bstep", "dpp", "cone", 80, 28, 0, 446),
    ("bstep", "dpp", "cone", 50, 8, 0, 37),
    ("wstep", "constant", "qp", 140, 28, 4200, 175),
    ("wstep", "dpp", "qp", 140, 28, 4200, 229),
    ("wstep", "dpp", "qp", 80, 28, 2400, 81),
    ("wstep", "dpp", "cone", 60, 28, 1800, 5894),
    ("wstep", "dpp", "cone", 30, 8, 900, 115),
    ("wstep", "constant", "qp", 500, 20, 15000, 729),  # B from the fast B-step: 7,561 edges
    ("bstep", "constant", "qp", 500, 20, 0, 942),
    ("curriculum", "dpp", "cone", 500, 20, 30, 246),
    ("curriculum", "dpp", "cone", 140, 28, 30, 22),
]
MEASURED_LOGISTIC = [  # (T, d, N, MB), DPP on the cone path
    (40, 28, 1200, 5858),
    (20, 28, 600, 384),
    (16, 8, 1920, 416),
    (24, 8, 720, 564),
]


@pytest.mark.parametrize("statement, form, path, T, d, N, mb", MEASURED)
def test_model_covers_every_measurement(statement, form, path, T, d, N, mb):
    """The predicted peak is at least the measured one (the model errs on the safe side)."""
    nnz = T + 7561 if T == 500 else None
    predicted = memory.predict_peak(statement, form, path, n_tasks=T, n_features=d, n_rows=N, coupling_nnz=nnz)
    assert mb * 2**20 <= predicted <= 3 * mb * 2**20 + memory.BASE_BYTES


@pytest.mark.parametrize("T, d, N, mb", MEASURED_LOGISTIC)
def test_model_covers_logistic_dpp(T, d, N, mb):
    predicted = memory.predict_peak("wstep", "dpp", "cone", n_tasks=T, n_features=d, n_rows=N, loss="logistic")
    assert mb * 2**20 <= predicted <= 3 * mb * 2**20 + memory.BASE_BYTES


def test_constant_wstep_grows_with_the_support_of_B():
    dense = memory.predict_peak("wstep", "constant", "qp", n_tasks=500, n_features=20, n_rows=9000)
    sparse = memory.predict_peak("wstep", "constant", "qp", n_tasks=500, n_features=20, n_rows=9000,
                                 coupling_nnz=500 * 11)
    factor = memory.WSTEP_FACTOR_BYTES * 20**2 * 500**2
    assert sparse - factor < (dense - factor) / 10


def test_solver_path():
    assert memory.solver_path("OSQP", "squared") == "qp"
    assert memory.solver_path("clarabel", "squared") == "qp"
    assert memory.solver_path("ECOS", "squared") == "cone"
    assert memory.solver_path("CLARABEL", "logistic") == "cone"
    with pytest.raises(ValueError, match="statement"):
        memory.predict_peak("wrong", "dpp", "qp", n_tasks=3, n_features=2)


def _spy(monkeypatch):
    """Record the cvxpy.Problem handed to each solve."""
    seen = []
    real = base_module.solve_problem

    def spy(problem, solver, **kwargs):
        seen.append(problem)
        return real(problem, solver, **kwargs)

    monkeypatch.setattr(base_module, "solve_problem", spy)
    return seen


def test_dpp_form_used_only_on_the_paths_where_it_fits(monkeypatch):
    """At T = 30, d = 10 the B-step's DPP form is small on the QP path (about 3 MB) and
    larger on ECOS's cone path (about 14 MB): with a 10 MB budget OSQP solves the DPP
    statement and ECOS the constant one, with the same answer."""
    rng = np.random.default_rng(0)
    d, T = 10, 30
    W, p = rng.standard_normal((d, T)), rng.uniform(0.0, 1.0, T)
    monkeypatch.setattr(memory, "DPP_BUDGET_BYTES", memory.BASE_BYTES + 10 * 2**20)
    seen = _spy(monkeypatch)
    problem = TransferProblem(d, T).set(W, p, 1.0)
    assert problem.parametric
    osqp = problem.solve("OSQP")
    ecos = problem.solve("ECOS")
    assert seen[0] is problem.problem and seen[1] is not problem.problem
    assert seen[1].parameters() == []
    assert ecos.objective == pytest.approx(osqp.objective, rel=1e-7)
    assert problem.predicted_peak("OSQP") < problem.predicted_peak("ECOS", "dpp")


def test_wstep_constant_statement_is_sparse_and_agrees(monkeypatch):
    data = make_regression_tasks(n_tasks=6, n_features=4, n_samples=12, random_state=1).train
    rng = np.random.default_rng(1)
    T = data.n_tasks
    B = np.zeros((T, T))
    B[0, 1] = B[2, 3] = 0.4
    a = 1.0 + rng.uniform(0.0, 1.0, T)
    dpp = TasksProblem(data).set(B, 0.5, a, 0.1).solve("CLARABEL")
    monkeypatch.setattr(memory, "DPP_BUDGET_BYTES", 0)
    problem = TasksProblem(data)
    assert not problem.parametric
    const = problem.set(B, 0.5, a, 0.1).solve("CLARABEL")
    assert problem._memory_args()["coupling_nnz"] == T + 2
    np.testing.assert_allclose(const.solution, dpp.solution, atol=1e-7)
    assert const.objective == pytest.approx(dpp.objective, rel=1e-9)


def _statements():
    data = make_regression_tasks(n_tasks=5, n_features=3, n_samples=10, n_parents=1, random_state=2).train
    d, T = data.n_features, data.n_tasks
    W = np.ones((d, T))
    learned = np.array([True, True, False, False, False])
    return [
        ("B-step", lambda: TransferProblem(d, T).set(W, np.ones(T), 1.0)),
        ("W-step", lambda: TasksProblem(data).set(np.zeros((T, T)), 1.0, np.ones(T))),
        ("curriculum step", lambda: CurriculumStepProblem(data.Xs[2], data.ys[2], T, 2).set(
            W, learned, np.ones(T), 1.0)),
    ]


@pytest.mark.parametrize("name, build", _statements(), ids=["bstep", "wstep", "curriculum"])
@pytest.mark.parametrize("solver", [None, "CLARABEL"])
def test_statement_too_large_is_refused_before_cvxpy(monkeypatch, name, build, solver):
    problem = build()
    monkeypatch.setattr(memory, "available_memory", lambda: 40 * 2**20)
    seen = _spy(monkeypatch)
    with pytest.raises(ExactMemoryError, match=rf"the {name} statement \(T = 5, d = 3.*more than half of the 40 MB.*--step"):
        problem.solve(solver)
    assert seen == []


def test_verify_reports_a_refused_statement(monkeypatch):
    from amtl_cvx.tools.verification import failed_checks, make_instance, verify_instance

    data = make_regression_tasks(n_tasks=5, n_features=3, n_samples=10, n_parents=1, random_state=2)
    inst = make_instance(data, "bstep")
    monkeypatch.setattr(memory, "available_memory", lambda: 40 * 2**20)
    rows = verify_instance(inst, solvers=["CLARABEL"])
    assert rows[0]["status"].startswith("converged")
    assert rows[1]["status"].startswith("refused: the B-step statement")
    assert failed_checks(rows) == [f"bstep cvxpy-CLARABEL: status {rows[1]['status']}"]


def _capped_run(args: list[str], cap_bytes: int, cwd) -> subprocess.CompletedProcess:
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes))

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", "import sys; from amtl_cvx.tools.cli import main; sys.exit(main(sys.argv[1:]))",
                           *args], capture_output=True, text=True, preexec_fn=cap, env=env, cwd=cwd, timeout=600)


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_AS"), reason="needs RLIMIT_AS")
def test_verify_a_140_task_file_within_3_gb(tmp_path):
    """Issue 16's target case: 140 tasks, 28 features (one-hot groups collinear with the
    bias), 9,011 training rows; every step with every solver, in 3 GB of address space."""
    path = tmp_path / "tabular140.mat"
    save_release_mat(make_tabular_tasks(n_tasks=140, max_samples=170, random_state=0), path)
    res = _capped_run(["verify", str(path)], 3 * 2**30, tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "verdict: all 12 solves passed" in res.stdout
    assert "Traceback" not in res.stderr
