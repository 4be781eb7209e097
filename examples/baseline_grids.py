"""Time each multi-task baseline's default grid on a release file (one BLAS thread).

    python examples/baseline_grids.py ../shared/data/usps1.mat [NAMES]
    python examples/baseline_grids.py tabular [NAMES]

FILE ``tabular`` is ``amtl_cvx.make_tabular_tasks(random_state=0)`` (140 regression tasks
shaped like a real tabular data set: one-hot groups collinear with a bias column, integer
features in the tens, rare indicators, 13 to 150 rows for 28 features). NAMES:
comma-separated keys of ``amtl_cvx.baselines.MULTITASK_BASELINES`` (default: all).
Prints, per baseline, the grid size, the wall time of ``select_baseline`` (every fit of the
grid, warm-started where the baseline allows), the chosen hyperparameters, the mean
validation error and the number of ConvergenceWarnings.
"""

from __future__ import annotations

import sys
import time
import warnings

from sklearn.model_selection import ParameterGrid
from threadpoolctl import threadpool_limits

from amtl_cvx import load_release_mat, make_tabular_tasks
from amtl_cvx.algorithms import ConvergenceWarning
from amtl_cvx.baselines.multitask import MULTITASK_BASELINES
from amtl_cvx.model_selection import select_baseline


def main() -> None:
    path = sys.argv[1]
    names = sys.argv[2].split(",") if len(sys.argv) > 2 else list(MULTITASK_BASELINES)
    ds = make_tabular_tasks(random_state=0) if path == "tabular" else load_release_mat(path)
    total = 0.0
    with threadpool_limits(1):
        for name in names:
            size = len(ParameterGrid(MULTITASK_BASELINES[name].param_grid(ds.train, ds.loss)))
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                sel = select_baseline(ds, name)
            seconds = time.perf_counter() - t0
            params = ", ".join(f"{k}={v:.3g}" for k, v in sel.params.items())
            warned = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
            print(f"{name:17s} {size:3d} fits {seconds:7.2f} s  {params:40s} val {sel.val_error:.4f}  "
                  f"{warned} ConvergenceWarnings", flush=True)
            total += seconds
        print(f"{'total':17s}          {total:7.2f} s", flush=True)


if __name__ == "__main__":
    main()
