"""The data container, the release loader and the generators."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import savemat

from amtl_cvx import MultiTaskData, load_release_mat, make_classification_tasks, make_regression_tasks
from amtl_cvx.data import IMBALANCED_SIZES
from tests.conftest import release_file


def _tasks(rng, sizes=(5, 7), d=3):
    return [rng.standard_normal((n, d)) for n in sizes], [rng.standard_normal(n) for n in sizes]


class TestMultiTaskData:
    def test_shapes_and_bias(self):
        rng = np.random.default_rng(0)
        Xs, ys = _tasks(rng)
        data = MultiTaskData(Xs, ys, add_bias=True)
        assert data.n_tasks == 2 and data.n_features == 4
        assert list(data.n_samples) == [5, 7]
        np.testing.assert_array_equal(data.Xs[1][:, -1], 1.0)
        np.testing.assert_array_equal(data.Xs[1][:, :3], Xs[1])
        X, y, ids = data.stacked()
        assert X.shape == (12, 4) and list(np.bincount(ids)) == [5, 7]

    def test_is_read_only_copy(self):
        rng = np.random.default_rng(0)
        Xs, ys = _tasks(rng)
        data = MultiTaskData(Xs, ys)
        Xs[0][0, 0] = 99.0
        assert data.Xs[0][0, 0] != 99.0
        with pytest.raises(ValueError):
            data.Xs[0][0, 0] = 1.0

    def test_column_targets_accepted(self):
        rng = np.random.default_rng(0)
        Xs, ys = _tasks(rng)
        data = MultiTaskData(Xs, [y[:, None] for y in ys])
        assert data.ys[0].shape == (5,)

    @pytest.mark.parametrize(
        "mutate, match",
        [
            (lambda Xs, ys: Xs[0].__setitem__((0, 0), np.nan), r"Xs\[0\].*NaN"),
            (lambda Xs, ys: ys[1].__setitem__(2, np.inf), r"ys\[1\].*infinite"),
            (lambda Xs, ys: ys.__setitem__(0, ys[0][:-1]), r"Xs\[0\] has 5 rows but ys\[0\] has 4"),
            (lambda Xs, ys: (Xs.__setitem__(1, Xs[1][:0]), ys.__setitem__(1, ys[1][:0])), r"task 1 is empty"),
            (lambda Xs, ys: Xs.__setitem__(1, Xs[1][:, :2]), r"Xs\[1\] has 2 columns"),
            (lambda Xs, ys: ys.pop(), r"2 tasks but ys has 1"),
        ],
    )
    def test_bad_input(self, mutate, match):
        rng = np.random.default_rng(0)
        Xs, ys = _tasks(rng)
        mutate(Xs, ys)
        with pytest.raises(ValueError, match=match):
            MultiTaskData(Xs, ys)

    def test_no_tasks_and_single_array(self):
        with pytest.raises(ValueError, match="at least one task"):
            MultiTaskData([], [])
        with pytest.raises(ValueError, match="sequences"):
            MultiTaskData(np.ones((3, 2)), np.ones(3))

    def test_logistic_labels_checked(self):
        data = MultiTaskData([np.ones((2, 1))], [np.array([0.0, 1.0])])
        with pytest.raises(ValueError, match="-1, \\+1"):
            data.check_labels("logistic")
        data.check_labels("squared")
        with pytest.raises(ValueError, match="loss must be"):
            data.check_labels("hinge")


class TestReleaseLoader:
    def test_regression_layout(self, synthetic_path):
        ds = load_release_mat(synthetic_path)
        assert ds.loss == "squared"
        assert ds.train.n_tasks == 12 and ds.train.n_features == 21
        assert list(ds.train.n_samples) == [30] * 12 and list(ds.test.n_samples) == [50] * 12
        from scipy.io import loadmat

        raw = loadmat(synthetic_path)
        # Task 3 starts at the 1-based row trindex[3] = 91 -> 0-based row 90.
        np.testing.assert_array_equal(ds.train.Xs[3][:, :-1], raw["train_x"][90:120])
        np.testing.assert_array_equal(ds.test.ys[11], raw["test_y"][550:600, 0])

    def test_imbalanced_layout(self):
        ds = load_release_mat(release_file("synthetic_inbalance_2.mat"), add_bias=False)
        assert tuple(ds.train.n_samples) == IMBALANCED_SIZES
        assert ds.train.n_features == 20

    def test_classification_layout(self, usps_path):
        ds = load_release_mat(usps_path)
        assert ds.loss == "logistic" and ds.train.n_tasks == 10
        assert ds.train.n_features == 88
        Y = np.column_stack(ds.train.ys)
        np.testing.assert_array_equal((Y == 1).sum(axis=1), 1)  # exactly one positive task per row
        np.testing.assert_array_equal((Y == 1).sum(axis=0), 100)

    def _write(self, tmp_path, **overrides):
        rng = np.random.default_rng(0)
        mat = {}
        for split, key, n in (("train", "trindex", 6), ("val", "valindex", 4), ("test", "teindex", 4)):
            mat[f"{split}_x"] = rng.standard_normal((n, 3))
            mat[f"{split}_y"] = rng.standard_normal((n, 1))
            mat[key] = np.array([[1], [n // 2 + 1]], dtype=np.uint16)
        mat.update(overrides)
        mat = {k: v for k, v in mat.items() if v is not None}
        path = tmp_path / "x.mat"
        savemat(path, mat)
        return path

    def test_valid_small_file(self, tmp_path):
        ds = load_release_mat(self._write(tmp_path))
        assert list(ds.train.n_samples) == [3, 3]

    @pytest.mark.parametrize(
        "overrides, match",
        [
            ({"val_x": None}, "missing key 'val_x'"),
            ({"trindex": np.array([[1], [9]])}, "trindex has an index out of range"),
            ({"trindex": np.array([[1], [4], [3]])}, "trindex must be strictly increasing"),
            ({"trindex": np.array([[1], [1]])}, "trindex must be strictly increasing"),
            ({"teindex": np.array([[2], [3]])}, "teindex must start at row 1"),
            ({"train_y": np.zeros((5, 1))}, "train_y has shape"),
            ({"valindex": np.array([[1], [2], [3]])}, "valindex has 3 tasks"),
            ({"train_x": np.full((6, 3), np.nan)}, "NaN"),
            ({"train_x": np.full((6, 3), 1.0 + 2.0j)}, "'train_x' is complex"),
            ({"val_y": np.full((4, 1), 1.0 + 0.5j)}, "'val_y' is complex"),
        ],
    )
    def test_malformed_file(self, tmp_path, overrides, match):
        with pytest.raises(ValueError, match=match):
            load_release_mat(self._write(tmp_path, **overrides))

    def test_unreadable_file(self, tmp_path):
        path = tmp_path / "junk.mat"
        path.write_bytes(b"this is not a MATLAB file at all" * 10)
        with pytest.raises(ValueError, match="could not be read"):
            load_release_mat(path)
        with pytest.raises(ValueError, match="is not a file"):
            load_release_mat(tmp_path / "absent.mat")


class TestGenerators:
    def test_planted_graph(self):
        ds = make_regression_tasks(n_tasks=9, n_features=5, random_state=3)
        W, B = ds.W_true, ds.B_true
        assert W.shape == (5, 9) and B.shape == (9, 9)
        assert np.all(B >= 0) and np.all(np.diag(B) == 0)
        senders = B.sum(axis=1) > 0
        receivers = B.sum(axis=0) > 0
        assert not np.any(senders & receivers)  # sources only send, derived only receive
        np.testing.assert_allclose(W[:, receivers], (W @ B)[:, receivers])
        assert np.all((B > 0).sum(axis=0)[receivers] == 2)

    def test_seeded(self):
        a = make_regression_tasks(random_state=5)
        b = make_regression_tasks(random_state=5)
        c = make_regression_tasks(random_state=6)
        np.testing.assert_array_equal(a.train.Xs[4], b.train.Xs[4])
        assert not np.array_equal(a.train.Xs[4], c.train.Xs[4])

    def test_noise_levels(self):
        ds = make_regression_tasks(n_samples=400, random_state=0)
        source = ds.B_true.sum(axis=1) > 0
        resid = np.array([np.std(y - X @ ds.W_true[:, t]) for t, (X, y) in enumerate(zip(ds.train.Xs, ds.train.ys))])
        assert np.all(resid[source] < 0.15) and np.all(resid[~source] > 1.7)

    def test_imbalanced_and_bias(self):
        ds = make_regression_tasks(n_samples=IMBALANCED_SIZES, add_bias=True)
        assert tuple(ds.train.n_samples) == IMBALANCED_SIZES
        assert ds.W_true.shape == (21, 12) and np.all(ds.W_true[-1] == 0)

    def test_classification(self):
        ds = make_classification_tasks(random_state=1)
        assert ds.loss == "logistic"
        for y in ds.train.ys:
            assert set(np.unique(y)) == {-1.0, 1.0}

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"n_sources": 12}, "n_sources"),
            ({"n_parents": 9}, "n_parents"),
            ({"n_samples": [30] * 11}, "n_samples"),
            ({"n_samples": 0}, "n_samples"),
            ({"noise_derived": -1.0}, "noise_derived"),
            ({"n_tasks": 1}, "n_tasks"),
        ],
    )
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            make_regression_tasks(**kwargs)


def test_tabular_generator_looks_like_real_data():
    from amtl_cvx.data import make_tabular_tasks

    ds = make_tabular_tasks(random_state=5)
    tr = ds.train
    assert tr.n_tasks == 140 and tr.n_features == 28 and tr.add_bias
    X = np.vstack(tr.Xs)
    # every one-hot group sums to the bias column: exact collinearity in every task
    for lo, hi in ((0, 6), (6, 11), (11, 15)):
        assert np.array_equal(X[:, lo:hi].sum(axis=1), X[:, -1])
    assert 20 <= X[:, 15].mean() <= 80 and X[:, 15].min() >= 18  # integers in the tens
    stds = X[:, 17:27].std(axis=0)
    assert stds.min() < 0.1 < 0.4 < stds.max()  # rare indicators next to common ones
    small = tr.n_samples < tr.n_features
    assert 20 <= small.sum() <= 100 and tr.n_samples.min() >= 13 and tr.n_samples.max() <= 150
    assert 5000 <= tr.n_samples.sum() <= 12000
    assert all(np.linalg.matrix_rank(Xt) < tr.n_features for Xt in tr.Xs)  # every task rank-deficient
    again = make_tabular_tasks(random_state=5)
    assert np.array_equal(np.vstack(again.train.Xs), X)
    with pytest.raises(ValueError, match="group_sizes"):
        make_tabular_tasks(group_sizes=(1, 3))


def test_save_release_mat_round_trip(tmp_path):
    from amtl_cvx import load_release_mat, make_tabular_tasks, save_release_mat

    ds = make_tabular_tasks(n_tasks=7, random_state=3)
    path = tmp_path / "tab.mat"
    save_release_mat(ds, path)
    back = load_release_mat(path)
    assert back.loss == "squared" and back.name == "tab"
    for split in ("train", "val", "test"):
        a, b = getattr(ds, split), getattr(back, split)
        assert b.add_bias and b.n_features == a.n_features
        for Xa, Xb, ya, yb in zip(a.Xs, b.Xs, a.ys, b.ys, strict=True):
            np.testing.assert_array_equal(Xa, Xb)
            np.testing.assert_array_equal(ya, yb)


def test_save_release_mat_refuses_classification(tmp_path):
    from amtl_cvx import make_classification_tasks, save_release_mat

    with pytest.raises(ValueError, match="dataset must be a regression data set"):
        save_release_mat(make_classification_tasks(n_tasks=6, random_state=0), tmp_path / "c.mat")
    with pytest.raises(ValueError, match="dataset must be a MultiTaskDataset"):
        save_release_mat(make_classification_tasks(n_tasks=6, random_state=0).train, tmp_path / "c.mat")
