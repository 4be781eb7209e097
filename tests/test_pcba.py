"""PCBA-layout files: the generator, the writer and the loader (including malformed files)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from amtl_cvx.data.pcba import load_pcba_folds, make_pcba_like, write_pcba_folds


@pytest.fixture(scope="module")
def small():
    return make_pcba_like(600, 12, 64, n_groups=2, group_size=4, random_state=3)


def test_generator_is_seeded_and_pcba_like():
    X, Y, info = make_pcba_like(2000, 32, 1024, n_groups=3, group_size=6, random_state=0)
    X2, Y2, _ = make_pcba_like(2000, 32, 1024, n_groups=3, group_size=6, random_state=0)
    X3, _, _ = make_pcba_like(2000, 32, 1024, n_groups=3, group_size=6, random_state=1)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(Y, Y2)
    assert not np.array_equal(X, X3)
    assert X.dtype == np.uint8 and set(np.unique(X)) == {0, 1}
    assert 0.02 < X.mean() < 0.08  # a few percent of the bits set
    observed = ~np.isnan(Y)
    assert 0.3 < observed.mean() < 0.7  # many missing labels
    pos = np.nanmean(Y, axis=0)
    assert np.all(pos < 0.1) and 0.01 < pos.mean() < 0.06  # a few percent positives per task
    assert (info["group"] >= 0).sum() == 18 and (info["group"] == -1).sum() == 14


def test_related_tasks_are_correlated():
    X, Y, info = make_pcba_like(8000, 16, 256, n_groups=1, group_size=8, positive_rate=(0.05, 0.05),
                                observed=(1.0, 1.0), random_state=0)
    C = np.corrcoef(Y.T)
    g = info["group"] == 0
    related = C[np.ix_(g, g)][~np.eye(g.sum(), dtype=bool)].mean()
    unrelated = C[np.ix_(~g, ~g)][~np.eye((~g).sum(), dtype=bool)].mean()
    assert related > unrelated + 0.1


@pytest.mark.parametrize("compress", [True, False])
def test_write_then_load_round_trip(small, tmp_path, compress):
    X, Y, _ = small
    files = write_pcba_folds(tmp_path, X, Y, n_folds=5, compress=compress)
    # the release's names: pcba_run.py, load_data, 'file_{}.csv.gz'.format(i)
    assert [f.name for f in files] == [f"file_{k}.csv{'.gz' if compress else ''}" for k in range(5)]
    if compress:
        assert files[0].read_bytes()[:2] == b"\x1f\x8b"
    data = load_pcba_folds(tmp_path, n_bits=64, drop_unlabelled=False)
    np.testing.assert_array_equal(data.X_train, X[:360])
    np.testing.assert_array_equal(data.X_val, X[360:480])
    np.testing.assert_array_equal(data.X_test, X[480:])
    np.testing.assert_array_equal(data.Y_train, Y[:360])
    np.testing.assert_array_equal(data.Y_test, Y[480:])
    assert data.task_names == tuple(f"PCBA-{t}" for t in range(12))
    assert data.n_tasks == 12
    # the same files given explicitly, in order
    again = load_pcba_folds(files, n_bits=None, drop_unlabelled=False)
    np.testing.assert_array_equal(again.Y_val, data.Y_val)


def test_directory_uses_natural_order(tmp_path):
    X = np.zeros((12, 8), dtype=np.uint8)
    Y = np.arange(12, dtype=float)[:, None] % 2
    X[np.arange(12), np.arange(12) % 8] = 1
    write_pcba_folds(tmp_path, X, Y, n_folds=12, compress=False)
    data = load_pcba_folds(tmp_path, n_bits=8)
    np.testing.assert_array_equal(data.X_test, X[11:])  # file_11 last, not file_2
    np.testing.assert_array_equal(data.X_val, X[10:11])


def _write(path, lines, gz=False):
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def _good(path, gz=False):
    return _write(path, ["smiles,Fingerprints,t1,t2", "CC,0101,1,", "CO,1100,0,1.0"], gz)


def test_identifier_columns_and_pandas_floats(tmp_path):
    files = [_good(tmp_path / f"f{k}.csv") for k in range(3)]
    data = load_pcba_folds(files, n_bits=4)
    assert data.task_names == ("t1", "t2")
    np.testing.assert_array_equal(data.Y_val, [[1.0, np.nan], [0.0, 1.0]])
    np.testing.assert_array_equal(data.X_val, [[0, 1, 0, 1], [1, 1, 0, 0]])


@pytest.mark.parametrize(
    "bad_line, message",
    [("CN,010,1,0", r"line 3: fingerprint has 3 characters, expected 4"),
     ("CN,01a1,1,0", r"line 3: fingerprint holds 'a'"),
     ("CN,0101,2,0", r"line 3: label '2' in column 't1'; expected 0, 1 or empty"),
     ("CN,0101,1,nan", r"line 3: label 'nan' in column 't2'"),
     ("CN,0101,1", r"line 3: 3 fields, the header has 4")],
)
@pytest.mark.parametrize("gz", [False, True])
def test_malformed_rows_name_file_and_line(tmp_path, bad_line, message, gz):
    good = [_good(tmp_path / "a.csv"), _good(tmp_path / "c.csv")]
    name = "b.csv.gz" if gz else "b.csv"
    bad = _write(tmp_path / name, ["smiles,Fingerprints,t1,t2", "CC,0101,1,", bad_line], gz)
    with pytest.raises(ValueError, match=message) as err:
        load_pcba_folds([good[0], bad, good[1]], n_bits=4)
    assert name in str(err.value)


def test_file_level_errors(tmp_path):
    a, b = _good(tmp_path / "a.csv"), _good(tmp_path / "b.csv")
    with pytest.raises(ValueError, match="at least 3 folds"):
        load_pcba_folds([a, b], n_bits=4)
    nofp = _write(tmp_path / "c.csv", ["smiles,t1,t2", "CC,1,0"])
    with pytest.raises(ValueError, match=r"c\.csv, line 1: no 'Fingerprints' column"):
        load_pcba_folds([a, b, nofp], n_bits=4)
    other = _write(tmp_path / "d.csv", ["Fingerprints,t1,t3", "0101,1,0"])
    with pytest.raises(ValueError, match=r"d\.csv, line 1: task columns differ"):
        load_pcba_folds([a, b, other], n_bits=4)
    empty = _write(tmp_path / "e.csv", ["Fingerprints,t1,t2"])
    with pytest.raises(ValueError, match=r"e\.csv: no data row"):
        load_pcba_folds([a, b, empty], n_bits=4)
    broken = tmp_path / "f.csv.gz"
    broken.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(ValueError, match=r"f\.csv\.gz: could not be read"):
        load_pcba_folds([a, b, broken], n_bits=4)
    with pytest.raises(ValueError, match="not a file"):
        load_pcba_folds([a, b, tmp_path / "missing.csv"], n_bits=4)
    with pytest.raises(ValueError, match="not a directory"):
        load_pcba_folds(tmp_path / "nowhere", n_bits=4)


def test_to_multitask_uses_labelled_rows(small, tmp_path):
    X, Y, _ = small
    write_pcba_folds(tmp_path, X, Y, n_folds=5)
    data = load_pcba_folds(tmp_path, n_bits=64)
    ds = data.to_multitask(add_bias=True)
    assert ds.loss == "logistic" and ds.train.n_tasks == 12 and ds.train.n_features == 65
    for t in range(12):
        rows = ~np.isnan(data.Y_test[:, t])
        np.testing.assert_array_equal(ds.test.Xs[t][:, :-1], data.X_test[rows])
        np.testing.assert_array_equal(ds.test.ys[t], 2 * data.Y_test[rows, t] - 1)
    proj = data.to_multitask(add_bias=False, transform=lambda Z: Z[:, :5] * 2.0)
    assert proj.val.n_features == 5
    with pytest.raises(ValueError, match="no labelled row"):
        Ybad = Y.copy()
        Ybad[480:, 0] = np.nan
        write_pcba_folds(tmp_path / "bad", X, Ybad, n_folds=5)
        load_pcba_folds(tmp_path / "bad", n_bits=64).to_multitask()


def test_generator_and_writer_arguments():
    with pytest.raises(ValueError, match="n_groups"):
        make_pcba_like(100, 10, 32, n_groups=3, group_size=4)
    with pytest.raises(ValueError, match="positive_rate"):
        make_pcba_like(100, 10, 32, n_groups=1, group_size=2, positive_rate=(0.5, 0.1))
    with pytest.raises(ValueError, match="n_folds"):
        write_pcba_folds("unused", np.zeros((5, 4)), np.zeros((5, 1)), n_folds=2)
    with pytest.raises(ValueError, match="Y must hold"):
        write_pcba_folds("unused", np.zeros((5, 4)), np.full((5, 1), 2.0))


def test_models_trained_on_loaded_folds_score_above_chance(tmp_path):
    """The files carry the signal: a network trained on the loaded training folds, and
    single-task logistic regression on AMTL's view of them, rank the loaded test fold
    well above chance (a loader that misaligns rows, bits or task columns scores ~0.5)."""
    from amtl_cvx.algorithms.single_task import fit_single_task
    from amtl_cvx.lbtw import MultiTaskNetwork, roc_auc

    X, Y, _ = make_pcba_like(1500, 6, 64, n_groups=1, group_size=3, positive_rate=(0.1, 0.15),
                             observed=(0.8, 1.0), random_state=0)
    write_pcba_folds(tmp_path, X, Y, n_folds=5)
    data = load_pcba_folds(tmp_path, n_bits=64)
    net = MultiTaskNetwork((16, 8), max_epochs=8, batch_size=64, learning_rate=0.01, random_state=0)
    net.fit(*data.split("train"))
    s = net.evaluate(*data.split("test"))
    assert np.all(s["roc_auc"] > 0.7), s["roc_auc"]  # chance is 0.5
    ds = data.to_multitask(add_bias=True)
    W = fit_single_task(ds.train, 0.01, loss="logistic")
    auc = np.array([roc_auc(y > 0, Xt @ W[:, t]) for t, (Xt, y) in enumerate(zip(ds.test.Xs, ds.test.ys))])
    assert np.all(auc > 0.7), auc
    # the control: the same regression on test labels shuffled within each task is at chance
    rng = np.random.default_rng(0)
    shuffled = np.array([roc_auc(rng.permutation(y) > 0, Xt @ W[:, t])
                         for t, (Xt, y) in enumerate(zip(ds.test.Xs, ds.test.ys))])
    assert abs(shuffled.mean() - 0.5) < 0.1, shuffled


def test_rows_without_any_label_are_dropped_as_in_the_release(tmp_path):
    lines = ["Fingerprints,t1,t2", "0101,1,", "0011,,", "1100,0,1", "1111,,"]
    files = [_write(tmp_path / f"file_{k}.csv", lines) for k in range(3)]
    data = load_pcba_folds(files, n_bits=4)
    np.testing.assert_array_equal(data.X_test, [[0, 1, 0, 1], [1, 1, 0, 0]])
    np.testing.assert_array_equal(data.Y_test, [[1.0, np.nan], [0.0, 1.0]])
    assert data.dropped == (2, 2, 2)
    kept = load_pcba_folds(files, n_bits=4, drop_unlabelled=False)
    assert kept.Y_test.shape == (4, 2) and kept.dropped == (0, 0, 0)
    # relative to the task columns read: a row labelled only for t2 has no label for t1
    only = load_pcba_folds(files, n_bits=4, task_columns=["t1"])
    assert only.Y_test[:, 0].tolist() == [1.0, 0.0]
    # a file whose rows all lack labels says so
    bare = _write(tmp_path / "bare.csv", ["Fingerprints,t1,t2", "0101,,"])
    with pytest.raises(ValueError, match=r"bare\.csv: no data row with a label \(1 rows without any\)"):
        load_pcba_folds([files[0], files[1], bare], n_bits=4)


@pytest.mark.parametrize("gz", [False, True])
def test_byte_order_mark_is_ignored(tmp_path, gz):
    name = "b.csv.gz" if gz else "b.csv"
    path = tmp_path / name
    text = "\ufeffFingerprints,t1,t2\n0101,1,\n1100,0,1\n"
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    good = [_good(tmp_path / "a.csv"), _good(tmp_path / "c.csv")]
    data = load_pcba_folds([good[0], path, good[1]], n_bits=4)
    assert data.task_names == ("t1", "t2")
    np.testing.assert_array_equal(data.Y_val, [[1.0, np.nan], [0.0, 1.0]])


@pytest.mark.parametrize(
    "header, message",
    [(",Fingerprints,t1,t2", r"b\.csv, line 1: column 1 has an empty name \(an unnamed index column"),
     ("Fingerprints,t1,,t2", r"b\.csv, line 1: column 3 has an empty name"),
     ("Fingerprints,t1,t2,t1", r"b\.csv, line 1: column name 't1' appears twice \(columns 2 and 4\)")],
)
def test_empty_or_duplicate_column_names_name_file_and_column(tmp_path, header, message):
    n = header.count(",") + 1
    row = ",".join(["0", "0101", "1", "0"][:n]) if header.startswith(",") else ",".join(["0101", "1", "0", "1"][:n])
    bad = _write(tmp_path / "b.csv", [header, row])
    good = [_good(tmp_path / "a.csv"), _good(tmp_path / "c.csv")]
    with pytest.raises(ValueError, match=message):
        load_pcba_folds([good[0], bad, good[1]], n_bits=4)


def test_writer_rejects_names_the_loader_would_reject(tmp_path):
    X = np.zeros((6, 4), dtype=np.uint8)
    Y = np.ones((6, 2))
    for names in (["a", "a"], ["a", ""], ["a", "Fingerprints"], ["a", "b,c"]):
        with pytest.raises(ValueError, match="task_names"):
            write_pcba_folds(tmp_path, X, Y, n_folds=3, task_names=names)
