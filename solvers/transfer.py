r"""Fast exact solver for the AMTL B-step (the transfer graph for fixed ``W``).

The problem (``docs/objective.md``, section "B-step"), in original units::

    min_B  lam * ||W - W B||_F^2 + sum_{s,t} p_s * B[s, t]
    s.t.   B >= 0, diag(B) = 0

It separates into ``T`` independent nonnegative quadratic programs, one per column::

    min_{b >= 0, b_t = 0}  lam * ||w_t - W b||^2 + p' b

with gradient ``2 lam (G b - G[:, t]) + p`` and ``G = W' W``.

Algorithm
---------
For ``T <= 3000``: a Lawson-Hanson active-set method run for all ``T`` columns
at once, which prices *every* coordinate of every active column at each pivot with one
matrix product ``R' W`` (``R = W - W B`` restricted to the active columns, ``d x n``)
and lets up to two coordinates enter, so the number of pivots is about half the support
size plus the drops (13 at T = 100, d = 20), each costing a BLAS-3 product and batched
``min(d, T-1)``-sized updates of ``inv(H_PP)``. A warm start ``B0`` fills the passive
sets with its supports (from the previous B-step of an alternation, typically a few
pivots remain). The solution is refined by one step of iterative refinement and
certified by one pricing pass (a support left uncertified is re-solved with QR).
Columns it cannot finish (a degenerate swap, the pivot cap), or a certificate above
``tol / 2``, hand over to the method below, warm-started from its support.

For ``T > 3000`` and on hand-over: a working-set (column-generation) method with an
exact active-set core, vectorised across columns:

1. *Pricing pass* (the only place where all ``T`` coordinates of a column are looked
   at).  For a block of columns the full gradient is formed as
   ``p - 2 lam W' (W[:, cols] - W B[:, cols])`` -- a ``(d x T)' (d x nb)`` matrix
   product, so ``G`` (``T x T``) is never formed and no ``T x T x T`` product occurs;
   ``B`` is kept in a compact (support indices, values) form until the end.  The pass
   computes the KKT certificate of each column and its most violating coordinates.
2. *Working set*.  Each column's working set is its current support plus (up to 30)
   most violating coordinates of the last pricing pass.
3. *Restricted solve*.  On its working set every column is solved *exactly* by a
   Lawson-Hanson active-set method with the linear term, run for all columns of a
   block at once.  Passive sets are stored in ``min(d, K)`` slots with the inverse of
   the passive Gram block maintained by rank-one bordering / downdating; a coordinate
   enters only if its Schur complement shows that its column of ``W`` is numerically
   independent of the passive ones, so the restricted system stays nonsingular even
   when ``G`` is singular (duplicated tasks, ``T > d``).  A dependent violator is
   brought in along the zero-curvature direction ``e_j - inv(G_PP) G_Pj`` (slope
   ``< 0``) until a passive coordinate reaches zero and leaves (a swap).  Rounds after
   the first are warm-started from the previous support.  The final support is
   re-solved with a fresh LU solve (polish).  Columns the batched method cannot
   finish (iteration cap, degenerate swap) go to a sequential primal active-set method
   with exact line search and null-space descent, valid for a semi-definite Gram block.
4. Repeat 1-3 until a pricing pass finds no violator.  Every round strictly decreases
   the objective of every column it touches (in exact arithmetic), so the method
   terminates finitely; a column whose support comes back unchanged although
   violators were added is at the limit of floating point and is no longer priced.
   The stopping test is the certificate (see :func:`solve_transfer`), never an
   iteration count; ``converged`` reports whether it reached ``tol``.

Entries off the support are exact zeros and the diagonal is exactly zero.

Layout: this module holds the entry point and the hand-over between the methods; each
method is a module of :mod:`solvers.bstep` (``full_pricing``, ``lawson_hanson``,
``working_set``, ``semidefinite``, ``polish``; the certificate in ``certificate``, the
input checks in ``checks``, both shared with :mod:`solvers.first_order`).
"""

from __future__ import annotations

from dataclasses import replace
from numbers import Integral, Real

import numpy as np

from solvers.bstep.certificate import (  # transfer_objective, transfer_kkt_residual: public here
    _assemble,
    _dense,
    _entry_relative,
    _entry_residuals,
    _residuals,
    transfer_kkt_residual,
    transfer_objective,
)
from solvers.bstep.checks import _P_MAX, _check_B, _check_inputs, _check_ridge, _grad_scale
from solvers.bstep.polish import _full_pricing_solve, _merge_rescued, _nnls_rescue
from solvers.bstep.working_set import _working_set_solve
from solvers.result import SolverResult
from solvers.ridge_transfer import solve_ridge_unit

__all__ = ["solve_transfer", "transfer_objective", "transfer_kkt_residual"]

# Largest T for which the full-pricing Lawson-Hanson method is used (its pricing costs
# O(d T^2) per pivot); beyond it the working-set method is faster (measured at
# d = 20: 40 s against 28 s for a cold solve at T = 10,000).
_FULL_PRICING_MAX_T = 3000
#: at most this many uncertified columns are rescued one by one (:func:`_nnls_rescue`)
_RESCUE_MAX_COLS = 1000
#: pivot cap of the full-pricing method, per slot (+10); a column that needs more is
#: usually cycling on a degenerate support and is rescued by :func:`_nnls_rescue`
_FULL_PIVOTS = 4
#: pivoting rounds of an inexact ridge B-step (:func:`_solve_transfer_inexact`)
_INEXACT_ROUNDS = 200


def solve_transfer(
    W: np.ndarray,
    penalty: np.ndarray,
    lam: float,
    *,
    B0: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 10_000,
    record_history: bool = False,
    ridge: float = 0.0,
) -> SolverResult:
    r"""Solve the AMTL B-step exactly (working set + batched active-set core).

    Solves::

        min_B  lam * ||W - W B||_F^2 + sum_{s,t} p_s * B[s, t]  (+ ridge * ||B||_F^2)
        s.t.   B >= 0, diag(B) = 0

    With ``ridge > 0`` (the transfer ridge) every column is strictly convex and is
    solved by block principal pivoting instead (:mod:`solvers.ridge_transfer`); the
    certificate is the one below with the ridge's terms (:func:`transfer_kkt_residual`).

    column by column (``min_{b >= 0, b_t = 0} lam * ||w_t - W b||^2 + p' b``), all
    columns vectorised; see the module docstring for the algorithm.  ``G = W' W`` is
    never formed: full gradients cost ``O(d T)`` per column through ``W' (W b)``.

    Stopping certificate (:func:`transfer_kkt_residual`), with
    ``g = 2 lam (G B - G) + p 1'``::

        cert = max_{s != t} r[s, t] / min(sigma[s, t], scale),
        r[s, t]     = |g[s, t]| if B[s, t] > 0 else max(0, -g[s, t]),
        sigma[s, t] = p_s + 2 lam ||w_s|| (||w_t|| + sum_k B[k, t] ||w_k||),
        scale       = 2 lam max_s ||w_s||^2 + max_s p_s   (1 if that is 0),

    each entry's KKT residual relative to the size of its own gradient's terms (so a
    column 1e-12 times smaller than the largest is certified as strictly). The pivots
    stop when a pricing pass finds no coordinate whose violation exceeds
    ``min(tol / 2, 1e-12) * scale`` (so a converged result is typically at machine
    precision); the result is then certified entry by entry, and the columns that fail
    are solved again one by one in unit-norm columns (:func:`_nnls_rescue`);
    ``converged`` reports ``cert <= tol``.

    Parameters
    ----------
    W : numpy.ndarray
        Task parameters, shape ``(d, T)``, finite.
    penalty : numpy.ndarray
        ``p``, shape ``(T,)``, finite and nonnegative.
    lam : float
        Coupling weight, finite and ``> 0``.
    B0 : numpy.ndarray, optional
        Warm start, shape ``(T, T)``, finite.  Only its support (positive off-diagonal
        entries; at most the ``d + 8`` largest per column) is used, as the initial
        working set; negative and diagonal entries are ignored.  From the solution
        itself the method finishes after one round.
    tol : float, default 1e-10
        Tolerance on the certificate.
    max_iter : int, default 10000
        Maximum number of pivot steps of the cold start (also capped at
        ``4 (min(d, T - 1) + 10)``: the columns that cap leaves uncertified are then
        solved one by one with SciPy's NNLS, unless ``max_iter`` is the smaller cap) and
        of working-set rounds (restricted solve + pricing pass).  A safeguard only:
        both end when no KKT violator is left.
    record_history : bool, default False
        Record the largest violation after every step or round.
    ridge : float, default 0.0
        The transfer ridge ``rho >= 0`` (weight of ``||B||_F^2``).

    Returns
    -------
    SolverResult
        ``solution`` is ``B`` (``T x T``) with ``B >= 0`` exactly (no negative entries),
        exact zeros off the support and an exactly zero diagonal; ``objective`` is the
        value above; ``n_iter`` the number of pivot steps of the cold-start
        Lawson-Hanson method plus its certifying pricing pass (no ``B0``), or of
        working-set rounds (with ``B0``, or when the cold start hands over);
        ``certificate`` the relative KKT residual at ``solution``; ``history`` the
        largest priced violation per step (relative), ending at the certificate.

    Raises
    ------
    ValueError
        If ``W`` is not a finite 2-D array, ``penalty`` has the wrong shape or a
        negative / non-finite entry, ``lam <= 0``, ``B0`` has the wrong shape or
        non-finite entries, ``tol <= 0`` or ``max_iter < 1``; or if the objective
        overflows float64 (``lam max|W|^2`` near 1e308).

    Notes
    -----
    The problem is solved in the units ``lam = 1``, ``max |W| = 1`` (prices
    ``p / (lam max|W|^2)``), where it has the same minimisers and certificate, so the
    magnitude of ``W`` (1e-170 or 1e150) or of ``lam`` changes neither.
    """
    W, p, lam = _check_inputs(W, penalty, lam)
    d, T = W.shape
    if isinstance(tol, bool) or not isinstance(tol, (Real, np.floating, np.integer)):
        raise ValueError("tol must be a real number")
    tol = float(tol)
    if not np.isfinite(tol) or tol <= 0:
        raise ValueError(f"tol must be finite and > 0, got {tol}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (Integral, np.integer)):
        raise ValueError("max_iter must be an integer")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if B0 is not None:
        B0 = _check_B(B0, T, "B0")
    rho = _check_ridge(ridge)

    sigma = float(np.max(np.abs(W)))
    if sigma == 0.0:  # W = 0: every B costs p'B >= 0 and gains nothing
        return SolverResult(np.zeros((T, T)), 0.0, 0, True, 0.0, tol, (0.0,) if record_history else ())
    # The B-step (its minimisers and its certificate) is invariant under
    # (W, p, lam) -> (W / sigma, p / (lam sigma^2), 1): solve in those units, where no
    # magnitude of W or lam overflows or underflows, and scale the objective back. A
    # price above _P_MAX keeps every entry of B at zero, exactly as a larger one would.
    p_unit = np.minimum(p / lam / sigma / sigma, _P_MAX)
    if rho > 0:
        unit = _solve_unit_ridge(W / sigma, p_unit, rho / lam / sigma / sigma, B0, tol, max_iter,
                                 record_history)
    else:
        unit = _solve_unit(W / sigma, p_unit, B0, tol, max_iter, record_history)
    objective = unit.objective * lam * sigma * sigma
    if not np.isfinite(objective):
        raise ValueError(
            f"the B-step objective overflows float64 (lam = {lam:g}, max |W| = {sigma:g}); "
            "rescale W or lam"
        )
    return replace(unit, objective=objective)


def _solve_transfer_inexact(
    W: np.ndarray, penalty: np.ndarray, lam: float, B0: np.ndarray | None, rel: float, ridge: float = 0.0,
) -> np.ndarray | None:
    """An inexact B-step for :func:`solvers.joint.solve_amtl`: the pivots of
    :func:`solve_transfer` stopped at the looser threshold ``rel * scale`` (gradient units,
    ``scale`` as in :func:`solve_transfer`), neither certified nor rescued.

    Returns a feasible ``B`` (``B >= 0``, zero diagonal) whose KKT violations are of the
    order of ``rel`` relative to ``scale``, or ``None`` where the pivots left a column
    unsolved or ``T`` is beyond the full-pricing method (the caller then solves exactly).
    Inputs are the caller's own, already checked (finite ``W``, ``penalty >= 0``,
    ``lam > 0``).
    """
    d, T = W.shape
    sigma = float(np.max(np.abs(W)))
    if T == 1 or sigma == 0.0 or not np.isfinite(sigma):
        return None
    Wu = W / sigma
    pu = np.minimum(penalty / lam / sigma / sigma, _P_MAX)
    thr = rel * _grad_scale(Wu, pu, 1.0)
    if ridge > 0:
        B, failed, _ = solve_ridge_unit(Wu, pu, ridge / lam / sigma / sigma, B0, thr, _INEXACT_ROUNDS)
        return None if failed.any() else B
    if T > _FULL_PRICING_MAX_T:
        return None
    sup_idx, sup_x, failed, _, _ = _full_pricing_solve(
        Wu, pu, 1.0, thr, _FULL_PIVOTS * (min(d, T - 1) + 10), B0, polish="refine"
    )
    return None if failed.any() else _dense(sup_idx, sup_x, T)


def _solve_unit_ridge(
    W: np.ndarray, p: np.ndarray, rho: float, B0: np.ndarray | None, tol: float, max_iter: int,
    record_history: bool,
) -> SolverResult:
    """:func:`solve_transfer` with a transfer ridge, in its units ``lam = 1``, ``max |W| = 1``.

    Block principal pivoting (:func:`solvers.ridge_transfer.solve_ridge_unit`), certified
    entry by entry; columns it leaves uncertified are solved one by one by
    :func:`_nnls_rescue` on ``[W; sqrt(rho) I]`` (same minimiser: for ``b_t = 0``,
    ``||w_t - W b||^2 + rho ||b||^2 + rho`` is ``||[w_t; sqrt(rho) e_t] - [W; sqrt(rho) I] b||^2``).
    """
    d, T = W.shape
    if T == 1:
        return SolverResult(np.zeros((1, 1)), float(np.sum(W * W)), 0, True, 0.0, tol, ())
    scale = _grad_scale(W, p, 1.0)
    thr = max(min(0.5 * tol, 1e-12), 1e-14) * scale
    B, failed, rounds = solve_ridge_unit(W, p, rho, B0, thr, max_iter)
    norms = np.sqrt(np.einsum("dt,dt->t", W, W))
    cols = np.arange(T)

    def certify(Bc: np.ndarray) -> np.ndarray:
        return _entry_relative(W, p, 1.0, cols, W - W @ Bc, Bc.T, norms, scale, rho).max(axis=1)

    rel = certify(B)
    bad = np.flatnonzero(failed | (rel > 0.5 * tol))
    if bad.size:
        r_idx, r_x = _nnls_rescue(np.vstack([W, np.sqrt(rho) * np.eye(T)]), p, 1.0, bad)
        B[:, bad] = 0.0
        np.add.at(B, (r_idx, np.repeat(bad[:, None], r_idx.shape[1], axis=1)), r_x)
        rel = certify(B)
    cert = float(rel.max())
    R = W - W @ B
    objective = float(np.einsum("ij,ij->", R, R) + p @ B.sum(axis=1) + rho * np.einsum("ij,ij->", B, B))
    return SolverResult(B, objective, rounds, bool(cert <= tol), cert, tol, (cert,) if record_history else ())


def _solve_unit(
    W: np.ndarray, p: np.ndarray, B0: np.ndarray | None, tol: float, max_iter: int, record_history: bool
) -> SolverResult:
    """:func:`solve_transfer` in its own units: ``lam = 1``, ``max |W| = 1``.

    For ``T <= _FULL_PRICING_MAX_T`` the full-pricing pivots
    (:mod:`solvers.bstep.full_pricing`), polished and certified; the columns they leave
    uncertified are rescued (:func:`_nnls_rescue`) or handed over, with the whole
    support as warm start, to the working-set method (:mod:`solvers.bstep.working_set`),
    which also serves larger ``T``.
    """
    lam = 1.0
    d, T = W.shape
    scale = _grad_scale(W, p, lam)
    thr = max(min(0.5 * tol, 1e-12), 1e-14) * scale  # gradient units

    if T == 1:
        B = np.zeros((1, 1))
        return SolverResult(B, float(lam * np.sum(W * W)), 0, True, 0.0, tol, ())

    if T <= _FULL_PRICING_MAX_T:
        # ---- full-pricing Lawson-Hanson, certified by one pricing pass; if a column is
        # left uncertified (the pivots run on inv(H_PP), conditioned like W_P'W_P), the
        # method is re-run from that support and polished with QR, at most twice
        maxit = min(max_iter, _FULL_PIVOTS * (min(d, T - 1) + 10))
        total_steps, all_hist = 0, []
        start_B = B0
        for polish in ("refine", "qr", "qr"):
            # the pivots' solution, refined once, is usually certified; otherwise
            # re-run from its support and polish with QR
            sup_idx, sup_x, failed, steps, hist = _full_pricing_solve(
                W, p, lam, thr, maxit, start_B, polish=polish, record=record_history
            )
            total_steps += steps
            all_hist += hist
            res = _residuals(W, p, lam, sup_idx, sup_x, thr)
            cert = float(res.max()) / scale
            if failed.any() or cert <= 0.5 * tol:
                break
            start_B = _dense(sup_idx, sup_x, T)
        # certified entry by entry: a column far smaller than the largest can pass the
        # pivots' threshold (relative to the largest) without being solved
        rel = _entry_residuals(W, p, lam, sup_idx, sup_x)
        bad = np.flatnonzero(failed | (rel > 0.5 * tol))
        # (not when the user's max_iter is what stopped the pivots); a rescued result
        # is accepted at the certificate's own tolerance (the working-set method that
        # would otherwise take over is slow on exactly these degenerate columns)
        rescued = bool(bad.size) and bad.size <= _RESCUE_MAX_COLS and maxit < max_iter
        if rescued:
            sup_idx, sup_x = _merge_rescued(sup_idx, sup_x, bad, *_nnls_rescue(W, p, lam, bad))
            failed = np.zeros(T, dtype=bool)
            rel = _entry_residuals(W, p, lam, sup_idx, sup_x)
        cert = float(rel.max())
        if not failed.any() and cert <= (tol if rescued else 0.5 * tol):
            # n_iter: the pivots plus the certifying pricing pass
            history = [v / scale for v in all_hist] + [cert] if record_history else []
            return _assemble(W, p, lam, (sup_idx, sup_x), total_steps + 1, cert, tol, history)
        # otherwise the working-set method finishes, warm-started from this support
        B0 = _dense(sup_idx, sup_x, T)
    return _working_set_solve(W, p, B0, tol, max_iter, record_history)

