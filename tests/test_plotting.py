"""Figure helpers: the transfer matrix heatmap and the objective over alternations."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from amtl_cvx import fit_alternating, fit_curriculum, make_regression_tasks  # noqa: E402
from amtl_cvx.estimators import AMTLRegressor, stack_tasks  # noqa: E402
from amtl_cvx.tools.plotting import plot_objective_history, plot_transfer_matrix


@pytest.fixture(scope="module")
def model():
    ds = make_regression_tasks(n_tasks=5, n_features=5, n_sources=2, random_state=0)
    X, y = stack_tasks(ds.train)
    X[:, 0] = np.array([3, 5, 7, 9, 11])[X[:, 0].astype(int)]
    return AMTLRegressor(lam=1.0, mu=0.1).fit(X, y)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_transfer_matrix_heatmap(model):
    fig, ax = plt.subplots()
    out = plot_transfer_matrix(model, ax, annotate=True)
    assert out is ax
    (image,) = ax.get_images()
    np.testing.assert_array_equal(image.get_array(), model.transfer_matrix_)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["3", "5", "7", "9", "11"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["3", "5", "7", "9", "11"]
    assert ax.get_xlabel() == "receiving task t" and ax.get_ylabel() == "sending task s"
    nnz = int(np.count_nonzero(model.transfer_matrix_))
    assert nnz > 0 and len(ax.texts) == nnz
    assert len(fig.axes) == 2  # the heatmap and its colorbar
    fig.canvas.draw()


def test_transfer_matrix_from_fit_or_array():
    ds = make_regression_tasks(n_tasks=4, n_features=4, n_sources=2, random_state=1)
    fit = fit_alternating(ds.train, lam=1.0, mu=0.1)
    ax = plot_transfer_matrix(fit, colorbar=False, task_names=list("abcd"))
    np.testing.assert_array_equal(ax.get_images()[0].get_array(), fit.B)
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcd")
    assert len(ax.figure.axes) == 1
    ax2 = plot_transfer_matrix(np.zeros((3, 3)))
    assert ax2 is not ax and ax2.get_images()[0].get_array().shape == (3, 3)
    with pytest.raises(ValueError, match="square"):
        plot_transfer_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="task_names"):
        plot_transfer_matrix(fit, task_names=["a"])
    with pytest.raises(ValueError, match="NaN"):
        plot_transfer_matrix(np.full((2, 2), np.nan))


def test_objective_history(model):
    fig, ax = plt.subplots()
    out = plot_objective_history(model, ax, label="AMTL")
    assert out is ax
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_ydata(), model.objective_history_)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(len(model.objective_history_)))
    assert "alternation" in ax.get_xlabel() and ax.get_legend() is not None
    assert np.all(np.diff(line.get_ydata()) <= 1e-9 * abs(line.get_ydata()[0]))
    fig.canvas.draw()


def test_objective_gap_and_curriculum():
    ds = make_regression_tasks(n_tasks=4, n_features=4, n_sources=2, random_state=1)
    fit = fit_alternating(ds.train, lam=1.0, mu=0.1)
    ax = plot_objective_history(fit, log_gap=True)
    assert ax.get_yscale() == "log"
    gap = fit.objective_history - fit.objective_history.min()
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), gap[gap > 0])
    cur = fit_curriculum(ds.train, lam=1.0, mu=0.1)
    ax = plot_objective_history(cur)
    assert ax.get_xlabel() == "curriculum step"
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), np.arange(1, 5))
    fig, axes = plt.subplots(1, 2)
    assert plot_objective_history([3.0, 2.0, 1.5], axes[1]) is axes[1]
    with pytest.raises(ValueError, match="empty"):
        plot_objective_history(np.array([]))
