"""Saving and loading fitted estimators: .npz + JSON, never pickle."""

from __future__ import annotations

import json
import pickle
import zipfile

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from amtl_cvx import make_classification_tasks, make_regression_tasks
from amtl_cvx.estimators import (
    AMTLClassifier,
    AMTLRegressor,
    SingleTaskClassifier,
    SingleTaskRegressor,
    stack_tasks,
)
from amtl_cvx.estimators.persistence import FORMAT_VERSION, load_model, save_model

_SIDE_EFFECTS: list = []


def _record(*args):
    _SIDE_EFFECTS.append(args)
    return "unpickled!"


class _Trap:
    """An object whose unpickling has a visible side effect."""

    def __reduce__(self):
        return (_record, ("trap",))


@pytest.fixture(scope="module")
def reg_xy():
    ds = make_regression_tasks(n_tasks=4, n_features=4, n_sources=2, random_state=0)
    return stack_tasks(ds.train) + stack_tasks(ds.test)


@pytest.fixture(scope="module")
def clf_xy():
    ds = make_classification_tasks(n_tasks=4, n_features=4, n_sources=2, random_state=0)
    return stack_tasks(ds.train) + stack_tasks(ds.test)


def _assert_same_model(a, b, X):
    assert type(a) is type(b)
    assert a.get_params() == b.get_params()
    for name in ("coef_", "intercept_", "transfer_matrix_", "objective_history_", "order_",
                 "imbalance_weights_", "tasks_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("n_iter_", "n_tasks_", "n_features_in_", "objective_", "converged_"):
        assert getattr(a, name) == getattr(b, name), name
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


@pytest.mark.parametrize(
    "make",
    [
        lambda: AMTLRegressor(lam=0.1, mu=1.0, s=2.0, sigma=0.5),
        lambda: AMTLRegressor(lam=0.1, mu=1.0, algorithm="curriculum", fit_intercept=False, random_state=3),
        lambda: SingleTaskRegressor(lam=0.1),
    ],
)
def test_regressor_round_trip(tmp_path, reg_xy, make):
    X, y, Xt, _ = reg_xy
    model = make().fit(X, y)
    path = save_model(model, tmp_path / "model.amtl")  # the name is kept as given
    assert path == tmp_path / "model.amtl" and path.is_file()
    loaded = load_model(path)
    _assert_same_model(model, loaded, Xt)


@pytest.mark.parametrize("cls", [AMTLClassifier, SingleTaskClassifier])
def test_classifier_round_trip(tmp_path, clf_xy, cls):
    X, y, Xt, _ = clf_xy
    labels = np.where(y > 0, "yes", "no")
    model = cls(lam=0.05).fit(X, labels)
    loaded = load_model(save_model(model, tmp_path / "c.npz"))
    _assert_same_model(model, loaded, Xt)
    np.testing.assert_array_equal(loaded.classes_, ["no", "yes"])
    np.testing.assert_array_equal(model.predict_proba(Xt), loaded.predict_proba(Xt))


def test_shared_rows_layouts_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    Y = X @ rng.standard_normal((4, 3))
    reg = AMTLRegressor(lam=0.01, task_column=None).fit(X, Y)
    loaded = load_model(save_model(reg, tmp_path / "r.npz"))
    assert loaded.predict(X).shape == (60, 3)
    np.testing.assert_array_equal(reg.predict(X), loaded.predict(X))
    labels = np.argmax(Y, axis=1)
    ova = AMTLClassifier(lam=0.01, task_column=None).fit(X, labels)
    loaded = load_model(save_model(ova, tmp_path / "o.npz"))
    np.testing.assert_array_equal(ova.decision_function(X), loaded.decision_function(X))


def test_dataframe_feature_names_round_trip(tmp_path, reg_xy):
    pd = pytest.importorskip("pandas")
    X, y, _, _ = reg_xy
    df = pd.DataFrame(X, columns=["task"] + [f"f{i}" for i in range(X.shape[1] - 1)])
    model = AMTLRegressor(lam=0.1, task_column="task").fit(df, y)
    loaded = load_model(save_model(model, tmp_path / "df.npz"))
    np.testing.assert_array_equal(loaded.feature_names_in_, model.feature_names_in_)
    np.testing.assert_array_equal(loaded.predict(df), model.predict(df))


def test_the_file_holds_no_pickle(tmp_path, reg_xy):
    X, y, _, _ = reg_xy
    path = save_model(AMTLRegressor(lam=0.1).fit(X, y), tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as npz:  # every entry reads without pickle
        meta = json.loads(str(npz["__amtl_cvx_model__"]))
        for key in npz.files:
            assert not npz[key].dtype.hasobject
    assert meta["format"] == "amtl-cvx-model" and meta["format_version"] == FORMAT_VERSION
    assert meta["estimator"] == "AMTLRegressor" and meta["params"]["lam"] == 0.1


def test_cannot_save_unfitted_or_unserialisable(tmp_path, reg_xy):
    X, y, _, _ = reg_xy
    with pytest.raises(NotFittedError):
        save_model(AMTLRegressor(), tmp_path / "x.npz")
    model = AMTLRegressor(random_state=np.random.RandomState(0)).fit(X, y)
    with pytest.raises(ValueError, match="random_state"):
        save_model(model, tmp_path / "x.npz")
    with pytest.raises(ValueError, match="estimator must be one of"):
        save_model(object(), tmp_path / "x.npz")


def _write_npz(path, meta=None, **arrays):
    if meta is not None:
        arrays["__amtl_cvx_model__"] = np.array(json.dumps(meta))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


@pytest.fixture(scope="module")
def _saved_file(tmp_path_factory, reg_xy):
    """One fitted model saved once per module (the fit is the slow part)."""
    X, y, _, _ = reg_xy
    return save_model(AMTLRegressor(lam=0.1).fit(X, y), tmp_path_factory.mktemp("saved") / "good.npz")


@pytest.fixture
def saved(_saved_file):
    """A fresh (meta, arrays) pair of the saved model: tests may change both."""
    with np.load(_saved_file, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays.pop("__amtl_cvx_model__")))
    return meta, arrays


def test_not_a_model_files(tmp_path, saved):
    meta, arrays = saved
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="is not an amtl-cvx model file: it is not an .npz"):
        load_model(text)
    npy = tmp_path / "array.npy"
    np.save(npy, np.arange(3))
    with pytest.raises(ValueError, match="not an amtl-cvx model"):
        load_model(npy)
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps({"coef_": np.zeros(3)}))
    with pytest.raises(ValueError, match="not an amtl-cvx model"):
        load_model(pkl)
    with pytest.raises(ValueError, match="no '__amtl_cvx_model__' metadata"):
        load_model(_write_npz(tmp_path / "plain.npz", W=np.zeros((3, 2))))
    with pytest.raises(ValueError, match="format marker"):
        load_model(_write_npz(tmp_path / "m1.npz", {**meta, "format": "other"}, **arrays))
    with pytest.raises(ValueError, match="unknown estimator 'os.system'"):
        load_model(_write_npz(tmp_path / "m2.npz", {**meta, "estimator": "os.system"}, **arrays))
    with pytest.raises(ValueError, match="missing array 'coef_'"):
        rest = {k: v for k, v in arrays.items() if k != "coef_"}
        load_model(_write_npz(tmp_path / "m3.npz", meta, **rest))
    with pytest.raises(ValueError, match="transfer_matrix_ has shape"):
        load_model(_write_npz(tmp_path / "m4.npz", meta, **{**arrays, "transfer_matrix_": np.zeros((2, 2))}))
    with pytest.raises(ValueError, match="parameters do not match"):
        load_model(_write_npz(tmp_path / "m5.npz", {**meta, "params": {"alpha": 1}}, **arrays))
    broken = tmp_path / "broken.npz"
    broken.write_bytes((tmp_path / "m1.npz").read_bytes()[:200])
    with pytest.raises(ValueError, match="not an amtl-cvx model"):
        load_model(broken)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_model(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="is not a file"):
        load_model(tmp_path)


def _tampered(arrays, key, change):
    out = dict(arrays)
    out[key] = change(arrays[key].copy())
    return out


def _set(i, value):
    def change(a):
        a[i] = value
        return a
    return change


@pytest.mark.parametrize(
    "what, match",
    [
        ("nan coef", "coef_ must hold finite numbers"),
        ("inf intercept", "intercept_ must hold finite numbers"),
        ("negative B", "nonnegative with a zero diagonal"),
        ("B diagonal", "nonnegative with a zero diagonal"),
        ("unsorted tasks", "tasks_ must be sorted and unique"),
        ("lam -1", "invalid parameters.*lam"),
        ("lam text", "invalid parameters.*lam"),
        ("n_features_in_", "n_features_in_=99 does not match coef_"),
    ],
)
def test_tampered_files_are_refused_on_load(tmp_path, saved, what, match):
    """Each of these used to load, and failed (or answered) only at predict."""
    meta, arrays = saved
    if what == "nan coef":
        arrays = _tampered(arrays, "coef_", _set((0, 0), np.nan))
    elif what == "inf intercept":
        arrays = _tampered(arrays, "intercept_", _set(0, np.inf))
    elif what == "negative B":
        arrays = _tampered(arrays, "transfer_matrix_", _set((0, 1), -0.5))
    elif what == "B diagonal":
        arrays = _tampered(arrays, "transfer_matrix_", _set((1, 1), 0.5))
    elif what == "unsorted tasks":
        arrays = _tampered(arrays, "tasks_", lambda a: a[::-1].copy())
    elif what == "lam -1":
        meta = {**meta, "params": {**meta["params"], "lam": -1}}
    elif what == "lam text":
        meta = {**meta, "params": {**meta["params"], "lam": "abc"}}
    else:
        meta = {**meta, "attributes": {**meta["attributes"], "n_features_in_": 99}}
    with pytest.raises(ValueError, match=match):
        load_model(_write_npz(tmp_path / "tampered.npz", meta, **arrays))


def test_newer_format_version_is_refused(tmp_path, saved):
    meta, arrays = saved
    path = _write_npz(tmp_path / "future.npz", {**meta, "format_version": FORMAT_VERSION + 1}, **arrays)
    with pytest.raises(ValueError, match=f"format version {FORMAT_VERSION + 1}.*upgrade"):
        load_model(path)


def test_pickled_content_is_never_unpickled(tmp_path, saved):
    meta, arrays = saved
    _SIDE_EFFECTS.clear()
    trap = np.array([_Trap()], dtype=object)
    # the trap as the metadata entry, and as an array entry next to valid metadata
    path1 = tmp_path / "trap1.npz"
    with open(path1, "wb") as fh:
        np.savez(fh, __amtl_cvx_model__=trap, **arrays)
    path2 = _write_npz(tmp_path / "trap2.npz", meta, **{**arrays, "coef_": trap})
    for path in (path1, path2):
        with zipfile.ZipFile(path) as zf:  # the file really does hold a pickle
            assert any(b"_record" in zf.read(n) for n in zf.namelist())
        with pytest.raises(ValueError, match="not an amtl-cvx model.*without pickle"):
            load_model(path)
    assert _SIDE_EFFECTS == []


def test_estimator_from_fit_round_trips_and_predicts_like_W(tmp_path):
    from amtl_cvx import estimator_from_fit, fit_alternating, make_regression_tasks, stack_tasks

    ds = make_regression_tasks(n_tasks=6, n_features=4, random_state=0)
    fit = fit_alternating(ds.train, lam=0.3, mu=0.5)
    model = estimator_from_fit(fit, ds.train, loss="squared", lam=0.3, mu=0.5)
    same = load_model(save_model(model, tmp_path / "m.npz"))
    X, _ = stack_tasks(ds.test)
    expected = np.concatenate([Xt @ fit.W[:, t] for t, Xt in enumerate(ds.test.Xs)])
    np.testing.assert_allclose(same.predict(X), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(same.transfer_matrix_, fit.B)
    with pytest.raises(ValueError, match="loss"):
        estimator_from_fit(fit, ds.train, loss="hinge")
    with pytest.raises(ValueError, match="lam"):
        estimator_from_fit(fit, ds.train, loss="squared", lam=-1.0)


def test_estimator_from_fit_refuses_two_shared_one_vs_all_tasks():
    from amtl_cvx import MultiTaskData, estimator_from_fit, fit_alternating

    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    data = MultiTaskData([X, X], [y, -y], add_bias=True)
    fit = fit_alternating(data, lam=1.0, mu=0.1, loss="logistic", ridge=0.01)
    with pytest.raises(ValueError, match="two one-vs-all tasks"):
        estimator_from_fit(fit, data, loss="logistic")


# --------------------------------------------------------------------------------------
# every refusal branch of load_model (issue 17, item 1)
# --------------------------------------------------------------------------------------
def test_n_tasks_must_match_coef(tmp_path, saved):
    """A file whose n_tasks_ disagrees with coef_ is refused (it used to load: predict
    then indexed tasks_ with a wrong count)."""
    meta, arrays = saved
    T = arrays["coef_"].shape[0]
    for bad in (T + 1, T - 1, 0):
        tampered = {**meta, "attributes": {**meta["attributes"], "n_tasks_": bad}}
        with pytest.raises(ValueError, match=f"n_tasks_={bad} but coef_ has {T} rows"):
            load_model(_write_npz(tmp_path / f"n{bad}.npz", tampered, **arrays))
    # the untampered file loads and keeps n_tasks_
    assert load_model(_write_npz(tmp_path / "ok.npz", meta, **arrays)).n_tasks_ == T


def _write_meta_entry(path, entry, arrays):
    """An archive whose metadata entry is ``entry`` as given (not JSON-encoded here)."""
    with open(path, "wb") as fh:
        np.savez(fh, __amtl_cvx_model__=entry, **arrays)
    return path


@pytest.mark.parametrize(
    "entry",
    [np.array(3.0), np.array([json.dumps({"format": "amtl-cvx-model"})]), np.array(b"{}"),
     np.array(["{", "}"])],
    ids=["number", "1-d string array", "bytes", "two strings"],
)
def test_metadata_entry_must_be_a_json_string(tmp_path, saved, entry):
    _, arrays = saved
    path = _write_meta_entry(tmp_path / "m.npz", entry, arrays)
    with pytest.raises(ValueError, match="is not an amtl-cvx model file: its metadata entry is not a JSON string"):
        load_model(path)


@pytest.mark.parametrize("text", ["{not json", "", '{"format": "amtl-cvx-model",}'])
def test_metadata_must_be_valid_json(tmp_path, saved, text):
    _, arrays = saved
    path = _write_meta_entry(tmp_path / "m.npz", np.array(text), arrays)
    with pytest.raises(ValueError, match="its metadata is not valid JSON"):
        load_model(path)


@pytest.mark.parametrize("meta_json", ["[1, 2]", '"amtl-cvx-model"', "null", "{}"])
def test_metadata_that_is_not_a_marked_object(tmp_path, saved, meta_json):
    _, arrays = saved
    path = _write_meta_entry(tmp_path / "m.npz", np.array(meta_json), arrays)
    with pytest.raises(ValueError, match="the format marker is not 'amtl-cvx-model'"):
        load_model(path)


@pytest.mark.parametrize("version", [0, -1, True, False, "1", 1.0, None, [1]])
def test_invalid_format_versions(tmp_path, saved, version):
    meta, arrays = saved
    path = _write_npz(tmp_path / "v.npz", {**meta, "format_version": version}, **arrays)
    with pytest.raises(ValueError, match=r"is not an amtl-cvx model file: invalid format_version"):
        load_model(path)
    # the key absent altogether
    rest = {k: v for k, v in meta.items() if k != "format_version"}
    with pytest.raises(ValueError, match=r"invalid format_version None"):
        load_model(_write_npz(tmp_path / "nov.npz", rest, **arrays))


@pytest.mark.parametrize("which", ["params", "attributes"])
@pytest.mark.parametrize("value", [None, [], "x"])
def test_params_and_attributes_must_be_objects(tmp_path, saved, which, value):
    meta, arrays = saved
    path = _write_npz(tmp_path / "p.npz", {**meta, which: value}, **arrays)
    with pytest.raises(ValueError, match="its metadata lacks params or attributes"):
        load_model(path)


@pytest.mark.parametrize("name", ["n_iter_", "n_tasks_", "n_features_in_", "objective_", "converged_"])
def test_missing_attribute_is_refused(tmp_path, saved, name):
    meta, arrays = saved
    attributes = {k: v for k, v in meta["attributes"].items() if k != name}
    path = _write_npz(tmp_path / "a.npz", {**meta, "attributes": attributes}, **arrays)
    with pytest.raises(ValueError, match=f"missing attribute '{name}'"):
        load_model(path)


@pytest.mark.parametrize("name", ["intercept_", "transfer_matrix_", "objective_history_", "order_",
                                  "imbalance_weights_", "tasks_"])
def test_every_missing_array_is_refused(tmp_path, saved, name):
    meta, arrays = saved
    rest = {k: v for k, v in arrays.items() if k != name}
    with pytest.raises(ValueError, match=f"missing array '{name}'"):
        load_model(_write_npz(tmp_path / "r.npz", meta, **rest))


@pytest.mark.parametrize(
    "change",
    [lambda c: c.ravel(), lambda c: c.astype(np.int64), lambda c: c.astype(bool), lambda c: c[None],
     lambda c: c.astype(str), lambda c: np.array(1.5)],
    ids=["1-D", "integer", "boolean", "3-D", "strings", "0-d"],
)
def test_coef_must_be_a_2d_float_array(tmp_path, saved, change):
    meta, arrays = saved
    path = _write_npz(tmp_path / "c.npz", meta, **{**arrays, "coef_": change(arrays["coef_"])})
    with pytest.raises(ValueError, match="coef_ must be a 2-D float array"):
        load_model(path)


@pytest.mark.parametrize("key", ["intercept_", "imbalance_weights_", "tasks_"])
def test_per_task_arrays_must_have_one_entry_per_task(tmp_path, saved, key):
    meta, arrays = saved
    path = _write_npz(tmp_path / "s.npz", meta, **{**arrays, key: arrays[key][:-1]})
    with pytest.raises(ValueError, match=f"{key} has shape"):
        load_model(path)


@pytest.mark.parametrize("cls", [AMTLClassifier, SingleTaskClassifier])
def test_classifier_without_classes_is_refused(tmp_path, clf_xy, cls):
    X, y, _, _ = clf_xy
    path = save_model(cls(lam=0.05).fit(X, y), tmp_path / "c.npz")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays.pop("__amtl_cvx_model__")))
    assert "classes_" in arrays  # the untampered file has them, and loads
    assert load_model(_write_npz(tmp_path / "ok.npz", meta, **arrays)).classes_.size == 2
    rest = {k: v for k, v in arrays.items() if k != "classes_"}
    with pytest.raises(ValueError, match="a classifier without classes_"):
        load_model(_write_npz(tmp_path / "noclasses.npz", meta, **rest))


def test_regressor_without_optional_arrays_loads(tmp_path, saved, reg_xy):
    """The other side of the classifier check: classes_ and feature_names_in_ are optional
    for a regressor, so their absence is not what the refusals above react to."""
    meta, arrays = saved
    assert "classes_" not in arrays and "feature_names_in_" not in arrays
    _, _, Xt, _ = reg_xy
    loaded = load_model(_write_npz(tmp_path / "r.npz", meta, **arrays))
    assert not hasattr(loaded, "classes_")
    np.testing.assert_array_equal(loaded.coef_, arrays["coef_"])
    assert loaded.predict(Xt).shape == (Xt.shape[0],)
