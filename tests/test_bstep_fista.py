"""The B-step's inner FISTA (``solvers.bstep.fista``): convergence on batches of
nonnegative QPs like the working sets' (rank-deficient Gram matrices, ``K > d``), its
curvature safeguard, and the hand-over test it shares with coordinate descent."""

from __future__ import annotations

import numpy as np
import pytest

import solvers.bstep.fista as fista_mod
from solvers.bstep.fista import _fista, _handover
from solvers.bstep.lawson_hanson import _lh_batch


def batch(seed: int, n: int = 40, K: int = 30, d: int = 10, scale_spread: float = 0.0):
    """``n`` working-set problems ``min 1/2 x'Gx - c'x, x >= 0``: ``G = 2 W_K'W_K`` of
    rank ``d < K`` (as in the B-step), a few invalid coordinates, column scales spread
    over ``10^(+-scale_spread)``."""
    rng = np.random.default_rng(seed)
    Wk = rng.standard_normal((n, d, K)) * 10.0 ** rng.uniform(-scale_spread, scale_spread, (n, 1, K))
    wt = rng.standard_normal((n, d))
    G = 2.0 * np.matmul(np.transpose(Wk, (0, 2, 1)), Wk)
    c = 2.0 * np.einsum("ndk,nd->nk", Wk, wt) - 0.1 * np.abs(rng.standard_normal((n, K)))
    valid = rng.random((n, K)) > 0.1
    G = G * (valid[:, :, None] & valid[:, None, :])
    c = c * valid
    gscale = np.abs(c).max(axis=1) + np.abs(np.einsum("nkk->nk", G)).max(axis=1)
    return G, c, valid, gscale, d


def restricted(G, c, x):
    return 0.5 * np.einsum("nk,nk->n", x, np.einsum("nkj,nj->nk", G, x)) - np.einsum("nk,nk->n", c, x)


def kkt(G, c, valid, x):
    g = np.einsum("nkj,nj->nk", G, x) - c
    v = np.where(x > 0, np.abs(g), np.maximum(-g, 0.0))
    v[~valid] = 0.0
    return v.max(axis=1)


@pytest.mark.parametrize("seed,spread", [(0, 0.0), (1, 0.0), (2, 1.5)])
def test_fista_reaches_the_exact_working_set_solution(seed, spread):
    G, c, valid, gscale, d = batch(seed, scale_spread=spread)
    x, it = _fista(G, c, valid, np.zeros_like(c), gscale, 20000, 1e-11, 1)
    assert it < 20000
    assert np.all(x >= 0) and np.all(x[~valid] == 0)
    assert np.all(kkt(G, c, valid, x) <= 1e-10 * gscale)
    xs, _, fail = _lh_batch(G, c, valid, 1e-14 * gscale.max(), None, d)
    ok = ~fail
    assert ok.sum() >= 0.9 * ok.size
    f_fista, f_exact = restricted(G, c, x), restricted(G, c, xs)
    assert np.all(f_fista[ok] - f_exact[ok] <= 1e-9 * np.maximum(1.0, np.abs(f_exact[ok])))


def test_a_too_small_lipschitz_estimate_is_corrected(monkeypatch):
    """Estimates 100x too small: the curvature check rejects those steps and raises L,
    so the run converges to the same point instead of diverging."""
    G, c, valid, gscale, _ = batch(3)
    ref, _ = _fista(G, c, valid, np.zeros_like(c), gscale, 20000, 1e-11, 1)
    real = fista_mod._lipschitz
    monkeypatch.setattr(fista_mod, "_lipschitz", lambda G, live: real(G, live) / 100.0)
    x, it = _fista(G, c, valid, np.zeros_like(c), gscale, 20000, 1e-11, 1)
    assert it < 20000 and np.all(np.isfinite(x))
    assert np.all(kkt(G, c, valid, x) <= 1e-10 * gscale)
    np.testing.assert_allclose(restricted(G, c, x), restricted(G, c, ref), rtol=1e-9, atol=1e-9)


def test_warm_start_at_the_solution_stops_at_once():
    G, c, valid, gscale, _ = batch(4)
    x, _ = _fista(G, c, valid, np.zeros_like(c), gscale, 20000, 1e-11, 1)
    x2, it = _fista(G, c, valid, x, gscale, 20000, 1e-2, 1)
    assert it <= 2
    np.testing.assert_allclose(restricted(G, c, x2), restricted(G, c, x), rtol=1e-12, atol=1e-12)


def test_handover_needs_a_stable_support_and_a_small_violation():
    n, K = 3, 4
    live = np.ones((n, K), bool)
    sup = np.zeros((n, K), bool)
    stable = np.zeros(n, np.intp)
    gscale = np.ones(n)
    a = np.arange(n)
    x = np.array([[1.0, 0, 0, 0], [1.0, 0, 0, 0], [0, 0, 0, 0]])
    g = np.array([[1e-4, 1.0, 1.0, 1.0], [0.5, 1.0, 1.0, 1.0], [0.1, 0.1, 0.1, 0.1]])
    # first look: row 0 small but its support just appeared; row 2 has no violation
    assert _handover(a, x, g, live, sup, stable, gscale, 1e-2, 2).tolist() == [False, False, True]
    assert _handover(a, x, g, live, sup, stable, gscale, 1e-2, 2).tolist() == [False, False, True]
    # third look: row 0's support has lasted two iterations; row 1's violation is too large
    assert _handover(a, x, g, live, sup, stable, gscale, 1e-2, 2).tolist() == [True, False, True]
