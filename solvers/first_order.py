r"""First-order solver for the AMTL B-step: working-set FISTA.

The problem (``docs/objective.md``, section "B-step"), in original units::

    min_B  lam * ||W - W B||_F^2 + sum_{s,t} p_s * B[s, t] + ridge * ||B||_F^2
    s.t.   B >= 0, diag(B) = 0

separates into ``T`` independent nonnegative (weighted) lasso problems, one per column::

    min_{b >= 0, b_t = 0}  lam * ||w_t - W b||^2 + p' b + ridge * ||b||^2,

with gradient ``g = -2 lam W'(w_t - W b) + p + 2 ridge b``.

Algorithm (:func:`solve_transfer_first_order`)
----------------------------------------------
Columns are processed in blocks (all columns of a block at once, BLAS-friendly); every
block is independent, so blocks may run on the workers of a ``dask.distributed`` cluster.
For a block:

1. *Pricing pass*.  The gradient of every coordinate of every column of the block is
   ``p - 2 lam W'(w_t - W b) + 2 ridge b``, one ``(d x T)' (d x n)`` product per
   sub-block (``G = W'W`` is never formed; no ``T x T x T`` product occurs).  The pass
   gives each column's certificate (the entry-relative KKT residual of
   :func:`solvers.transfer.transfer_kkt_residual`) and its most violating coordinates.
2. *Working set*.  Each uncertified column's working set is its support, plus its
   ``max(d, 10)`` coordinates with the most negative gradient, plus the rest of its
   previous working set, at most ``2 d`` entries in all (support first).
3. *FISTA* on the working sets, vectorised over the columns
   (:func:`solvers.bstep.fista._fista`): projected accelerated gradient on the
   restricted quadratic (the Gram ``2 lam W_K'W_K + 2 ridge I`` of a working set is
   ``K x K``) in the Jacobi metric, with the gradient restart of O'Donoghue and Candes
   (2015) and a per-column step checked against the exact curvature of each step.
   Iterations run until each column's support (the set ``b > 0``) has stayed the same
   for ``_STABLE`` iterations and its restricted KKT violation is below
   ``_HANDOVER_REL`` of its gradient scale, or the iteration cap. Cyclic coordinate
   descent with Anderson extrapolation (Bertrand & Massias, "Anderson acceleration of
   coordinate descent", AISTATS 2021) is the alternative inner method
   (:func:`solvers.bstep.coordinate_descent._cd`, ``_INNER = "cd"``); FISTA is as
   fast or faster (``docs/first_order.md``).
4. *Solve on the identified support*.  The restricted problem is then finished exactly
   by the batched Lawson-Hanson method of :mod:`solvers.transfer` (the sequential
   semi-definite active-set method for the columns it cannot finish), warm-started
   from the ``d`` largest entries of the FISTA iterate; this gives exact zeros off the
   support.  The inner method stops at a loose accuracy, so this finish still pivots
   (measured: about as long as the inner method on dense random ``W``,
   ``docs/first_order.md``).
5. Repeat 1-4 until a pricing pass certifies every column (``cert <= tol / 2``) or a
   column's support comes back unchanged although violators were added (the limit of
   floating point; it is no longer priced).  Columns still uncertified at the end are
   solved one by one by SciPy's NNLS in unit-norm columns
   (:func:`solvers.bstep.polish._nnls_rescue`) and certified again.

``B`` is kept in compact form (support indices and values per column) throughout: a
solve at ``T = 100,000`` never holds a ``T x T`` array, and the result is a SciPy CSC
matrix when ``T`` exceeds ``SPARSE_AUTO_T`` (or when asked).

The duality gap (:func:`transfer_duality_gap`) is available as a second certificate.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np

from solvers.bstep.checks import _P_MAX, _check_B_any, _check_inputs, _check_ridge
from solvers.bstep.compact_certificate import (
    _column_gaps,
    _compact_from_csc,
    _price_block,
    _Pricing,
    _to_csc,
    transfer_duality_gap,
    transfer_kkt_residual_compact,
)
from solvers.bstep.coordinate_descent import _compact, _dedupe, _merge, _solve_working_sets
from solvers.bstep.polish import _merge_rescued, _nnls_rescue
from solvers.result import SolverResult


__all__ = [
    "SPARSE_AUTO_T",
    "solve_transfer_first_order",
    "transfer_duality_gap",
    "transfer_kkt_residual_compact",
]

#: ``sparse_output="auto"`` returns a CSC matrix when ``T`` exceeds this (a dense
#: ``T x T`` float64 array is 200 MB at ``T = 5000``).
SPARSE_AUTO_T = 5000
#: at most this many uncertified columns are rescued one by one by NNLS
_RESCUE_MAX_COLS = 1000
#: violators added to a working set per round, per feature (``_WS_FACTOR * d``)
_WS_FACTOR = 1
#: largest working set, per feature (times _WS_GROWTH ** (round - 1))
_WS_KEEP = 2
#: growth factor per round of the working sets and of the violators added (1: none;
#: growth was measured slower, docs/first_order.md)
_WS_GROWTH = 1.0


@dataclass(frozen=True)
class _Stopping:
    """Stopping rule of :func:`_solve_block`: the certificate tolerance ``tol``, the cap
    ``max_iter`` on rounds and whether to ``record`` the certificate per round."""

    tol: float
    max_iter: int
    record: bool


def _solve_block(
    W: np.ndarray, p: np.ndarray, rho: float, cols: np.ndarray, sup_idx: np.ndarray, sup_x: np.ndarray,
    stop: _Stopping,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, list[float]]:
    """Solve the columns ``cols`` (units ``lam = 1``, ``max |W| = 1``).

    ``sup_idx``/``sup_x`` (``len(cols) x S``): warm-start supports (may be empty).
    Returns compact supports, the per-column certificate, the rounds, the inner
    first-order iterations and (if ``stop.record``) the largest certificate after each round.
    Module-level and pure, so that a ``dask`` worker can run it.
    """
    tol, max_iter, record = stop.tol, stop.max_iter, stop.record
    d, T = W.shape
    cols = np.asarray(cols, dtype=np.intp)
    n = cols.size
    pr = _Pricing.of(W, p, rho)
    scale = pr.scale
    thr_rel = 0.5 * tol
    thr_qp = max(min(0.5 * tol, 1e-12), 1e-14) * scale  # absolute, gradient units
    m = min(T - 1, max(int(_WS_FACTOR * d), 10))
    hist: list[float] = []
    if T == 1:
        return np.zeros((n, 0), np.intp), np.zeros((n, 0)), np.zeros(n), 0, 0, [0.0] if record else []
    cert, cand, cand_ok = _price_block(pr, cols, sup_idx, sup_x, m, thr_rel)
    todo = np.flatnonzero(cert > thr_rel)
    cand, cand_ok = cand[todo], cand_ok[todo]  # aligned with todo
    rounds = 0
    epochs = 0
    frozen = np.zeros(n, dtype=bool)
    if record:
        hist.append(float(cert.max(initial=0.0)))
    # previous working sets (their coordinates off the support are kept, up to _WS_KEEP)
    prev = np.zeros((n, 0), dtype=np.intp)
    while todo.size and rounds < max_iter:
        rounds += 1
        # working sets grow geometrically for the columns that come back (as in skglm)
        grow = _WS_GROWTH ** (rounds - 1)
        extra = np.concatenate([cand, prev[todo]], axis=1)
        extra_ok = np.concatenate([cand_ok, np.ones(prev[todo].shape, bool)], axis=1)
        extra_ok &= extra != cols[todo][:, None]
        ws, ok, x0 = _merge(sup_idx[todo], sup_x[todo], extra, extra_ok)
        ws, ok, x0 = _dedupe(ws, ok, x0, int(_WS_KEEP * d * grow))
        keep = np.where(ok, ws, cols[todo][:, None])
        if prev.shape[1] < keep.shape[1]:
            prev = np.pad(prev, ((0, 0), (0, keep.shape[1] - prev.shape[1])))
        prev[todo] = cols[todo][:, None]
        prev[todo, : keep.shape[1]] = keep
        old = np.sort(np.where(sup_x[todo] > 0, sup_idx[todo], -1), axis=1)
        xs, ep = _solve_working_sets(W, p, rho, cols[todo], ws, ok, x0, thr_qp)
        epochs += ep
        new_idx, new_x = _compact(ws, xs)
        new = np.sort(np.where(new_x > 0, new_idx, -1), axis=1)
        w = max(old.shape[1], new.shape[1])
        old = np.pad(old, ((0, 0), (w - old.shape[1], 0)), constant_values=-1)
        new = np.pad(new, ((0, 0), (w - new.shape[1], 0)), constant_values=-1)
        if rounds > 1:
            frozen[todo[np.all(old == new, axis=1)]] = True
        sup_idx, sup_x = _merge_rescued(sup_idx, sup_x, todo, new_idx, new_x)
        sup_idx, sup_x = _compact(sup_idx, sup_x)
        m_next = int(min(T - 1, m * _WS_GROWTH * grow))
        c2, cd2, ok2 = _price_block(pr, cols[todo], sup_idx[todo], sup_x[todo], m_next, thr_rel)
        cert[todo] = c2
        if record:
            hist.append(float(cert.max(initial=0.0)))
        more = (c2 > thr_rel) & ~frozen[todo]
        todo, cand, cand_ok = todo[more], cd2[more], ok2[more]
    # last resort: columns left uncertified, one by one (NNLS in unit-norm columns)
    bad = np.flatnonzero(cert > thr_rel)
    if bad.size and bad.size <= _RESCUE_MAX_COLS and (rho == 0 or T <= 3000):
        Wr = W if rho == 0 else np.vstack([W, np.sqrt(rho) * np.eye(T)])
        r_idx, r_x = _nnls_rescue(Wr, p, 1.0, cols[bad])
        t_idx, t_x = _merge_rescued(sup_idx, sup_x, bad, r_idx, r_x)
        c3, _, _ = _price_block(pr, cols[bad], t_idx[bad], t_x[bad], 0, thr_rel)
        better = c3 < cert[bad]
        if better.any():
            keep = bad[better]
            sup_idx, sup_x = _merge_rescued(sup_idx, sup_x, keep, t_idx[keep], t_x[keep])
            cert[keep] = c3[better]
        sup_idx, sup_x = _compact(sup_idx, sup_x)
        if record:
            hist.append(float(cert.max(initial=0.0)))
    return sup_idx, sup_x, cert, rounds, epochs, hist



    return float(cert.max(initial=0.0))


# --------------------------------------------------------------------------------------
# main entry point
# --------------------------------------------------------------------------------------
def _default_block(T: int, d: int) -> int:
    """Columns per block: all of them up to 4096, else about 4096."""
    return int(min(T, 4096))


def solve_transfer_first_order(
    W: np.ndarray,
    penalty: np.ndarray,
    lam: float,
    *,
    B0: Any = None,
    ridge: float = 0.0,
    tol: float = 1e-10,
    max_iter: int = 1000,
    record_history: bool = False,
    sparse_output: bool | str = "auto",
    client: Any = None,
    block_size: int | None = None,
) -> SolverResult:
    r"""Solve the AMTL B-step by working-set FISTA (first order).

    Solves::

        min_B  lam * ||W - W B||_F^2 + sum_{s,t} p_s * B[s, t] + ridge * ||B||_F^2
        s.t.   B >= 0, diag(B) = 0

    column by column, columns in blocks; see the module docstring for the method
    (pricing by ``W'(W B)``, working sets, FISTA on them, a final solve on the
    identified support).

    Stopping certificate: the one of :func:`solvers.transfer.solve_transfer`
    (:func:`solvers.transfer.transfer_kkt_residual`), with ``g = 2 lam (G B - G) + p 1'
    + 2 ridge B``::

        cert = max_{s != t} r[s, t] / min(sigma[s, t], scale),
        r[s, t]     = |g[s, t]| if B[s, t] > 0 else max(0, -g[s, t]),
        sigma[s, t] = p_s + 2 lam ||w_s|| (||w_t|| + sum_k B[k, t] ||w_k||) + 2 ridge B[s, t],
        scale       = 2 lam max_s ||w_s||^2 + max_s p_s   (1 if that is 0).

    A column is finished when its pricing pass finds ``cert <= tol / 2``;
    ``converged`` reports ``cert <= tol``.  The duality gap is
    :func:`transfer_duality_gap`.

    Parameters
    ----------
    W : numpy.ndarray
        Task parameters, shape ``(d, T)``, finite.
    penalty : numpy.ndarray
        ``p``, shape ``(T,)``, finite and nonnegative.
    lam : float
        Coupling weight, finite and ``> 0``.
    B0 : numpy.ndarray or scipy.sparse matrix, optional
        Warm start, ``(T, T)``, finite; its positive off-diagonal entries start the
        supports (negative and diagonal entries are ignored).
    ridge : float, default=0.0
        The transfer ridge ``rho >= 0`` (weight of ``||B||_F^2``).
    tol : float, default=1e-10
        Tolerance on the certificate.
    max_iter : int, default=1000
        Maximum number of rounds (pricing pass + coordinate descent + support solve)
        per block; a safeguard, rounds end when no violator is left.
    record_history : bool, default=False
        Record the largest certificate after every round (the largest over blocks).
    sparse_output : bool or "auto", default="auto"
        Return ``B`` as a ``scipy.sparse.csc_matrix`` (supports only): always if True,
        never if False, when ``T > SPARSE_AUTO_T`` (5000) if "auto".
    client : dask.distributed.Client, optional
        Solve the column blocks on the cluster's workers (``W`` is scattered once, the
        blocks come back in compact form).  Needs the ``amtl-cvx[dask]`` extra.
    block_size : int, optional
        Columns per block (default ``min(T, 4096)``; with a client, ``ceil(T / (2 *
        workers))`` so that every worker gets work).

    Returns
    -------
    SolverResult
        ``solution`` is ``B`` (dense ``T x T`` or CSC) with ``B >= 0`` exactly, exact
        zeros off the support and an exactly zero diagonal; ``objective`` the value
        above; ``n_iter`` the inner first-order iterations (summed over rounds,
        largest over blocks); ``certificate`` the relative KKT residual at ``solution``;
        ``history`` the largest certificate per round; ``duality_gap`` the relative
        duality gap of :func:`transfer_duality_gap` at ``solution`` (one extra
        ``O(d T^2)`` pass). Without the ridge, a column whose
        residual points into a sender with zero price gets the dual point 0, so its
        gap is its whole objective: the gap certifies only where prices are positive
        (the KKT certificate holds everywhere).

    Raises
    ------
    ValueError
        If an argument is malformed (named in the message).
    ImportError
        If ``client`` is given and ``dask.distributed`` is not installed.
    """
    W, p, lam = _check_inputs(W, penalty, lam)
    d, T = W.shape
    rho = _check_ridge(ridge)
    if isinstance(tol, bool) or not isinstance(tol, (Real, np.floating, np.integer)):
        raise ValueError(f"tol must be a real number, got {tol!r}")
    tol = float(tol)
    if not np.isfinite(tol) or tol <= 0:
        raise ValueError(f"tol must be finite and > 0, got {tol}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (Integral, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if not (sparse_output is True or sparse_output is False or sparse_output == "auto"):
        raise ValueError(f"sparse_output must be True, False or 'auto', got {sparse_output!r}")
    if block_size is not None and (
        isinstance(block_size, bool) or not isinstance(block_size, (Integral, np.integer)) or block_size < 1
    ):
        raise ValueError(f"block_size must be an integer >= 1, got {block_size!r}")
    Bs0 = _check_B_any(B0, T, "B0") if B0 is not None else None
    sparse = sparse_output is True or (sparse_output == "auto" and T > SPARSE_AUTO_T)

    def result(sup_idx, sup_x, cols, obj, n_iter, cert, hist, gap) -> SolverResult:
        Bc = _to_csc(sup_idx, sup_x, cols, T)
        sol = Bc if sparse else Bc.toarray()
        return SolverResult(sol, obj, int(n_iter), bool(cert <= tol), float(cert), tol, tuple(hist), float(gap))

    sigma = float(np.max(np.abs(W)))
    all_cols = np.arange(T)
    if sigma == 0.0:
        empty = np.zeros((T, 0), dtype=np.intp)
        return result(empty, np.zeros((T, 0)), all_cols, 0.0, 0, 0.0, (0.0,) if record_history else (), 0.0)
    # the units of solve_transfer: lam = 1, max |W| = 1 (same minimisers and certificate)
    Wu = W / sigma
    pu = np.minimum(p / lam / sigma / sigma, _P_MAX)
    rhou = rho / lam / sigma / sigma
    if Bs0 is not None:
        i0, x0 = _compact_from_csc(Bs0, all_cols)
    else:
        i0, x0 = np.zeros((T, 0), dtype=np.intp), np.zeros((T, 0))

    if client is not None:
        if importlib.util.find_spec("distributed") is None:
            raise ImportError("client= needs dask.distributed: install the extra, pip install 'amtl-cvx[dask]'")
        if block_size is None:
            n_workers = max(1, len(client.scheduler_info().get("workers", {})))
            block_size = max(1, -(-T // (2 * n_workers)))
    nb = block_size or _default_block(T, d)
    stop = _Stopping(tol, max_iter, record_history)
    blocks = [all_cols[s : s + nb] for s in range(0, T, nb)]

    if client is not None:
        Wf, pf = client.scatter([Wu, pu], broadcast=True, hash=False)
        futures = [
            client.submit(_solve_block, Wf, pf, rhou, cb, i0[cb], x0[cb], stop, pure=False)
            for cb in blocks
        ]
        outs = client.gather(futures)
    else:
        outs = [_solve_block(Wu, pu, rhou, cb, i0[cb], x0[cb], stop) for cb in blocks]

    S = max((o[0].shape[1] for o in outs), default=0)
    sup_idx = np.zeros((T, S), dtype=np.intp)
    sup_x = np.zeros((T, S))
    cert = 0.0
    n_iter = 0
    hist: list[float] = []
    for cb, (si, sx, c, rounds, epochs, h) in zip(blocks, outs):
        sup_idx[cb, : si.shape[1]] = si
        sup_x[cb, : sx.shape[1]] = sx
        cert = max(cert, float(c.max(initial=0.0)))
        n_iter = max(n_iter, epochs)
        if record_history:
            L = max(len(hist), len(h))
            hist = [max(hist[i] if i < len(hist) else hist[-1] if hist else 0.0,
                        h[i] if i < len(h) else h[-1]) for i in range(L)]
    if record_history:
        hist.append(cert)
    # supports in increasing index, as transfer_duality_gap reads them from a CSC
    # matrix: the same summation order, so the same gap to the last bit
    order = np.argsort(np.where(sup_x > 0, sup_idx, T), axis=1, kind="stable")
    sup_idx, sup_x = np.take_along_axis(sup_idx, order, axis=1), np.take_along_axis(sup_x, order, axis=1)
    # objective and relative duality gap (transfer_duality_gap's, same operations) in one
    # more pass of O(d T^2), in column blocks
    primal, dual = _column_gaps(W, p / lam, rho / lam, sup_idx, sup_x, all_cols)
    obj = float(primal.sum()) * lam
    if not np.isfinite(obj):
        raise ValueError(
            f"the B-step objective overflows float64 (lam = {lam:g}, max |W| = {sigma:g}); rescale W or lam"
        )
    gap = max(float(np.sum(primal - dual)), 0.0)
    rel_gap = 0.0 if gap == 0.0 else gap / max(float(primal.sum()), 1e-300)
    return result(sup_idx, sup_x, all_cols, obj, n_iter, cert, hist, rel_gap)
