r"""The B-step with a ridge on ``B``: block principal pivoting, all columns at once.

The problem (``docs/objective.md``, "The transfer ridge"), in original units::

    min_B  lam ||W - W B||_F^2 + sum_{s,t} p_s B[s, t] + rho ||B||_F^2
    s.t.   B >= 0, diag(B) = 0,          rho > 0

Column ``t`` is the strictly convex quadratic program

    min_{b >= 0, b_t = 0}  1/2 b' H b - q_t' b,    H = 2 lam W'W + 2 rho I,
                                                    q_t = 2 lam W' w_t - p,

a linear complementarity problem with a positive definite matrix: the minimiser is
unique and depends continuously on ``W`` (without the ridge, ``W'W`` has rank at most
``d`` and the minimiser of a column is not unique once ``T - 1 > d``).

Algorithm
---------
Block principal pivoting (Judice & Pires, "A block principal pivoting algorithm for
large-scale strictly monotone linear complementarity problems", Comput. Oper. Res. 1994;
Kim & Park, "Fast nonnegative matrix factorization: an active-set-like method and
comparisons", SIAM J. Sci. Comput. 2011, Algorithm 2). For a column with passive set
``F``: solve ``H_FF x_F = q_F``, form the gradient ``y = H x - q`` off ``F``; the
infeasible coordinates ``V = {i in F: x_i < 0} u {i not in F: y_i < 0}`` change sides
all at once while ``|V|`` decreases, or three more times after it last decreased, and
otherwise only the one with the largest index (Murty's rule, finite for every
P-matrix; such rounds cost little, only the columns still pivoting are priced).
Every column of a block is solved at once: the passive systems are padded to a
common size and solved by one batched LU, the gradients are one ``W' (W X)`` product
(``O(d T)`` per column; no ``T x T`` matrix is formed). A warm start ``B0`` gives the first passive sets; from the
solution itself one round certifies.

The result is certified entry by entry (:func:`solvers.transfer.transfer_kkt_residual`
with its ``ridge``). A column not finished in ``max_iter`` rounds, or left uncertified (a passive system too
ill-conditioned for its solve: ``rho`` tiny against ``lam ||W||^2``), is solved on its
own by SciPy's NNLS on the augmented matrix ``[W; sqrt(rho / lam) I]``, which has the
same minimiser (:func:`solvers.bstep.polish._nnls_rescue`), and certified again.
"""

from __future__ import annotations

import numpy as np


__all__ = ["solve_ridge_unit"]

#: Full exchanges allowed after the number of infeasible coordinates last decreased.
_BACKUP = 3
#: Target number of float64 entries of the temporary arrays (about 32 MB).
_BLOCK_ENTRIES = 4_000_000


def _passive_solve(W: np.ndarray, rho: float, Q: np.ndarray, F: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``x`` with ``x_F = H_FF^{-1} q_F`` and zero elsewhere, for every column in ``cols``.

    ``F`` (len(cols) x T) are the passive sets, ``Q`` (T x len(cols)) the linear terms.
    Returns ``X`` (T x len(cols)); a column whose padded system is singular in floating
    point gets NaNs or infinities (the caller hands such columns over). The systems are
    solved by batched LU with partial pivoting (through the d x d matrices
    ``rho I + W_F W_F'`` by the Woodbury identity when the passive sets are larger than
    ``d``, with one step of iterative refinement). LU is backward stable, so the
    residual of a passive system, which is the KKT residual of its passive coordinates,
    is at rounding level without the refinement that explicit inverses needed; solving costs less than half of
    forming the inverses (140 systems of 28 x 28: 0.9 ms vs 2.1 ms), and B-steps along
    the tabular fit of ``examples/fit_timings.py`` took 21% less time.
    """
    n, T = F.shape
    X = np.zeros((T, n))
    k = F.sum(axis=1)
    K = int(k.max(initial=0))
    if K == 0:
        return X
    # passive indices first (stable), padded with index 0 and masked
    order = np.argsort(~F, axis=1, kind="stable")[:, :K]
    on = np.arange(K)[None, :] < k[:, None]
    Wf = np.transpose(W[:, order], (1, 0, 2)) * on[:, None, :]  # (n, d, K)
    WfT = np.transpose(Wf, (0, 2, 1))
    rhs = np.where(on, np.take_along_axis(Q.T, order, axis=1), 0.0)
    d = W.shape[0]
    with np.errstate(all="ignore"):
        if K <= d:  # the K x K systems themselves (identity on the padding)
            A = 2.0 * np.matmul(WfT, Wf)
            A[:, np.arange(K), np.arange(K)] += np.where(on, 2.0 * rho, 1.0)
            x = _solves(A, rhs)
        else:  # Woodbury: (2 Wf'Wf + 2 rho I)^-1 = (I - Wf' (rho I + Wf Wf')^-1 Wf) / (2 rho)
            M = np.matmul(Wf, WfT)
            M[:, np.arange(d), np.arange(d)] += rho

            def woodbury(r: np.ndarray) -> np.ndarray:
                u = _solves(M, np.matmul(Wf, r[:, :, None])[:, :, 0])
                return (r - np.matmul(WfT, u[:, :, None])[:, :, 0]) / (2.0 * rho)

            # Woodbury is not backward stable: one step of iterative refinement
            x = woodbury(rhs)
            Ax = 2.0 * np.matmul(WfT, np.matmul(Wf, x[:, :, None]))[:, :, 0] + 2.0 * rho * x
            x += woodbury(np.where(on, rhs - Ax, 0.0))
    x = np.where(on, x, 0.0)
    rows = np.repeat(np.arange(n), K)[on.ravel()]
    X[order.ravel()[on.ravel()], rows] = x[on]
    return X


def _solves(A: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``A[i]^{-1} r[i]`` for a stack of systems (LU with partial pivoting); NaN for the
    ones singular in floating point."""
    try:
        return np.linalg.solve(A, r[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        out = np.full_like(r, np.nan)
        for i, (Ai, ri) in enumerate(zip(A, r)):
            try:
                out[i] = np.linalg.solve(Ai, ri)
            except np.linalg.LinAlgError:
                pass
        return out


def _gradient(W: np.ndarray, p: np.ndarray, rho: float, cols: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``H x - q`` for the columns ``cols`` (``T x len(cols)``), in units ``lam = 1``."""
    return 2.0 * (W.T @ (W @ X - W[:, cols])) + 2.0 * rho * X + p[:, None]


def solve_ridge_unit(
    W: np.ndarray, p: np.ndarray, rho: float, B0: np.ndarray | None, thr: float, max_iter: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Block principal pivoting in the units ``lam = 1`` (see the module docstring).

    Parameters
    ----------
    W : numpy.ndarray
        (d, T), ``max |W| = 1``.
    p : numpy.ndarray
        (T,) prices, ``>= 0``.
    rho : float
        ``> 0``.
    B0 : numpy.ndarray or None
        Warm start: its positive off-diagonal entries are the first passive sets.
    thr : float
        A coordinate off the passive set is infeasible when its gradient is below
        ``-thr`` (rounding of the gradient: a smaller one would cycle).
    max_iter : int
        Pivoting rounds per block of columns.

    Returns
    -------
    B : numpy.ndarray
        (T, T), ``>= 0`` with a zero diagonal.
    failed : numpy.ndarray
        (T,) bool: columns not finished in ``max_iter`` rounds or with a singular system;
        their entries are not a solution.
    rounds : int
        The largest number of rounds any block took.
    """
    d, T = W.shape
    B = np.zeros((T, T))
    failed = np.zeros(T, dtype=bool)
    nb = max(1, min(T, _BLOCK_ENTRIES // max(1, T * max(d, 8))))
    rounds = 0
    for start in range(0, T, nb):
        cols = np.arange(start, min(T, start + nb))
        n = cols.size
        ar = np.arange(n)
        Q = 2.0 * (W.T @ W[:, cols]) - p[:, None]  # (T, n) linear terms q_t
        if B0 is None:
            F = np.zeros((n, T), dtype=bool)
        else:
            F = B0[:, cols].T > 0
        F[ar, cols] = False
        best = np.full(n, T + 1)
        backup = np.full(n, _BACKUP)
        live = np.ones(n, dtype=bool)
        X = np.zeros((T, n))
        it = 0
        while live.any() and it < max_iter:
            it += 1
            idx = np.flatnonzero(live)
            Xl = _passive_solve(W, rho, Q[:, idx], F[idx], cols[idx])
            bad = ~np.all(np.isfinite(Xl), axis=0)
            Xl[:, bad] = 0.0
            X[:, idx] = Xl
            Y = _gradient(W, p, rho, cols[idx], Xl).T  # (live, T)
            Fl = F[idx]
            V = np.where(Fl, Xl.T < 0.0, Y < -thr)
            V[np.arange(idx.size), cols[idx]] = False
            nv = V.sum(axis=1)
            failed[cols[idx[bad]]] = True
            done = (nv == 0) | bad
            live[idx[done]] = False
            go = ~done
            if not go.any():
                break
            gi, Vg, nvg = idx[go], V[go], nv[go]
            dec = nvg < best[gi]
            best[gi[dec]] = nvg[dec]
            backup[gi[dec]] = _BACKUP
            full = dec | (backup[gi] > 0)
            backup[gi[~dec & full]] -= 1
            Fg = F[gi]
            Fg[full] ^= Vg[full]
            single = np.flatnonzero(~full)  # Murty's rule: the largest infeasible index
            if single.size:
                Fg[single, T - 1 - np.argmax(Vg[single][:, ::-1], axis=1)] ^= True
            F[gi] = Fg
        rounds = max(rounds, it)
        failed[cols[live]] = True
        Bc = np.where(F.T, np.maximum(X, 0.0), 0.0)
        Bc[cols, ar] = 0.0
        B[:, cols] = Bc
    return B, failed, rounds
