"""Choosing ``lam`` and ``mu``, two ways:

- cross-validation over folds of the rows: :mod:`.cross_validation` (:func:`evaluate_grid`);
- a grid scored on the validation split, as the paper does: :mod:`.validation_split`.
"""

from amtl_cvx.model_selection.cross_validation import PARALLEL, GridResult, TaskKFold, evaluate_grid
from amtl_cvx.model_selection.validation_split import (
    DEFAULT_LAMS,
    DEFAULT_MUS,
    SINGLE_TASK_LAMS,
    Selected,
    grid_edges,
    select_amtl,
    select_baseline,
    select_single_task,
)

__all__ = [
    "TaskKFold",
    "GridResult",
    "evaluate_grid",
    "PARALLEL",
    "Selected",
    "select_amtl",
    "select_single_task",
    "select_baseline",
    "grid_edges",
    "DEFAULT_LAMS",
    "DEFAULT_MUS",
    "SINGLE_TASK_LAMS",
]
