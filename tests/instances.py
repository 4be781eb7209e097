"""Seeded instance families shared by the solver tests (issue 17, item 2), and the
uniqueness / distance tools used to compare solutions with the CVXPY referees.

Two families the Gaussian generators miss:

- ``onehot``: one-hot groups plus a bias column (each row has exactly one 1 per group,
  so every group's columns sum to the bias column): ``X_t`` is exactly rank deficient
  even with ``n_t >= d``;
- ``colscaled``: per-column badly scaled designs (each column multiplied by its own
  factor, the factors spanning 1e-3..1e3), and for the B-step per-column badly scaled
  ``W`` (column norms spanning 1e-3..1e3), not one global scale (which cancels out).

Uniqueness is decided by ``np.linalg.matrix_rank`` of the Hessian (quadratic problems),
and where the minimiser is unique the distance to the referee's point is bounded by
strong convexity (``distance_bound``), so the tolerance follows the conditioning.
"""

from __future__ import annotations

import numpy as np

SCALES = (-3.0, 3.0)  # log10 range of the per-column factors


def column_factors(rng: np.random.Generator, k: int) -> np.ndarray:
    """``k`` factors spanning exactly 1e-3..1e3 (log-spaced), in a random column order."""
    return rng.permutation(np.logspace(*SCALES, k))


def onehot_bias_X(rng: np.random.Generator, n: int, groups=(3, 3), n_int: int = 1) -> np.ndarray:
    """``n`` rows: one-hot groups, integer features in the tens, then the bias column
    (last). Rank at most ``d - len(groups)`` whatever ``n`` is."""
    cols = []
    for g in groups:
        onehot = np.zeros((n, g))
        onehot[np.arange(n), rng.integers(g, size=n)] = 1.0
        cols.append(onehot)
    cols.append(rng.integers(18, 81, size=(n, n_int)).astype(float))
    cols.append(np.ones((n, 1)))
    return np.hstack(cols)


def onehot_null_direction(groups=(3, 3), n_int: int = 1) -> np.ndarray:
    """A vector ``v`` with ``X v = 0`` for every ``onehot_bias_X`` design: the first
    group's indicators minus the bias."""
    d = sum(groups) + n_int + 1
    v = np.zeros(d)
    v[: groups[0]] = 1.0
    v[-1] = -1.0
    return v


def colscaled_X(rng: np.random.Generator, n: int, d: int, factors: np.ndarray | None = None) -> np.ndarray:
    """Gaussian design whose columns are multiplied by per-column factors in 1e-3..1e3."""
    f = column_factors(rng, d) if factors is None else factors
    return rng.standard_normal((n, d)) * f


def onehot_W(rng: np.random.Generator, d: int, T: int, groups=(3, 3)) -> np.ndarray:
    """B-step input shaped like parameters fitted on one-hot + bias designs: correlated
    columns (a shared part plus task deviations) and exactly dependent rows (the last,
    bias, row is a signed sum of the groups' rows), so ``rank(W) <= d - 1`` and the
    columns that can enter a B column are dependent as soon as ``T - 1`` exceeds it,
    even with ``d >= T - 1``."""
    shared = rng.standard_normal(d)
    W = shared[:, None] + 0.7 * rng.standard_normal((d, T))
    g0, g1 = groups
    W[-1] = W[:g0].sum(axis=0) - W[g0:g0 + g1].sum(axis=0)
    return W


def colscaled_W(rng: np.random.Generator, d: int, T: int) -> np.ndarray:
    """B-step input with per-column norms spanning 1e-3..1e3 and correlated directions
    (so that B is not trivially 0)."""
    base = rng.standard_normal((d, 3))
    dirs = base @ rng.uniform(0.2, 1.0, size=(3, T)) + 0.5 * rng.standard_normal((d, T))
    dirs /= np.linalg.norm(dirs, axis=0)
    return dirs * column_factors(rng, T)


def is_pd(H: np.ndarray) -> bool:
    """Uniqueness test: the Hessian has full rank (``matrix_rank``, default tolerance)."""
    return int(np.linalg.matrix_rank(H, hermitian=True)) == H.shape[0]


def modulus(H: np.ndarray) -> float:
    """Strong-convexity modulus (smallest eigenvalue) of a quadratic with Hessian ``H``."""
    return float(np.linalg.eigvalsh(H)[0])


def natural_residual(x: np.ndarray, g: np.ndarray, nonneg: np.ndarray, step: float) -> np.ndarray:
    """``x - P(x - step * g)``, P the projection on {x_i >= 0 where nonneg}: zero iff
    ``x`` satisfies the KKT conditions."""
    r = step * g.astype(float)
    r[nonneg] = x[nonneg] - np.maximum(x[nonneg] - step * g[nonneg], 0.0)
    return r


def distance_bound(x_fast, F_fast, F_ref, g, nonneg, m, L, F_scale, rounding=1e-13):
    """Bound on ``||x_ref - x_fast||`` for a quadratic with Hessian eigenvalues in
    ``[m, L]``, m > 0, over {x_i >= 0 where nonneg}, from values and residuals only.

    With ``r`` the natural residual at step ``1 / L``, ``e = 2 L / m * ||r||`` bounds
    ``||x_fast - x*||`` (the error bound ``(1 + a L) / (a m) ||r_a||``); then
    ``F_fast - F* <= ||g_live|| e`` and strong convexity gives ``||x_ref - x*||^2 <=
    2 (F_ref - F*) / m``. ``rounding * F_scale`` is the slack of evaluating F in floating
    point. The bound is tight when the problem is well conditioned and loose (but still
    valid) when it is not: the tolerance follows the conditioning."""
    r = natural_residual(x_fast, g, nonneg, 1.0 / L)
    e = 2.0 * L / m * float(np.linalg.norm(r))
    # F_fast - F* <= <g, x_fast - x*>; coordinates at a bound with g >= 0 add nothing
    live = ~(nonneg & (x_fast == 0.0) & (g >= 0.0))
    excess = F_ref - F_fast + float(np.linalg.norm(g[live])) * e + rounding * max(1.0, abs(F_scale))
    return float(np.sqrt(2.0 * max(excess, 0.0) / m)) + e
