"""The AMTL vs multi-task-network comparison: negative transfer, the run, the plot, the CLI."""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from amtl_cvx.lbtw import EF_FRACTIONS, MultiTaskNetwork, ef_key
from amtl_cvx.lbtw.compare_cli import add_compare_parser
from amtl_cvx.lbtw.comparison import fine_tune, compare_pcba, compare_usps
from amtl_cvx.lbtw.methods import DEFAULT_METHODS, PRESETS
from amtl_cvx.lbtw.report import format_comparison, plot_negative_transfer
from amtl_cvx.lbtw.results import Comparison, MethodResult, negative_transfer
from amtl_cvx.data.pcba import load_pcba_folds, make_pcba_like, write_pcba_folds

TINY = dict(hidden=(16, 8), max_epochs=4, patience=2, batch_size=64, lams=(1e-2,), mus=(0.3,),
            amtl_max_iter=2, random_state=0)


def test_negative_transfer_counts_by_hand():
    nt = negative_transfer([0.5, 0.4, np.nan, 0.7, 0.1], [0.4, 0.45, 0.3, 0.7, 0.2])
    np.testing.assert_allclose(nt["difference"], [0.1, -0.05, np.nan, 0.0, -0.1])
    assert nt["n_negative"] == 2 and nt["n_compared"] == 4
    assert nt["negative"].tolist() == [1, 4]
    # errors: lower is better, so a larger multi-task RMSE is negative transfer
    nt = negative_transfer([1.0, 2.0], [1.5, 1.5], higher_is_better=False)
    np.testing.assert_allclose(nt["difference"], [0.5, -0.5])
    assert nt["negative"].tolist() == [1]
    with pytest.raises(ValueError, match="multi and single"):
        negative_transfer([1.0], [1.0, 2.0])


def _fake():
    s = lambda v: {"pr_auc": np.array(v, float), "roc_auc": np.array(v, float)}  # noqa: E731
    res = {
        "stl_net": MethodResult("stl_net", "single-task network", None, s([0.5, 0.5, 0.5]), 1.0),
        "lbtw0.5": MethodResult("lbtw0.5", "LBTW alpha=0.5", "stl_net", s([0.6, 0.4, 0.3]), 1.0),
    }
    return Comparison("fake", ("a", "b", "c"), res)


def test_comparison_report_and_plot():
    comp = _fake()
    assert comp.negative_transfer("lbtw0.5")["n_negative"] == 2
    with pytest.raises(ValueError, match="no single-task reference"):
        comp.negative_transfer("stl_net")
    text = format_comparison(comp)
    assert "LBTW alpha=0.5" in text and "2 of 3" in text
    fig, ax = plt.subplots()
    assert plot_negative_transfer(comp, ax=ax) is ax
    assert len(ax.collections) == 1 and ax.collections[0].get_offsets().shape == (3, 2)
    assert any("2/3" == t.get_text() for t in ax.texts)
    plt.close(fig)


def test_compare_pcba_end_to_end(tmp_path):
    X, Y, _ = make_pcba_like(1000, 8, 64, n_groups=1, group_size=4, positive_rate=(0.05, 0.1),
                             random_state=0)
    write_pcba_folds(tmp_path, X, Y, n_folds=5)
    data = load_pcba_folds(tmp_path, n_bits=64)
    comp = compare_pcba(data, amtl_components=16, cosine_focus=[0, 5], **TINY)
    assert list(comp.results) == ["stl_net", "equal", "lbtw0.1", "lbtw0.5", "gradnorm0.1", "gradnorm0.5",
                                  "cosine", "stl_logistic", "amtl"]
    assert "finetune" not in DEFAULT_METHODS and "finetune" in PRESETS["release"]["methods"]
    for key, r in comp.results.items():
        for f in EF_FRACTIONS:  # enrichment factors next to PR-AUC and ROC-AUC
            assert r.scores[ef_key(f)].shape == (8,)
        if key == "cosine":
            assert np.flatnonzero(~np.isnan(r.scores["pr_auc"])).tolist() == [0, 5]
        else:
            assert np.all(~np.isnan(r.scores["roc_auc"]))
    # the TINY networks (4 epochs) are smoke runs near chance; the linear models are not:
    # mean ROC AUC 0.78 (single-task logistic) and 0.77 (AMTL) on this seeded set
    for key in ("stl_logistic", "amtl"):
        assert comp.results[key].scores["roc_auc"].mean() > 0.7, key
    assert comp.results["amtl"].params["mu"] == 0.3
    nt = comp.negative_transfer("amtl")
    # negative transfer is exactly the tasks where AMTL scores below its reference
    assert nt["n_compared"] == 8
    assert nt["negative"].tolist() == np.flatnonzero(nt["difference"] < 0).tolist()
    assert nt["n_negative"] == len(nt["negative"])
    with pytest.raises(ValueError, match="methods"):
        compare_pcba(data, methods=["lbtw"], **TINY)


def test_compare_selects_references_only(tmp_path):
    X, Y, _ = make_pcba_like(600, 6, 32, n_groups=1, group_size=3, positive_rate=(0.05, 0.1), random_state=1)
    write_pcba_folds(tmp_path, X, Y, n_folds=3)
    data = load_pcba_folds(tmp_path, n_bits=32)
    comp = compare_pcba(data, methods=["lbtw0.5"], **TINY)
    assert list(comp.results) == ["stl_net", "lbtw0.5"]


def _run_cli(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    add_compare_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_compare_on_generated_data(tmp_path, capsys):
    argv = ["compare", "--dataset", "pcba", "--rows", "800", "--tasks", "8", "--bits", "64", "--epochs", "3",
            "--hidden", "8,4", "--cosine-focus", "2", "--amtl-components", "8", "--amtl-max-iter", "1",
            "--lam", "0.01", "--mu", "0.1", "--workdir", str(tmp_path / "folds"), "--plot", str(tmp_path / "fig")]
    assert _run_cli(argv) == 0
    out = capsys.readouterr().out
    assert "generated PCBA-like data: 800 molecules, 8 tasks" in out
    for label in ("single-task network", "LBTW alpha=0.1", "LBTW alpha=0.5", "GradNorm", "cosine", "AMTL"):
        assert label in out
    assert "neg. transfer" in out
    assert (tmp_path / "fig_pcba.png").stat().st_size > 1000
    assert len(list((tmp_path / "folds").glob("file_*.csv.gz"))) == 5


def test_compare_usps_small(usps_path):
    from amtl_cvx.data import load_release_mat

    ds = load_release_mat(usps_path)
    comp = compare_usps(ds, methods=["equal", "lbtw0.5", "amtl"], **TINY)
    assert set(comp.results) == {"stl_net", "equal", "lbtw0.5", "stl_logistic", "amtl"}
    for r in comp.results.values():
        assert r.scores["pr_auc"].shape == (10,)
    # logistic models are good on USPS: well above chance (0.1 one-vs-all); the TINY
    # networks (4 epochs) are smoke runs and are not held to it
    assert comp.results["stl_logistic"].extra["ova_accuracy"] > 0.7
    assert comp.results["amtl"].extra["ova_accuracy"] > 0.7
    assert comp.results["amtl"].scores["pr_auc"].mean() > 0.7


def _tiny_split(seed=2, n=900, T=5, d=32):
    X, Y, _ = make_pcba_like(n, T, d, n_groups=1, group_size=3, positive_rate=(0.1, 0.2), random_state=seed)
    Xs = {"train": X[:500], "val": X[500:700], "test": X[700:]}
    Ys = {"train": Y[:500], "val": Y[500:700], "test": Y[700:]}
    return Xs, Ys


def test_fine_tuning_starts_from_the_pre_trained_shared_layers():
    X, Y = _tiny_split()
    net_params = dict(hidden=(12, 6), batch_norm=True, max_epochs=3, patience=3, batch_size=64)
    # a learning rate of 1e-12 keeps every parameter where it started (to ~1e-11)
    pre, net = fine_tune(X, Y, 2, random_state=0, **{**net_params, "learning_rate": 1e-12})
    assert pre.n_tasks_ == 4 and net.n_tasks_ == 1  # pre-trained on the others, then the focus
    for a, b in zip(net.shared_params(), pre.shared_params()):
        np.testing.assert_allclose(a, b, atol=1e-9)
    # ... and the pre-training really trained: its shared layers moved from a fresh start
    pre2, net2 = fine_tune(X, Y, 2, random_state=0, **net_params)
    fresh = MultiTaskNetwork(random_state=0, **net_params).initialize(32, 4)
    assert not np.allclose(pre2.shared_params()[0], fresh.shared_params()[0])
    # the fine-tuned network is trained on the focused task's labelled rows only
    rows = np.flatnonzero(~np.isnan(Y["train"][:, 2]))
    assert net2.predict(X["test"]).shape == (X["test"].shape[0], 1)
    assert 0 < rows.size < 500
    with pytest.raises(ValueError, match="focus"):
        fine_tune(X, Y, 5, **net_params)


def test_release_preset_runs_every_release_method(tmp_path):
    X, Y = _tiny_split(3)
    from amtl_cvx.lbtw.comparison import compare

    comp = compare(X, Y, None, preset="release", methods=[m for m in PRESETS["release"]["methods"]
                                                          if m not in ("stl_logistic", "amtl")],
                   hidden=(16, 16), batch_size=128, max_epochs=2, cosine_focus=[0, 3], stl_tasks=[0, 3])
    assert list(comp.results) == ["stl_net", "equal", "lbtw0.1", "lbtw0.5", "gradnorm0.1", "gradnorm0.5",
                                  "cosine", "finetune"]
    for key, r in comp.results.items():
        assert np.flatnonzero(~np.isnan(r.scores["pr_auc"])).tolist() == ([0, 3] if key in (
            "stl_net", "cosine", "finetune") else [0, 1, 2, 3, 4])
        assert r.params["epochs_run"] >= 1
        if r.reference:
            assert comp.negative_transfer(key)["n_compared"] == 2  # only where a reference exists
    assert comp.results["finetune"].params["epochs_run"] == 2 * (2 + 2)  # pre-train + fine-tune, 2 tasks
    text = format_comparison(comp)
    assert "EF1%" in text and "s/epoch" in text and "fine-tuning" in text
    with pytest.raises(ValueError, match="preset"):
        compare(X, Y, None, preset="heavy", methods=["equal"])


def test_cli_without_arguments_runs_the_quick_data_set_only(usps_path, capsys):
    argv = ["compare", "--usps", str(usps_path), "--epochs", "1", "--hidden", "8", "--amtl-max-iter", "1",
            "--lam", "0.01", "--mu", "0.1", "--methods", "equal,amtl", "--plot", "none"]
    assert _run_cli(argv) == 0
    out = capsys.readouterr().out
    assert "running the quick comparison (USPS)" in out
    assert "amtl-cvx compare --dataset pcba" in out and "--preset release" in out
    assert "generated PCBA-like data" not in out and "usps1" in out
