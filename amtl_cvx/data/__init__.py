"""Multi-task data: the container, the release's ``.mat`` files, PCBA folds and generators.

- :mod:`amtl_cvx.data.container`: :class:`MultiTaskData` (T tasks as ``(X_t, y_t)``,
  validated once) and :class:`MultiTaskDataset` (train / validation / test splits);
- :mod:`amtl_cvx.data.release`: the original AMTL release's ``.mat`` files;
- :mod:`amtl_cvx.data.pcba`: PCBA-style fold files of the LBTW release;
- :mod:`amtl_cvx.data.generators`: seeded problems with a planted transfer graph.
"""

from amtl_cvx.data.container import LOSSES, MultiTaskData, MultiTaskDataset
from amtl_cvx.data.generators import (
    IMBALANCED_SIZES,
    make_classification_tasks,
    make_regression_tasks,
    make_tabular_tasks,
)
from amtl_cvx.data.release import load_release_mat, save_release_mat

__all__ = [
    "MultiTaskData",
    "MultiTaskDataset",
    "LOSSES",
    "load_release_mat",
    "save_release_mat",
    "make_regression_tasks",
    "make_classification_tasks",
    "make_tabular_tasks",
    "IMBALANCED_SIZES",
]
