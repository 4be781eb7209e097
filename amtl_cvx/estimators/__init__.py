r"""scikit-learn estimators over :mod:`amtl_cvx.algorithms`: fit, predict, score, cross-validate.

Four estimators share one interface:

- :class:`AMTLRegressor` (squared loss) and :class:`AMTLClassifier` (logistic loss) fit
  AMTL with :func:`amtl_cvx.algorithms.fit_alternating` (Algorithm 1) or
  :func:`amtl_cvx.algorithms.fit_curriculum` (Algorithm 2);
- :class:`SingleTaskRegressor` and :class:`SingleTaskClassifier` fit every task alone
  with :func:`amtl_cvx.baselines.fit_single_task` (ridge / L2-logistic regression, AMTL's
  objective at ``B = 0``), for comparisons with the same data layout.

How the task of each row reaches the estimator: a task column
------------------------------------------------------------------
scikit-learn's model selection (``cross_val_score``, ``GridSearchCV``, ``Pipeline``)
slices ``X`` and ``y`` row by row and passes nothing else to ``predict`` and ``score``.
So the task of a row travels **inside** ``X``: column ``task_column`` (default 0, the
first column; negative indices count from the end; a string names a column of a pandas
DataFrame) holds integer task ids, the remaining columns are the features. Every
scikit-learn tool then works unchanged, without metadata routing. The rules:

- task ids are any integers (stored as floats in ``X``; a non-integer value is an
  error). The tasks are ``tasks_ = numpy.unique(ids)`` of the training rows; row ``k``
  of ``coef_`` and ``transfer_matrix_`` is task ``tasks_[k]``;
- ``predict`` on a row whose task id was not seen by ``fit`` raises ``ValueError``.
  Cross-validation must therefore keep every task in every training fold: use
  :class:`amtl_cvx.model_selection.TaskKFold` (folds stratified by task), or a shuffled
  ``KFold`` when every task has many rows. scikit-learn's default unshuffled folds on
  rows stacked task by task leave whole tasks out of training, and fail loudly;
- preprocessing must leave the task column alone: wrap it with
  :func:`task_preprocessor` (a ``ColumnTransformer`` that passes the task column
  through as column 0 and applies the transformer to the others);
- :func:`stack_tasks` turns a :class:`~amtl_cvx.data.MultiTaskData` into ``(X, y)``
  in this layout.

``task_column=None`` means the tasks share all rows (no task column):

- :class:`AMTLRegressor` / :class:`SingleTaskRegressor`: each column of a 2-D ``y``
  (n x T) is a task (multi-output regression); a 1-D ``y`` is one task;
- :class:`AMTLClassifier` / :class:`SingleTaskClassifier`: one-vs-all multi-class, as in
  the original USPS experiment. With K > 2 classes, task k separates ``classes_[k]``
  from the rest and ``predict`` is the argmax of the K task scores; with K = 2 there is
  one task (``classes_[1]`` against ``classes_[0]``), as in scikit-learn's
  ``LogisticRegression``.

With a task column the classifier's tasks are binary: ``y`` holds two labels overall
(``classes_``; ``classes_[1]`` is the positive label +1 of the logistic loss).

Intercept
---------
``fit_intercept=True`` (default) builds the data with ``MultiTaskData(add_bias=True)``:
a ones column is appended, and its coefficient, the last row of ``W``, becomes
``intercept_`` (one per task). As everywhere in amtl-cvx, the bias is **coupled and
regularised like any other feature** (it takes part in ``lam ||W - W B||^2`` and
``ridge ||W||^2``), unlike scikit-learn's linear models; centre ``y`` (or use a
``TransformedTargetRegressor``) when the tasks' means are far from zero.
``fit_intercept=False`` gives ``intercept_ = 0``.

Imbalance weights
-----------------
``c_t = s / n_t**sigma`` (``n_t`` the task's training rows) scales the price a task
pays to send transfer. The default ``s = 1, sigma = 0`` (``c_t = 1``) is the package's
and the paper's objective; ``sigma > 0`` makes tasks with few rows pay more.

Warm starts
-----------
With ``warm_start=True`` and ``algorithm="alternating"``, a second ``fit`` on data with
the same tasks and features starts Algorithm 1 from the previous ``W`` instead of the
single-task models. Walking a (lam, mu) path this way reuses every solution; this is
what :func:`amtl_cvx.model_selection.evaluate_grid` does. The objective is not jointly
convex in (W, B), so a warm-started fit can end at another stationary point than a cold
one, with a lower or a higher objective (a cold fit with a large ``mu`` can stop at
once at the single-task point, where no edge is worth its price, while a warm start
from a point with transfer keeps it). Algorithm 2 always starts from scratch.

Modules
-------
:mod:`~amtl_cvx.estimators.layout` (:func:`stack_tasks`, :func:`task_preprocessor`),
:mod:`~amtl_cvx.estimators.base` (the task layout, regressor and classifier machinery),
:mod:`~amtl_cvx.estimators.amtl` (:class:`AMTLRegressor`, :class:`AMTLClassifier`,
:func:`estimator_from_fit`), :mod:`~amtl_cvx.estimators.single_task`
(:class:`SingleTaskRegressor`, :class:`SingleTaskClassifier`),
:mod:`~amtl_cvx.estimators.metrics` (per-task scores) and
:mod:`~amtl_cvx.estimators.persistence` (:func:`~amtl_cvx.estimators.persistence.save_model`,
:func:`~amtl_cvx.estimators.persistence.load_model`).
"""

from amtl_cvx.estimators.amtl import ALGORITHMS, AMTLClassifier, AMTLRegressor, estimator_from_fit
from amtl_cvx.estimators.layout import stack_tasks, task_preprocessor
from amtl_cvx.estimators.single_task import SingleTaskClassifier, SingleTaskRegressor

__all__ = [
    "AMTLRegressor",
    "AMTLClassifier",
    "SingleTaskRegressor",
    "SingleTaskClassifier",
    "stack_tasks",
    "task_preprocessor",
    "estimator_from_fit",
    "ALGORITHMS",
]
