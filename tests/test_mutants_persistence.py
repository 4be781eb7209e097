"""``amtl_cvx.estimators.persistence`` details that tests/test_persistence.py leaves open (issue 17,
item 4): the exact file content, the refusal messages in full, the logging, and the
branches that only some estimators or layouts reach."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest

from amtl_cvx import __version__, make_regression_tasks
from amtl_cvx.estimators import AMTLClassifier, AMTLRegressor, SingleTaskRegressor, stack_tasks
from amtl_cvx.estimators.persistence import FORMAT, FORMAT_VERSION, _plain_array, load_model, save_model


def _exact(message: str) -> str:
    return "^" + re.escape(message) + "$"


@pytest.fixture(scope="module")
def reg_xy():
    ds = make_regression_tasks(n_tasks=3, n_features=3, n_sources=1, n_parents=1, random_state=1)
    return stack_tasks(ds.train)


@pytest.fixture(scope="module")
def fitted(reg_xy):
    X, y = reg_xy
    return AMTLRegressor(lam=0.1, mu=0.5).fit(X, y)


def _read(path):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return json.loads(str(arrays.pop("__amtl_cvx_model__"))), arrays


def _write(path, meta, arrays):
    with open(path, "wb") as fh:
        np.savez(fh, __amtl_cvx_model__=np.array(json.dumps(meta)), **arrays)
    return path


def test_file_content(tmp_path, fitted):
    path = save_model(fitted, str(tmp_path / "m.npz"))  # a str path is accepted
    assert path == tmp_path / "m.npz"
    meta, arrays = _read(path)
    assert meta["format"] == FORMAT == "amtl-cvx-model"
    assert meta["format_version"] == FORMAT_VERSION == 1
    assert meta["amtl_cvx_version"] == __version__
    assert meta["estimator"] == "AMTLRegressor"
    assert meta["params"] == fitted.get_params(deep=False)
    assert meta["arrays"] == sorted(arrays) == sorted(
        ["coef_", "intercept_", "transfer_matrix_", "objective_history_", "order_",
         "imbalance_weights_", "tasks_"])
    attributes = meta["attributes"]
    assert set(attributes) == {"n_iter_", "n_tasks_", "n_features_in_", "objective_", "converged_", "y_2d"}
    assert attributes["y_2d"] is False
    assert type(attributes["n_iter_"]) is int and attributes["n_iter_"] == fitted.n_iter_
    assert type(attributes["objective_"]) is float and attributes["objective_"] == fitted.objective_
    assert type(attributes["converged_"]) is bool and attributes["converged_"] == fitted.converged_
    assert attributes["n_tasks_"] == 3 and attributes["n_features_in_"] == fitted.n_features_in_
    for k, v in arrays.items():
        np.testing.assert_array_equal(v, getattr(fitted, k), err_msg=k)


def test_loaded_attributes_have_their_types(tmp_path, fitted):
    loaded = load_model(save_model(fitted, tmp_path / "m.npz"))
    for name, kind in (("n_iter_", int), ("n_tasks_", int), ("n_features_in_", int), ("objective_", float),
                       ("converged_", bool)):
        assert type(getattr(loaded, name)) is kind, name
    assert loaded._y_2d is False


def test_two_d_targets_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 3))
    Y = X @ rng.standard_normal((3, 2))
    model = AMTLRegressor(lam=0.1, task_column=None).fit(X, Y)
    path = save_model(model, tmp_path / "y2.npz")
    meta, arrays = _read(path)
    assert meta["attributes"]["y_2d"] is True
    loaded = load_model(path)
    assert loaded._y_2d is True and loaded.predict(X).shape == (30, 2)
    # a file without the y_2d entry loads as 1-D targets
    del meta["attributes"]["y_2d"]
    loaded = load_model(_write(tmp_path / "noy.npz", meta, arrays))
    assert loaded._y_2d is False and loaded.predict(X).shape == (30,)


def test_classifier_records_one_d_targets(tmp_path, reg_xy):
    X, y = reg_xy
    model = AMTLClassifier(lam=0.1).fit(X, np.where(y > np.median(y), 1, 0))
    meta, _ = _read(save_model(model, tmp_path / "c.npz"))
    assert meta["attributes"]["y_2d"] is False
    assert meta["arrays"] == sorted(meta["arrays"]) and "classes_" in meta["arrays"]


def test_feature_names_come_back_as_objects(tmp_path, reg_xy):
    pd = pytest.importorskip("pandas")
    X, y = reg_xy
    df = pd.DataFrame(X, columns=["task", "a", "b", "c"])
    model = AMTLRegressor(lam=0.1).fit(df, y)
    meta, arrays = _read(save_model(model, tmp_path / "df.npz"))
    assert arrays["feature_names_in_"].dtype.kind == "U"
    loaded = load_model(tmp_path / "df.npz")
    assert loaded.feature_names_in_.dtype == object
    assert list(loaded.feature_names_in_) == ["task", "a", "b", "c"]


def test_numpy_scalar_parameters_are_saved_as_python_values(tmp_path, fitted):
    model = AMTLRegressor(**{**fitted.get_params(), "lam": np.float64(0.1)})
    for k in ("coef_", "intercept_", "transfer_matrix_", "objective_history_", "order_",
              "imbalance_weights_", "tasks_", "n_iter_", "n_tasks_", "n_features_in_",
              "objective_", "converged_", "_y_2d"):
        setattr(model, k, getattr(fitted, k))
    meta, _ = _read(save_model(model, tmp_path / "np.npz"))
    assert meta["params"]["lam"] == 0.1
    loaded = load_model(tmp_path / "np.npz")
    assert type(loaded.lam) is float and loaded.lam == 0.1
    assert type(model.lam) is np.float64  # the estimator itself is not changed


def test_unserialisable_parameter_message(tmp_path, fitted):
    model = AMTLRegressor(**{**fitted.get_params(), "random_state": np.random.RandomState(0)})
    model.coef_ = fitted.coef_
    with pytest.raises(ValueError, match=r"^parameter random_state=RandomState\(MT19937\) at 0x[0-9A-F]+ is not a "
                       r"JSON value and cannot be saved \(use an int or None for random_state\)$"):
        save_model(model, tmp_path / "x.npz")
    for value in (np.int64(3), np.bool_(True), [1, 2]):
        model = AMTLRegressor(**{**fitted.get_params(), "random_state": value})
        model.coef_ = fitted.coef_
        with pytest.raises(ValueError, match=_exact(f"parameter random_state={value!r} is not a JSON value and "
                                                    "cannot be saved (use an int or None for random_state)")):
            save_model(model, tmp_path / "x.npz")


def test_variant_models_are_refused(tmp_path, fitted):
    model = AMTLRegressor(**fitted.get_params())
    for k in ("coef_", "intercept_", "transfer_matrix_"):
        setattr(model, k, getattr(fitted, k))
    model.variant = "a variant"
    with pytest.raises(ValueError, match=r"^variant: a model fitted with a Variant cannot be saved; a variant is "
                       r"Python code \(CVXPY statements\) and save_model stores only parameters and arrays, never "
                       r"code\. Save its coef_, intercept_ and transfer_matrix_ with numpy instead$"):
        save_model(model, tmp_path / "v.npz")


def test_unknown_estimator_message(tmp_path):
    class AMTLRegressor:  # same name, another class
        pass

    for est in (object(), AMTLRegressor()):
        with pytest.raises(ValueError, match=_exact(
                "estimator must be one of ['AMTLClassifier', 'AMTLRegressor', 'SingleTaskClassifier', "
                f"'SingleTaskRegressor'], got {type(est).__name__}")):
            save_model(est, tmp_path / "x.npz")


def test_plain_array():
    out = _plain_array(np.array(["a", "bc"], dtype=object), "classes_")
    assert out.dtype == np.dtype("<U2")
    np.testing.assert_array_equal(out, ["a", "bc"])
    for value in (np.array([1, 2]), np.array([1.5]), np.array([True]), np.array(["x"]), np.array([3], np.uint8)):
        assert _plain_array(value, "v") is value or np.array_equal(_plain_array(value, "v"), value)
    with pytest.raises(ValueError, match=_exact("classes_ holds Python objects that are not strings; it cannot be "
                                                "saved without pickle")):
        _plain_array(np.array(["a", 1], dtype=object), "classes_")
    with pytest.raises(ValueError, match=_exact("coef_ has dtype complex128, which cannot be saved without pickle")):
        _plain_array(np.array([1j]), "coef_")
    with pytest.raises(ValueError, match=_exact("tasks_ has dtype |S1, which cannot be saved without pickle")):
        _plain_array(np.array([b"a"]), "tasks_")
    with pytest.raises(ValueError, match=r"^order_ has dtype datetime64"):
        _plain_array(np.array(["2020-01-01"], dtype="datetime64[D]"), "order_")


def test_save_and_load_log(tmp_path, fitted, caplog):
    with caplog.at_level(logging.DEBUG, logger="amtl_cvx.estimators.persistence"):
        path = save_model(fitted, tmp_path / "m.npz")
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("amtl_cvx.estimators.persistence", logging.DEBUG, f"saved AMTLRegressor to {path}")]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="amtl_cvx.estimators.persistence"):
        load_model(path)  # the same version: nothing to say
    assert caplog.records == []
    meta, arrays = _read(path)
    old = _write(tmp_path / "old.npz", {**meta, "amtl_cvx_version": "0.0.1"}, arrays)
    with caplog.at_level(logging.INFO, logger="amtl_cvx.estimators.persistence"):
        load_model(old)
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("amtl_cvx.estimators.persistence", logging.INFO, f"{old} was saved by amtl-cvx 0.0.1, loading with {__version__}")]


def test_newer_format_message_in_full(tmp_path, fitted):
    meta, arrays = _read(save_model(fitted, tmp_path / "m.npz"))
    path = _write(tmp_path / "f.npz", {**meta, "format_version": 2, "amtl_cvx_version": "9.0"}, arrays)
    with pytest.raises(ValueError, match=_exact(
            f"{str(path)!r} was written in amtl-cvx model format version 2 (by amtl-cvx 9.0); this amtl-cvx "
            f"({__version__}) reads format versions up to 1: upgrade amtl-cvx")):
        load_model(path)
    rest = {k: v for k, v in meta.items() if k != "amtl_cvx_version"}
    path = _write(tmp_path / "g.npz", {**rest, "format_version": 2}, arrays)
    with pytest.raises(ValueError, match=re.escape("(by amtl-cvx ?)")):
        load_model(path)


def _refused(path, why):
    return pytest.raises(ValueError, match=_exact(f"{str(path)!r} is not an amtl-cvx model file: {why}"))


def test_refusal_messages_in_full(tmp_path, fitted):
    meta, arrays = _read(save_model(fitted, tmp_path / "m.npz"))
    T, d = arrays["coef_"].shape
    cases = {
        "marker": ({**meta, "format": "x"}, arrays, "the format marker is not 'amtl-cvx-model'"),
        "version": ({**meta, "format_version": 0}, arrays, "invalid format_version 0"),
        "estimator": ({**meta, "estimator": 3}, arrays, "unknown estimator 3"),
        "params": ({**meta, "params": None}, arrays, "its metadata lacks params or attributes"),
        "attributes": ({**meta, "attributes": None}, arrays, "its metadata lacks params or attributes"),
        "missing": (meta, {k: v for k, v in arrays.items() if k != "order_"}, "missing array 'order_'"),
        "coef": (meta, {**arrays, "coef_": arrays["coef_"].ravel()},
                 f"coef_ must be a 2-D float array, got shape ({T * d},)"),
        "B shape": (meta, {**arrays, "transfer_matrix_": np.zeros((T, T + 1))},
                    f"transfer_matrix_ has shape ({T}, {T + 1}), expected ({T}, {T})"),
        "n_tasks": ({**meta, "attributes": {**meta["attributes"], "n_tasks_": T + 2}}, arrays,
                    f"n_tasks_={T + 2} but coef_ has {T} rows"),
        "intercept kind": (meta, {**arrays, "intercept_": np.ones(T, dtype=bool)}, "intercept_ must hold finite numbers"),
        "weights text": (meta, {**arrays, "imbalance_weights_": np.array(["a"] * T)},
                         "imbalance_weights_ must hold finite numbers"),
        "weights nan": (meta, {**arrays, "imbalance_weights_": np.full(T, np.nan)},
                        "imbalance_weights_ must hold finite numbers"),
        "B nan": (meta, {**arrays, "transfer_matrix_": np.full((T, T), np.nan)}, "transfer_matrix_ must hold finite numbers"),
        "n_in": ({**meta, "attributes": {**meta["attributes"], "n_features_in_": 2}}, arrays,
                 f"n_features_in_=2 does not match coef_ ({d} features plus the task column)"),
        "n_in bool": ({**meta, "attributes": {**meta["attributes"], "n_features_in_": True}}, arrays,
                      f"n_features_in_=True does not match coef_ ({d} features plus the task column)"),
        "n_in float": ({**meta, "attributes": {**meta["attributes"], "n_features_in_": d + 1.0}}, arrays,
                       f"n_features_in_={d + 1.0} does not match coef_ ({d} features plus the task column)"),
        "B negative": (meta, {**arrays, "transfer_matrix_": -np.ones((T, T)) + np.eye(T)},
                       "transfer_matrix_ must be nonnegative with a zero diagonal"),
        "tasks 0 2 1": (meta, {**arrays, "tasks_": np.array([0, 2, 1])}, "tasks_ must be sorted and unique"),
        "lam": ({**meta, "params": {**meta["params"], "lam": -1.0}}, arrays, None),
    }
    for name, (m, a, why) in cases.items():
        path = _write(tmp_path / f"{name}.npz", m, a)
        if why is None:
            with pytest.raises(ValueError, match="^" + re.escape(f"{str(path)!r} is not an amtl-cvx model file: "
                                                                 "invalid parameters (") + ".*lam"):
                load_model(path)
            continue
        with _refused(path, why):
            load_model(path)
    # integer-valued arrays are numbers
    ok = _write(tmp_path / "int.npz", meta, {**arrays, "imbalance_weights_": np.ones(T, dtype=np.int64)})
    assert load_model(ok).imbalance_weights_.dtype.kind == "i"


def test_n_features_message_without_task_column(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    model = AMTLRegressor(lam=0.1, task_column=None).fit(X, X @ np.ones(3))
    meta, arrays = _read(save_model(model, tmp_path / "m.npz"))
    meta["attributes"]["n_features_in_"] = 4
    path = _write(tmp_path / "bad.npz", meta, arrays)
    with _refused(path, "n_features_in_=4 does not match coef_ (3 features)"):
        load_model(path)


def test_two_task_file_with_unsorted_tasks_is_refused(tmp_path):
    ds = make_regression_tasks(n_tasks=2, n_features=3, n_sources=1, n_parents=1, random_state=0)
    model = SingleTaskRegressor(lam=0.1).fit(*stack_tasks(ds.train))
    meta, arrays = _read(save_model(model, tmp_path / "m.npz"))
    for tasks in ([1, 0], [0, 0]):
        path = _write(tmp_path / "t.npz", meta, {**arrays, "tasks_": np.array(tasks)})
        with _refused(path, "tasks_ must be sorted and unique"):
            load_model(path)


def test_one_task_file_loads(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    model = AMTLRegressor(lam=0.1, task_column=None).fit(X, X @ np.ones(3))
    loaded = load_model(save_model(model, tmp_path / "one.npz"))
    assert loaded.n_tasks_ == 1
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_unreadable_archive_message(tmp_path, fitted):
    path = save_model(fitted, tmp_path / "m.npz")
    raw = bytearray(path.read_bytes())
    # keep the zip directory valid, damage a compressed member
    start = raw.find(b"coef_.npy") + 40
    raw[start:start + 20] = b"\x00" * 20
    bad = tmp_path / "damaged.npz"
    bad.write_bytes(bytes(raw))
    with _refused(bad, "it could not be read (BadZipFile: Bad CRC-32 for file 'coef_.npy')"):
        load_model(bad)


def test_path_messages(tmp_path):
    with pytest.raises(FileNotFoundError, match=_exact(f"path {str(tmp_path / 'nope.npz')!r} does not exist")):
        load_model(str(tmp_path / "nope.npz"))
    with pytest.raises(ValueError, match=_exact(f"path {str(tmp_path)!r} is not a file")):
        load_model(tmp_path)
    text = tmp_path / "t.txt"
    text.write_text("x")
    with _refused(text, "it is not an .npz archive"):
        load_model(text)


def test_unreadable_entries_messages_in_full(tmp_path, fitted):
    meta, arrays = _read(save_model(fitted, tmp_path / "m.npz"))
    plain = tmp_path / "plain.npz"
    np.savez(plain, W=np.zeros(2))
    with _refused(plain, "no '__amtl_cvx_model__' metadata entry"):
        load_model(plain)
    pickled = tmp_path / "pickled.npz"
    with open(pickled, "wb") as fh:
        np.savez(fh, __amtl_cvx_model__=np.array(json.dumps(meta)), **{**arrays, "coef_": np.array([None], dtype=object)})
    prefix = f"{str(pickled)!r} is not an amtl-cvx model file: it could not be read without pickle ("
    with pytest.raises(ValueError, match="^" + re.escape(prefix)):  # then NumPy's message
        load_model(pickled)
    number = tmp_path / "number.npz"
    np.savez(number, __amtl_cvx_model__=np.array(3.0), **arrays)
    with _refused(number, "its metadata entry is not a JSON string"):
        load_model(number)
    broken = tmp_path / "broken.npz"
    np.savez(broken, __amtl_cvx_model__=np.array("{"), **arrays)
    prefix = f"{str(broken)!r} is not an amtl-cvx model file: its metadata is not valid JSON ("
    with pytest.raises(ValueError, match="^" + re.escape(prefix)):  # then the json module's message
        load_model(broken)


def test_metadata_is_written_with_sorted_keys(tmp_path, fitted):
    path = save_model(fitted, tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as npz:
        text = str(npz["__amtl_cvx_model__"])
    assert text == json.dumps(json.loads(text), sort_keys=True)


def test_unsaveable_arrays_are_named(tmp_path, reg_xy):
    X, y = reg_xy
    clf = AMTLClassifier(lam=0.1).fit(X, np.where(y > np.median(y), "a", "b"))
    clf.classes_ = np.array(["a", 1], dtype=object)
    with pytest.raises(ValueError, match=_exact("classes_ holds Python objects that are not strings; it cannot be "
                                                "saved without pickle")):
        save_model(clf, tmp_path / "c.npz")
    reg = AMTLRegressor(lam=0.1).fit(X, y)
    reg.objective_history_ = np.array([1j])
    with pytest.raises(ValueError, match=_exact("objective_history_ has dtype complex128, which cannot be saved "
                                                "without pickle")):
        save_model(reg, tmp_path / "r.npz")


def test_more_refusals_name_the_file(tmp_path, fitted, reg_xy):
    meta, arrays = _read(save_model(fitted, tmp_path / "m.npz"))
    path = _write(tmp_path / "list.npz", {**meta, "estimator": ["AMTLRegressor"]}, arrays)
    with _refused(path, "unknown estimator ['AMTLRegressor']"):  # not a TypeError (unhashable)
        load_model(path)
    path = _write(tmp_path / "params.npz", {**meta, "params": {"alpha": 1}}, arrays)
    with pytest.raises(ValueError, match="^" + re.escape(
            f"{str(path)!r} is not an amtl-cvx model file: the parameters do not match AMTLRegressor (")):
        load_model(path)
    attributes = {k: v for k, v in meta["attributes"].items() if k != "n_iter_"}
    path = _write(tmp_path / "attr.npz", {**meta, "attributes": attributes}, arrays)
    with _refused(path, "missing attribute 'n_iter_'"):
        load_model(path)
    X, y = reg_xy
    clf = AMTLClassifier(lam=0.1).fit(X, np.where(y > np.median(y), 1, -1))
    cmeta, carrays = _read(save_model(clf, tmp_path / "c.npz"))
    del carrays["classes_"]
    path = _write(tmp_path / "noclasses.npz", cmeta, carrays)
    with _refused(path, "a classifier without classes_"):
        load_model(path)
