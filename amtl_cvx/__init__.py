"""amtl-cvx: Asymmetric Multi-Task Learning stated in CVXPY, solved exactly, and fast.

Lee, Yang & Hwang, "Asymmetric Multi-task Learning Based on Task Relatedness and
Loss", ICML 2016.

The package, in the order its parts depend on each other: :mod:`amtl_cvx.data` (tasks,
loaders, generators) -> :mod:`amtl_cvx.problems` (the objective and its CVXPY
statements) -> :mod:`amtl_cvx.algorithms` (Algorithm 1 and 2 and their backends) ->
:mod:`amtl_cvx.estimators` (scikit-learn estimators, metrics, persistence) ->
:mod:`amtl_cvx.model_selection` (choosing ``lam`` and ``mu``).
"""

from amtl_cvx.algorithms import AMTLFit, fit_alternating, fit_curriculum
from amtl_cvx.data import (
    MultiTaskData,
    MultiTaskDataset,
    load_release_mat,
    make_classification_tasks,
    make_regression_tasks,
    make_tabular_tasks,
    save_release_mat,
)
from amtl_cvx.estimators import (
    AMTLClassifier,
    AMTLRegressor,
    SingleTaskClassifier,
    SingleTaskRegressor,
    estimator_from_fit,
    stack_tasks,
    task_preprocessor,
)
from amtl_cvx.estimators.persistence import load_model, save_model
from amtl_cvx.model_selection import TaskKFold, evaluate_grid
from amtl_cvx.problems.objective import amtl_objective, task_losses

__version__ = "0.1.0"


def __getattr__(name: str):
    # Variant and VariantError are CVXPY statements: imported on first use, so that
    # ``import amtl_cvx`` (the fast solvers, the command line) does not load CVXPY
    if name in ("Variant", "VariantError"):
        from amtl_cvx.problems import custom

        return getattr(custom, name)
    raise AttributeError(f"module 'amtl_cvx' has no attribute {name!r}")


__all__ = [
    "MultiTaskData",
    "MultiTaskDataset",
    "AMTLFit",
    "fit_alternating",
    "fit_curriculum",
    "make_regression_tasks",
    "make_classification_tasks",
    "make_tabular_tasks",
    "load_release_mat",
    "save_release_mat",
    "amtl_objective",
    "task_losses",
    "AMTLRegressor",
    "AMTLClassifier",
    "SingleTaskRegressor",
    "SingleTaskClassifier",
    "stack_tasks",
    "task_preprocessor",
    "estimator_from_fit",
    "TaskKFold",
    "evaluate_grid",
    "save_model",
    "load_model",
    "Variant",
    "VariantError",
    "__version__",
]
