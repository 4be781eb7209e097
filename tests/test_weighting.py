"""Task-weighting strategies: hand-computed weights and use inside the network."""

from __future__ import annotations

import numpy as np
import pytest

from amtl_cvx.lbtw import MultiTaskNetwork
from amtl_cvx.lbtw import TaskWeighting, make_weighting
from amtl_cvx.lbtw.weighting import BatchStats, CosineWeighting, GradNormWeighting, LBTWWeighting


def _stats(losses, counts=None, epoch=0, step=0, **kw):
    losses = np.asarray(losses, dtype=float)
    counts = np.ones(losses.size, dtype=int) * 10 if counts is None else np.asarray(counts)
    return BatchStats(losses, counts, epoch, step, **kw)


def test_lbtw_hand_computed():
    s = LBTWWeighting(alpha=0.5)
    s.reset(3)
    s.start_epoch(0)
    np.testing.assert_allclose(s.weights(_stats([2.0, 4.0, 1.0])), [1.0, 1.0, 1.0])
    # ratios 0.5, 1, 2 -> sqrt: 0.70710678, 1, 1.41421356 (sum 3.12132034); times 3 / sum
    w = s.weights(_stats([1.0, 4.0, 2.0], step=1))
    np.testing.assert_allclose(w, [0.6796228, 0.9611317, 1.3592455], rtol=1e-6)
    assert w.sum() == pytest.approx(3.0)
    # a new epoch: its first batch is the new reference, so weights are all ones again
    s.start_epoch(1)
    np.testing.assert_allclose(s.weights(_stats([0.3, 9.0, 0.1], epoch=1)), [1.0, 1.0, 1.0])
    # alpha = 0.1: ratios 2, 1/9, 5 -> ** 0.1
    s2 = LBTWWeighting(alpha=0.1)
    s2.reset(3)
    s2.start_epoch(0)
    s2.weights(_stats([1.0, 9.0, 1.0]))
    r = np.array([2.0, 1.0 / 9.0, 5.0]) ** 0.1
    np.testing.assert_allclose(s2.weights(_stats([2.0, 1.0, 5.0])), 3 * r / r.sum(), rtol=1e-12)


def test_lbtw_task_without_labels_in_first_batch():
    s = LBTWWeighting(alpha=1.0)
    s.reset(2)
    s.start_epoch(0)
    # task 1 unlabelled in the first batch: ratio 1 for it; its reference is its next labelled batch
    np.testing.assert_allclose(s.weights(_stats([2.0, 0.0], counts=[5, 0])), [1.0, 1.0])
    np.testing.assert_allclose(s.weights(_stats([2.0, 3.0], counts=[5, 4])), [1.0, 1.0])
    w = s.weights(_stats([1.0, 6.0], counts=[5, 4]))  # ratios 0.5 and 2 -> 2 * r / 2.5
    np.testing.assert_allclose(w, [0.4, 1.6])


def test_lbtw_task_without_labels_after_its_reference_keeps_ratio_one():
    """A task labelled in an earlier batch (reference set) but not in this one has
    ``L_t = 0`` here; its ratio is 1, not 0/ref = 0 (which would give it weight 0 and
    hand its share to the other tasks)."""
    s = LBTWWeighting(alpha=1.0)
    s.reset(2)
    s.start_epoch(0)
    np.testing.assert_allclose(s.weights(_stats([2.0, 3.0], counts=[5, 4])), [1.0, 1.0])
    np.testing.assert_allclose(s.weights(_stats([2.0, 0.0], counts=[5, 0], step=1)), [1.0, 1.0])
    # ratios 0.5 (task 0) and 1 (task 1 unlabelled) -> 2 * r / 1.5
    np.testing.assert_allclose(s.weights(_stats([1.0, 0.0], counts=[5, 0], step=2)), [2 / 3, 4 / 3])
    # the reference of task 1 is still its first labelled batch (3.0): ratio 2 -> 2 * [0.5, 2] / 2.5
    np.testing.assert_allclose(s.weights(_stats([1.0, 6.0], counts=[5, 4], step=3)), [0.4, 1.6])
    # alpha = 0.5, three tasks, one unlabelled after its reference
    s = LBTWWeighting(alpha=0.5)
    s.reset(3)
    s.start_epoch(0)
    s.weights(_stats([4.0, 1.0, 2.0]))
    r = np.array([np.sqrt(0.25), 1.0, np.sqrt(2.0)])
    w = s.weights(_stats([1.0, 0.0, 4.0], counts=[3, 0, 2], step=1))
    np.testing.assert_allclose(w, 3 * r / r.sum(), rtol=1e-12)
    assert np.all(w > 0)


def test_lbtw_in_the_network_never_zeroes_a_task_missing_from_a_batch():
    """End to end: task 1 is labelled on 3 rows only, so most batches have no label for
    it, some after the batch that set its reference; LBTW must still weigh it (ratio 1)."""
    from amtl_cvx.lbtw import MultiTaskNetwork

    class Recording(LBTWWeighting):
        def __init__(self):
            super().__init__(alpha=0.5)
            self.seen = []

        def weights(self, stats):
            w = super().weights(stats)
            self.seen.append((stats.epoch, int(np.asarray(stats.counts)[1]), w.copy()))
            return w

    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4))
    Y = (X[:, :2] > 0).astype(float)
    Y[3:, 1] = np.nan
    rec = Recording()
    MultiTaskNetwork((4,), weighting=rec, max_epochs=3, batch_size=8, random_state=0).fit(X, Y)
    after_reference = 0
    labelled_in_epoch = set()
    for epoch, count, w in rec.seen:
        np.testing.assert_allclose(w.sum(), 2.0)
        if count:
            labelled_in_epoch.add(epoch)
        else:
            assert w[1] > 0.1, w  # ratio 1 for task 1 (0 with the bug)
            after_reference += epoch in labelled_in_epoch
    assert after_reference >= 3  # the case that matters did occur


def test_lbtw_weights_always_sum_to_T_and_alpha_zero_is_equal():
    rng = np.random.default_rng(0)
    s, s0 = LBTWWeighting(alpha=0.5), LBTWWeighting(alpha=0.0)
    s.reset(7)
    s0.reset(7)
    for epoch in range(3):
        s.start_epoch(epoch)
        s0.start_epoch(epoch)
        for step in range(5):
            st = _stats(rng.random(7) + 0.01, counts=rng.integers(0, 3, 7), epoch=epoch, step=step)
            assert s.weights(st).sum() == pytest.approx(7.0)
            np.testing.assert_allclose(s0.weights(st), np.ones(7))


def test_gradnorm_first_update_by_hand():
    g = GradNormWeighting(alpha=1.5, lr=0.025)
    g.reset(3)
    norms = np.array([1.0, 2.0, 3.0])
    # first batch: ratios are 1, target = mean(G) = 2 -> signs -1, 0, +1; Adam's first step is lr * sign
    w0 = g.weights(_stats([1.0, 1.0, 1.0], shared_grad_norms=norms))
    np.testing.assert_allclose(w0, [1.0, 1.0, 1.0])  # the batch trains with the weights before the update
    np.testing.assert_allclose(g.weights(_stats([1.0, 1.0, 1.0], shared_grad_norms=norms)), [1.025, 1.0, 0.975])
    with pytest.raises(ValueError, match="shared_grad_norms"):
        g.weights(_stats([1.0, 1.0, 1.0]))


def test_gradnorm_raises_the_weight_of_the_slower_task():
    g = GradNormWeighting(alpha=1.5)
    g.reset(2)
    for k in range(200):
        losses = np.array([1.0, max(0.1, 1.0 - 0.01 * k)])  # task 1 trains, task 0 does not
        w = g.weights(_stats(losses, shared_grad_norms=np.array([1.0, 1.0])))
        assert w.sum() == pytest.approx(2.0)
    assert g.w[0] > 1.2 > 0.8 > g.w[1]


def test_cosine_hand_computed():
    # rows: task t's head gradient, weights (2 numbers) then bias (last column)
    G = np.array([[1.0, 0.0, 5.0], [1.0, 1.0, -3.0], [-1.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
    # the release's choice (default): the bias is left out, cos over the weights only
    c = CosineWeighting(focus=0)
    c.reset(4)
    np.testing.assert_allclose(c.weights(_stats(np.ones(4), head_grads=G)), [1.0, np.sqrt(0.5), 0.0, 0.0])
    # with the bias: cos((1,0,5), (1,1,-3)) < 0 -> 0; cos((1,0,5), (-1,0,2)) = 9 / (sqrt(26) sqrt(5))
    cb = CosineWeighting(focus=0, include_bias=True)
    cb.reset(4)
    np.testing.assert_allclose(cb.weights(_stats(np.ones(4), head_grads=G)),
                               [1.0, 0.0, 9.0 / np.sqrt(26.0 * 5.0), 0.0])
    G[0] = 0.0  # focused task unlabelled in the batch
    np.testing.assert_allclose(c.weights(_stats(np.ones(4), head_grads=G)), [1.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="include_bias"):
        CosineWeighting(include_bias="yes")
    with pytest.raises(ValueError, match="focus"):
        CosineWeighting(focus=5).reset(4)
    with pytest.raises(ValueError, match="focus"):
        CosineWeighting(focus=-1)


def test_make_weighting_and_bad_arguments():
    assert make_weighting("lbtw", alpha=0.1).alpha == 0.1
    inst = LBTWWeighting(0.1)
    assert make_weighting(inst) is inst
    with pytest.raises(ValueError, match="weighting"):
        make_weighting("nope")
    with pytest.raises(ValueError, match="alpha"):
        LBTWWeighting(alpha=-1)
    with pytest.raises(ValueError, match="lr"):
        GradNormWeighting(lr=0)


class _OnlyFirst(TaskWeighting):
    """A new strategy in a few lines: train task 0 only."""

    name = "only-first"

    def weights(self, stats):
        w = np.zeros(stats.losses.size)
        w[0] = 1.0
        return w


def test_custom_strategy_drives_the_network():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 4))
    Y = (X[:, :2] > 0).astype(float)
    net = MultiTaskNetwork((6,), weighting=_OnlyFirst(), max_epochs=3, batch_size=16, random_state=0)
    net.initialize(4, 2)
    head1 = net.head_W_[:, 1].copy()
    net.fit(X, Y)
    np.testing.assert_array_equal(net.head_W_[:, 1], head1)  # task 1 never got a gradient
    np.testing.assert_array_equal(net.history_["weights"], np.tile([1.0, 0.0], (3, 1)))


@pytest.mark.parametrize("name, params", [("lbtw", {"alpha": 0.5}), ("gradnorm", {}), ("cosine", {"focus": 1})])
def test_strategies_train_in_the_network(name, params):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((120, 5))
    Y = (X[:, :3] > 0).astype(float)
    Y[rng.random(Y.shape) < 0.3] = np.nan
    net = MultiTaskNetwork((8, 4), weighting=name, weighting_params=params, max_epochs=4, batch_size=20,
                           random_state=0).fit(X, Y)
    W = net.history_["weights"]
    assert W.shape == (4, 3) and np.all(np.isfinite(W))
    if name != "cosine":
        np.testing.assert_allclose(W.sum(axis=1), 3.0)
    else:
        np.testing.assert_allclose(W[:, 1], 1.0)


def _release_task_losses(p, y, mask, normalization):
    """pcba_model.py, multi_task_cost(reduce=False): F.binary_cross_entropy(p, y, weight=mask),
    mean over the N rows of the batch ('batch'); 'labelled' divides by the labelled rows."""
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p)) * mask
    denom = mask.shape[0] if normalization == "batch" else mask.sum(axis=0)
    return bce.sum(axis=0) / denom


@pytest.mark.parametrize("normalization", ["batch", "labelled"])
@pytest.mark.parametrize("alpha", [0.1, 0.5])
def test_lbtw_weights_follow_the_release_formula_in_the_network(normalization, alpha):
    rng = np.random.default_rng(11)
    n, d, T = 32, 5, 4
    net = MultiTaskNetwork((6,), loss_normalization=normalization, random_state=2).initialize(d, T)
    lb = LBTWWeighting(alpha=alpha)
    lb.reset(T)
    lb.start_epoch(0)
    fractions = [0.9, 0.5, 0.2, 0.05]  # label fraction of each task (every task labelled in both batches)
    refs, out = None, []
    for step in range(2):
        X = rng.standard_normal((n, d))
        Y = (rng.random((n, T)) < 0.3).astype(float)
        mask = np.zeros((n, T))
        for t, f in enumerate(fractions):
            mask[rng.permutation(n)[: max(2, int(f * n))], t] = 1.0
        Y[mask == 0] = np.nan
        p = net.predict(X)
        losses = _release_task_losses(p, np.nan_to_num(Y), mask, normalization)
        stats = net.batch_statistics(X, Y)
        np.testing.assert_allclose(stats.losses, losses, rtol=1e-10)
        w = lb.weights(BatchStats(stats.losses, stats.counts, 0, step))
        # pcba_run.py, train_and_test_LBTW: the first batch of the epoch is the reference,
        # class_weights = (loss / initial) ** alpha, normalised to sum to T
        if step == 0:
            refs = losses
        expected = (losses / refs) ** alpha
        expected = expected / expected.sum() * T
        np.testing.assert_allclose(w, expected, rtol=1e-10)
        out.append(w)
    np.testing.assert_allclose(out[0], np.ones(T))
    assert not np.allclose(out[1], 1.0)


def test_loss_normalizations_weigh_tasks_differently():
    # the same batch: under 'batch' a task's loss scales with its label fraction, so the
    # LBTW ratios (and weights) of a second batch with other label fractions differ
    l1 = np.array([0.6, 0.6])
    labelled_2 = np.array([0.3, 0.3])
    batch_1, batch_2 = l1 * np.array([0.9, 0.1]), labelled_2 * np.array([0.9, 0.3])
    for ref, cur, expected in ((l1, labelled_2, [1.0, 1.0]), (batch_1, batch_2, None)):
        lb = LBTWWeighting(alpha=0.5)
        lb.reset(2)
        lb.weights(_stats(ref))
        w = lb.weights(_stats(cur))
        if expected is not None:
            np.testing.assert_allclose(w, expected)
        else:
            r = np.sqrt(np.array([0.5, 1.5]))  # ratios (0.27/0.54, 0.09/0.06)
            np.testing.assert_allclose(w, r / r.sum() * 2)
