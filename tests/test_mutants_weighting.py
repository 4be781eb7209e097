"""The task-weighting strategies of ``amtl_cvx.lbtw.weighting`` by hand, step by step
(issue 17, item 4): every default, every check's message, and each strategy's weights
over several batches against a reference written out from the module docstring."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from amtl_cvx.lbtw import WEIGHTINGS, TaskWeighting, make_weighting
from amtl_cvx.lbtw.weighting import (
    BatchStats,
    CosineWeighting,
    EqualWeighting,
    GradNormWeighting,
    LBTWWeighting,
)


def _exact(message: str) -> str:
    return "^" + re.escape(message) + "$"


def _stats(losses, counts, epoch=0, step=0, **kw):
    return BatchStats(np.asarray(losses, dtype=float), np.asarray(counts), epoch, step, **kw)


# --------------------------------------------------------------------------------------
# base class and equal weights
# --------------------------------------------------------------------------------------
def test_base_class():
    w = TaskWeighting()
    assert w.n_tasks == 0 and w.name == "equal" and w.requires == ()
    w.reset(3)
    assert w.n_tasks == 3 and type(w.n_tasks) is int
    w.reset(np.int64(1))
    assert w.n_tasks == 1
    w.reset(2.0)
    assert w.n_tasks == 2 and type(w.n_tasks) is int
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match=_exact(f"n_tasks must be a positive integer, got {bad!r}")):
            w.reset(bad)
    assert w.start_epoch(4) is None
    out = w.weights(_stats([0.5, 2.0, 0.0], [1, 1, 0]))
    np.testing.assert_array_equal(out, [1.0, 1.0, 1.0])
    assert w.describe() == "equal"
    assert repr(w) == "TaskWeighting(equal)"
    e = EqualWeighting()
    assert e.name == "equal" and repr(e) == "EqualWeighting(equal)"


def test_batch_stats_defaults():
    s = BatchStats(np.ones(2), np.ones(2), 1, 2)
    assert s.head_grads is None and s.shared_grad_norms is None
    with pytest.raises(AttributeError):
        s.epoch = 3  # frozen


# --------------------------------------------------------------------------------------
# LBTW
# --------------------------------------------------------------------------------------
def _lbtw_ref(losses, refs, has, alpha):
    T = len(losses)
    ratio = [losses[t] / refs[t] if has[t] and refs[t] > 0 else 1.0 for t in range(T)]
    w = [r ** alpha for r in ratio]
    return [x * T / sum(w) for x in w]


def test_lbtw_over_two_epochs():
    lb = LBTWWeighting()
    assert lb.alpha == 0.5 and lb.name == "lbtw" and lb.requires == ()
    assert lb.describe() == "lbtw(alpha=0.5)" and repr(lb) == "LBTWWeighting(lbtw(alpha=0.5))"
    lb.reset(4)
    assert lb._ref.shape == (4,) and np.all(np.isnan(lb._ref))
    lb.start_epoch(0)
    # batch 0: task 3 unlabelled, task 2 has loss 0 (its reference is 0: ratio stays 1)
    out = lb.weights(_stats([2.0, 0.5, 0.0, 9.0], [3, 1, 2, 0]))
    np.testing.assert_allclose(out, np.ones(4), rtol=1e-15)
    # batch 1: task 3 gets its reference now
    b1 = [1.0, 0.125, 0.7, 4.0]
    out = lb.weights(_stats(b1, [2, 2, 1, 5], step=1))
    np.testing.assert_allclose(out, _lbtw_ref(b1, [2.0, 0.5, 0.0, 4.0], [1, 1, 1, 1], 0.5), rtol=1e-14)
    assert out.sum() == pytest.approx(4.0, rel=1e-15)
    # batch 2: task 0 unlabelled (ratio 1 before renormalisation)
    b2 = [5.0, 1.0, 0.1, 1.0]
    out = lb.weights(_stats(b2, [0, 1, 1, 1], step=2))
    np.testing.assert_allclose(out, _lbtw_ref(b2, [2.0, 0.5, 0.0, 4.0], [0, 1, 1, 1], 0.5), rtol=1e-14)
    # a new epoch takes new references
    lb.start_epoch(1)
    assert np.all(np.isnan(lb._ref))
    out = lb.weights(_stats([1.0, 1.0, 1.0, 1.0], [1, 1, 1, 1], epoch=1))
    np.testing.assert_allclose(out, np.ones(4), rtol=1e-15)
    b3 = [0.25, 4.0, 1.0, 1.0]
    out = lb.weights(_stats(b3, [1, 1, 1, 1], epoch=1, step=1))
    np.testing.assert_allclose(out, _lbtw_ref(b3, [1.0] * 4, [1] * 4, 0.5), rtol=1e-14)


def test_lbtw_alpha():
    lb = LBTWWeighting(alpha=2)
    assert lb.alpha == 2.0 and lb.describe() == "lbtw(alpha=2)"
    lb.reset(2)
    lb.weights(_stats([1.0, 1.0], [1, 1]))
    out = lb.weights(_stats([3.0, 1.0], [1, 1]))
    np.testing.assert_allclose(out, [2 * 9 / 10, 2 * 1 / 10], rtol=1e-15)
    assert LBTWWeighting(alpha=0).describe() == "lbtw(alpha=0)"
    with pytest.raises(ValueError, match=_exact("alpha must be >= 0.0, got -0.1")):
        LBTWWeighting(alpha=-0.1)


# --------------------------------------------------------------------------------------
# GradNorm
# --------------------------------------------------------------------------------------
class _GradNormRef:
    """GradNorm as the module docstring states it, one task at a time."""

    def __init__(self, T, alpha, lr, min_weight):
        self.T, self.alpha, self.lr, self.min_weight = T, alpha, lr, min_weight
        self.w = [1.0] * T
        self.L0 = [None] * T
        self.m = [0.0] * T
        self.v = [0.0] * T
        self.k = 0

    def step(self, losses, g, counts):
        used = list(self.w)
        for t in range(self.T):
            if counts[t] > 0 and self.L0[t] is None:
                self.L0[t] = losses[t]
        act = [t for t in range(self.T) if counts[t] > 0 and self.L0[t] and self.L0[t] > 0 and losses[t] > 0]
        if len(act) < 2:
            return used
        G = {t: self.w[t] * g[t] for t in act}
        ratios = {t: losses[t] / self.L0[t] for t in act}
        mean_r = sum(ratios.values()) / len(act)
        mean_G = sum(G.values()) / len(act)
        self.k += 1
        new = list(self.w)
        for t in act:
            target = mean_G * (ratios[t] / mean_r) ** self.alpha
            grad = math.copysign(1.0, G[t] - target) * g[t] if G[t] != target else 0.0
            self.m[t] = 0.9 * self.m[t] + 0.1 * grad
            self.v[t] = 0.999 * self.v[t] + 0.001 * grad ** 2
            mhat = self.m[t] / (1 - 0.9 ** self.k)
            vhat = self.v[t] / (1 - 0.999 ** self.k)
            new[t] = self.w[t] - self.lr * mhat / (math.sqrt(vhat) + 1e-8)
        new = [max(x, self.min_weight) for x in new]
        s = sum(new)
        self.w = [x * self.T / s for x in new]
        return used


def test_gradnorm_defaults_and_checks():
    gn = GradNormWeighting()
    assert (gn.alpha, gn.lr, gn.min_weight) == (1.5, 0.025, 1e-3)
    assert gn.name == "gradnorm" and gn.requires == ("shared_grad_norms",)
    assert gn.describe() == "gradnorm(alpha=1.5)" and repr(gn) == "GradNormWeighting(gradnorm(alpha=1.5))"
    GradNormWeighting(alpha=0)  # alpha >= 0
    with pytest.raises(ValueError, match=_exact("alpha must be >= 0.0, got -1")):
        GradNormWeighting(alpha=-1)
    with pytest.raises(ValueError, match=_exact("lr must be > 0.0, got 0")):
        GradNormWeighting(lr=0)
    with pytest.raises(ValueError, match=_exact("min_weight must be > 0.0, got 0.0")):
        GradNormWeighting(min_weight=0.0)
    gn.reset(3)
    np.testing.assert_array_equal(gn.w, np.ones(3))
    assert np.all(np.isnan(gn._L0)) and gn._k == 0
    np.testing.assert_array_equal(gn._m, np.zeros(3))
    np.testing.assert_array_equal(gn._v, np.zeros(3))
    with pytest.raises(ValueError, match=_exact("stats.shared_grad_norms is required by gradnorm")):
        gn.weights(_stats([1.0, 1.0, 1.0], [1, 1, 1]))


@pytest.mark.parametrize("alpha, lr", [(1.5, 0.025), (0.5, 0.3), (0.0, 0.1)])
def test_gradnorm_steps_by_hand(alpha, lr):
    T = 4
    gn = GradNormWeighting(alpha=alpha, lr=lr, min_weight=0.05)
    gn.reset(T)
    ref = _GradNormRef(T, alpha, lr, 0.05)
    batches = [
        ([1.0, 2.0, 0.5, 0.0], [1.0, 0.5, 2.0, 0.0], [2, 3, 1, 0]),  # task 3 unlabelled
        ([0.8, 1.0, 0.6, 3.0], [0.7, 0.9, 1.5, 0.2], [2, 3, 1, 4]),  # task 3 gets its L0
        ([0.5, 1.5, 0.0, 2.0], [1.2, 0.4, 0.0, 0.6], [1, 2, 1, 3]),  # task 2 has zero loss
        ([0.4, 0.9, 0.3, 1.0], [0.3, 0.6, 1.1, 3.0], [1, 1, 1, 1]),
        ([0.1, 0.1, 0.1, 0.1], [1.0, 1.0, 1.0, 1.0], [0, 0, 0, 1]),  # one active task: no update
    ]
    for losses, g, counts in batches:
        expected = ref.step(losses, g, counts)
        out = gn.weights(_stats(losses, counts, shared_grad_norms=np.array(g)))
        np.testing.assert_allclose(out, expected, rtol=1e-12)
        np.testing.assert_allclose(gn.w, ref.w, rtol=1e-12)
        np.testing.assert_allclose(gn._m, ref.m, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(gn._v, ref.v, rtol=1e-12, atol=1e-18)
        assert gn._k == ref.k
        assert gn.w.sum() == pytest.approx(T, rel=1e-14)


def test_gradnorm_task_whose_first_loss_is_zero_is_never_updated():
    gn = GradNormWeighting(alpha=0.5, lr=0.1)
    gn.reset(3)
    ref = _GradNormRef(3, 0.5, 0.1, 1e-3)
    for losses, g in (([1.0, 0.0, 2.0], [1.0, 2.0, 0.5]), ([0.5, 0.7, 1.0], [0.8, 1.5, 0.9]),
                      ([0.4, 0.6, 0.9], [0.7, 1.0, 1.2])):
        expected = ref.step(losses, g, [1, 1, 1])
        np.testing.assert_allclose(gn.weights(_stats(losses, [1, 1, 1], shared_grad_norms=np.array(g))),
                                   expected, rtol=1e-12)
    np.testing.assert_allclose(gn.w, ref.w, rtol=1e-12)
    assert np.all(np.isfinite(gn.w))


def test_float32_statistics_are_used_in_float64():
    losses = np.array([1.0, 2.0, 0.5], dtype=np.float32)
    g = np.array([1.0, 0.3, 2.0], dtype=np.float32)
    later = np.array([0.7, 1.1, 0.45], dtype=np.float32)
    gn = GradNormWeighting(alpha=1.5, lr=0.1)
    gn.reset(3)
    ref = _GradNormRef(3, 1.5, 0.1, 1e-3)
    for L, G in ((losses, g), (later, g * np.float32(1.7))):
        ref.step([float(x) for x in L], [float(x) for x in G], [1, 1, 1])
        gn.weights(BatchStats(L, np.ones(3, dtype=int), 0, 0, shared_grad_norms=G))
        np.testing.assert_allclose(gn.w, ref.w, rtol=1e-13)
    lb = LBTWWeighting(alpha=0.5)
    lb.reset(3)
    lb.weights(BatchStats(losses, np.ones(3, dtype=int), 0, 0))
    out = lb.weights(BatchStats(later, np.ones(3, dtype=int), 0, 1))
    expected = _lbtw_ref([float(x) for x in later], [float(x) for x in losses], [1, 1, 1], 0.5)
    np.testing.assert_allclose(out, expected, rtol=1e-14)


def test_gradnorm_clips_at_min_weight():
    gn = GradNormWeighting(alpha=0.0, lr=5.0, min_weight=0.2)
    gn.reset(2)
    out = gn.weights(_stats([1.0, 1.0], [1, 1], shared_grad_norms=np.array([10.0, 0.1])))
    np.testing.assert_array_equal(out, [1.0, 1.0])  # the batch uses the weights before the update
    # task 0: G = 10 > mean 5.05 -> step lr * 1 = 5 down, clipped to 0.2; task 1: 5 up -> 6
    np.testing.assert_allclose(gn.w, [2 * 0.2 / 6.2, 2 * 6.0 / 6.2], rtol=1e-6)


def test_gradnorm_returned_weights_are_a_copy():
    gn = GradNormWeighting()
    gn.reset(2)
    out = gn.weights(_stats([1.0, 2.0], [1, 1], shared_grad_norms=np.array([1.0, 3.0])))
    out[0] = 99.0
    assert gn.w[0] != 99.0


# --------------------------------------------------------------------------------------
# cosine (RMTL)
# --------------------------------------------------------------------------------------
def test_cosine_checks():
    c = CosineWeighting()
    assert c.focus == 0 and c.include_bias is False
    assert c.name == "cosine" and c.requires == ("head_grads",)
    assert c.describe() == "cosine(focus=0)" and repr(c) == "CosineWeighting(cosine(focus=0))"
    assert CosineWeighting(focus=2, include_bias=True).describe() == "cosine(focus=2, bias)"
    assert CosineWeighting(focus=np.int64(1), include_bias=np.bool_(True)).include_bias is True
    assert type(CosineWeighting(focus=1.0).focus) is int
    for bad in (True, -1, 1.5):
        with pytest.raises(ValueError, match=_exact(f"focus must be a nonnegative task index, got {bad!r}")):
            CosineWeighting(focus=bad)
    for bad in (1, "yes", None):
        with pytest.raises(ValueError, match=_exact(f"include_bias must be True or False, got {bad!r}")):
            CosineWeighting(include_bias=bad)
    c3 = CosineWeighting(focus=3)
    with pytest.raises(ValueError, match=_exact("focus must be < n_tasks=3, got 3")):
        c3.reset(3)
    c3.reset(4)
    assert c3.n_tasks == 4
    with pytest.raises(ValueError, match=_exact("stats.head_grads is required by cosine")):
        c.weights(_stats([1.0], [1]))


def _cos(a, b):
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
    return sum(x * y for x, y in zip(a, b)) / (na * nb) if na > 0 and nb > 0 else 0.0


@pytest.mark.parametrize("include_bias", [False, True])
def test_cosine_by_hand(include_bias):
    G = np.array([
        [1.0, 0.0, 2.0, 5.0],   # task 0
        [2.0, 1.0, 1.0, -9.0],  # task 1: the bias flips the sign of the cosine with task 2
        [0.5, 0.2, 1.0, 0.3],   # task 2 (focus)
        [-1.0, 0.0, -2.0, 1.0],  # task 3: opposite to the focus
        [0.0, 0.0, 0.0, 4.0],   # task 4: zero head-weight gradient
        [0.05, 0.01, 0.08, 0.0],  # task 5: a small gradient (norm < 1) counts the same
    ])
    c = CosineWeighting(focus=2, include_bias=include_bias)
    c.reset(6)
    out = c.weights(_stats(np.ones(6), np.ones(6), head_grads=G))
    cols = slice(None) if include_bias else slice(0, 3)
    expected = [max(0.0, _cos(G[t, cols], G[2, cols])) for t in range(6)]
    expected[2] = 1.0
    np.testing.assert_allclose(out, expected, rtol=1e-14, atol=1e-300)
    assert out[3] == 0.0 and out[5] > 0.5
    # float32 gradients are compared in float64
    G32 = G.astype(np.float32)
    out32 = c.weights(_stats(np.ones(6), np.ones(6), head_grads=G32))
    G64 = G32.astype(np.float64)
    expected = [max(0.0, _cos(G64[t, cols], G64[2, cols])) for t in range(6)]
    expected[2] = 1.0
    np.testing.assert_allclose(out32, expected, rtol=1e-14, atol=1e-300)


def test_cosine_focus_without_gradient():
    c = CosineWeighting(focus=1)
    c.reset(3)
    G = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 7.0], [1.0, 1.0, 1.0]])  # focus: zero weights, bias 7
    np.testing.assert_array_equal(c.weights(_stats(np.ones(3), [1, 0, 1], head_grads=G)), [0.0, 1.0, 0.0])
    cb = CosineWeighting(focus=1, include_bias=True)
    cb.reset(3)
    np.testing.assert_allclose(cb.weights(_stats(np.ones(3), [1, 1, 1], head_grads=G)),
                               [0.0, 1.0, 7 / (7 * math.sqrt(3))], rtol=1e-14)


# --------------------------------------------------------------------------------------
# make_weighting
# --------------------------------------------------------------------------------------
def test_make_weighting():
    assert WEIGHTINGS == {"equal": EqualWeighting, "lbtw": LBTWWeighting, "gradnorm": GradNormWeighting,
                          "cosine": CosineWeighting}
    lb = make_weighting("lbtw", alpha=0.1)
    assert type(lb) is LBTWWeighting and lb.alpha == 0.1
    assert type(make_weighting("equal")) is EqualWeighting
    assert make_weighting("cosine", focus=2).focus == 2
    inst = GradNormWeighting()
    assert make_weighting(inst) is inst
    with pytest.raises(ValueError, match=_exact("weighting is already an instance; do not pass keyword arguments")):
        make_weighting(inst, alpha=1.0)
    with pytest.raises(ValueError, match=_exact(
            "weighting must be one of ('equal', 'lbtw', 'gradnorm', 'cosine') or a TaskWeighting, got 'uniform'")):
        make_weighting("uniform")
