"""Cold start of the B-step: batched Lawson-Hanson with full pricing at every pivot.

Column ``t`` solves ``min 1/2 x'Hx - c'x, x >= 0, x_t = 0`` with ``H = 2 lam W'W`` and
``c = 2 lam W'w_t - p`` (gradient units), all columns at once (:func:`_lh_full`). The
passive sets live in compact slots (:class:`_Slots`) with ``inv(H_PP)`` maintained by
bordering and downdating; the problem's constants are a :class:`_FullProblem`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solvers.bstep.lawson_hanson import _SCHUR_REL, _swap_ratio

# Largest T for which the full-pricing method forms H = 2 lam W'W (at most 18 MB) to read
# the Gram entries of a pivot instead of gathering columns of W.
_GRAM_MAX_T = 1500
# Coordinates that may enter each column per pivot of the full-pricing method (the best
# violator, then the next best while it still violates): one pricing pass and one
# Lawson-Hanson step back serve them all. Measured at d = 20, T = 100: 22 pivots with
# one entry, 13 with two.
_PIVOT_ADDS = 2


@dataclass
class _FullProblem:
    """The constants of :func:`_lh_full`: ``W``, ``W2 = 2 lam W``, ``sq = diag(H)``,
    the prices ``p``, ``H = W'W2`` (or None for large ``T``) and the dependence
    threshold ``schur_rel``."""

    W: np.ndarray
    W2: np.ndarray
    sq: np.ndarray
    p: np.ndarray
    H: np.ndarray | None
    schur_rel: float


@dataclass
class _Slots:
    """Passive sets of a batch of columns in ``S`` slots (updated in place).

    Row ``r`` is column ``home[r]`` of ``B``. ``on[r, s]`` marks an occupied slot,
    ``pos[r, s]`` its coordinate (an empty slot points at ``home[r]``, which pricing
    masks anyway), ``xs`` / ``cs`` its value and linear term (0 on empty slots);
    ``M[r]`` holds ``inv(H_PP)`` on the occupied slots and the identity elsewhere;
    ``fail`` marks rows left to the working-set method.
    """

    M: np.ndarray
    on: np.ndarray
    pos: np.ndarray
    xs: np.ndarray
    cs: np.ndarray
    fail: np.ndarray
    home: np.ndarray

    @classmethod
    def empty(cls, T: int, S: int) -> _Slots:
        """Empty passive sets for all ``T`` columns."""
        own = np.arange(T)
        return cls(
            M=np.broadcast_to(np.eye(S), (T, S, S)).copy(),
            on=np.zeros((T, S), bool),
            pos=np.repeat(own[:, None], S, axis=1),
            xs=np.zeros((T, S)),
            cs=np.zeros((T, S)),
            fail=np.zeros(T, bool),
            home=own,
        )

    def take(self, rows: np.ndarray) -> _Slots:
        """A copy of the rows ``rows``."""
        return _Slots(self.M[rows], self.on[rows], self.pos[rows], self.xs[rows], self.cs[rows],
                      self.fail[rows], self.home[rows])

    def put(self, rows: np.ndarray, other: _Slots) -> None:
        """Write ``other`` (as returned by :meth:`take`) back into the rows ``rows``."""
        self.M[rows], self.on[rows], self.pos[rows], self.xs[rows], self.cs[rows] = (
            other.M, other.on, other.pos, other.xs, other.cs
        )
        self.fail[rows] = other.fail


def _lh_full(
    W: np.ndarray,
    p: np.ndarray,
    lam: float,
    thr: float,
    B0: np.ndarray | None = None,
    schur_rel: float = _SCHUR_REL,
    maxit: int | None = None,
    record: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, list[float], np.ndarray]:
    """Batched Lawson-Hanson over *all* coordinates, priced at every pivot.

    Column t solves ``min 1/2 x'Hx - c'x, x >= 0, x_t = 0`` with ``H = 2 lam W'W`` and
    ``c = 2 lam W'w_t - p`` (gradient units). Every pivot prices all ``T`` coordinates
    of every active column with one matrix product ``R' W``, so no working set can miss
    a coordinate and no rounds are needed. The passive sets live in ``min(d, T - 1)``
    slots (an empty slot points at the column's own index, which pricing masks anyway)
    with ``inv(H_PP)`` updated by bordering and downdating; a dependent violator enters
    along the zero-curvature direction.

    Every pivot starts from a restricted optimum ``x`` on the passive set ``P``; the
    solution on ``P + {j}`` is the rank-one step ``z = x + (v_j / s)(e_j - u)``
    (``v_j`` the violation, ``u = inv(H_PP) H_Pj``, ``s`` the Schur complement). Up to
    ``_PIVOT_ADDS`` coordinates enter per pivot, the next best violator only while it
    still violates at ``z``; only the columns where ``z`` leaves the orthant take
    Lawson-Hanson's inner loop (:func:`_settle`), which steps back from ``x``, so every
    pivot decreases the objective (a coordinate that enters at a blocked step stays at
    zero or leaves again). The columns of a pivot are processed with masks over a
    batch that is compacted once half of it has finished, so a pivot costs a fixed,
    small number of array operations.

    ``B0`` (optional) warm-starts the passive sets with its supports (a column whose
    support is too large or numerically singular starts empty).
    Returns ``(pos, xs, on, fail, pivots, hist, Minv)``; ``fail`` marks columns left to
    the working-set method, ``pivots`` counts the steps in which a coordinate entered
    and ``hist`` the largest violation priced at each of them.
    """
    d, T = W.shape
    S = max(1, min(d, T - 1))
    W2 = (2.0 * lam) * W
    sq = np.einsum("dt,dt->t", W2, W)  # H_jj
    H = W.T @ W2 if T <= _GRAM_MAX_T else None
    prob = _FullProblem(W, W2, sq, p, H, schur_rel)
    full = _Slots.empty(T, S)
    done = np.zeros(T, bool)
    if B0 is not None:
        warm = _warm_slots(W, p, lam, B0, full)
        if warm.size:
            _resolve(full, warm)
    maxit = maxit or 10 * (S + 10)
    steps = 0
    hist: list[float] = []
    batch = np.flatnonzero(~full.fail)
    n = batch.size
    b = full.take(batch)
    bdone = np.zeros(n, bool)
    Wc, ar, arc = W[:, batch], np.arange(n), np.arange(n)[:, None]
    Wp = W[:, b.pos]  # d x n x S: the columns of W in the slots
    rel_sq = schur_rel * sq
    for _ in range(maxit):
        # ---- pricing: violation c - Hx of every coordinate, passive ones and the own
        # index masked (an empty slot points at the own index)
        V = (Wc - np.einsum("dns,ns->dn", Wp, b.xs)).T @ W2
        V -= p
        V[ar, batch] = -np.inf
        V[arc, b.pos] = -np.inf
        j = np.argmax(V, axis=1)
        vmax = V[ar, j]
        ok = vmax > thr
        ok &= ~b.fail
        bdone |= ~(ok | b.fail)
        na = int(np.count_nonzero(ok))
        if na == 0:
            break
        if 2 * na <= n:  # compact the batch to the columns that go on
            full.put(batch, b)
            done[batch] = bdone
            batch, V, j, vmax = batch[ok], V[ok], j[ok], vmax[ok]
            n = batch.size
            b = full.take(batch)
            bdone = np.zeros(n, bool)
            Wc, ar, arc = W[:, batch], np.arange(n), np.arange(n)[:, None]
            Wp = W[:, b.pos]
            ok = np.ones(n, bool)
        steps += 1
        if record:
            hist.append(float(vmax[ok].max()))
        # ---- up to _PIVOT_ADDS coordinates enter: the best violator at x, then the next
        # best while it still violates at the restricted optimum z on the grown set;
        # each is bordered into a free slot if its column of W is independent, and
        # z moves by (v / s)(e_j - u) (v its violation at z, s its Schur complement)
        z = b.xs.copy()
        for k in range(_PIVOT_ADDS):
            if k:
                V[ar, j] = -np.inf
                j = np.argmax(V, axis=1)
            gj = H[j[:, None], b.pos] if H is not None else np.einsum("dns,dn->ns", Wp, W2[:, j])
            gj *= b.on
            vz = V[ar, j] - np.einsum("ns,ns->n", gj, z - b.xs) if k else vmax
            u = np.matmul(b.M, gj[:, :, None])[:, :, 0]
            schur = sq[j] - np.einsum("ni,ni->n", gj, u)
            free = np.argmin(b.on, axis=1)
            indep = schur > rel_sq[j]
            indep &= ~b.on[ar, free]
            if k == 0 and not np.all(indep[ok]):
                # a dependent best violator enters by a swap, and ends the pivot there
                bad = np.flatnonzero(ok & ~indep)
                _swap(prob, b, bad, j[bad], u[bad])
                z[bad] = b.xs[bad]
                Wp = W[:, b.pos]
            ok &= indep
            if k:
                ok &= vz > thr
            if not ok.any():
                break
            inv_s = np.divide(1.0, schur, out=np.zeros(n), where=ok)
            alpha = np.multiply(vz, inv_s, out=np.zeros(n), where=ok)  # vz is -inf off ok
            z -= alpha[:, None] * u
            z[ar, free] += alpha
            cj = H[j, batch] if H is not None else np.einsum("dn,dn->n", W2[:, j], Wc)
            cj -= p[j]
            _border_masked(b, ok, free, j, u, inv_s, cj)
            Wp[:, ar, free] = np.where(ok, W[:, j], Wp[:, ar, free])
        neg = np.any(b.on & ~(z > 0), axis=1)
        b.xs = np.where(neg[:, None], b.xs, z)
        if neg.any():
            rows = np.flatnonzero(neg)
            _settle(b, rows, z[rows])
    full.put(batch, b)
    done[batch] = bdone
    fail = full.fail
    fail |= ~(done | fail)  # pivot cap reached
    return full.pos, full.xs, full.on, fail, steps, hist, full.M


def _border_masked(
    sl: _Slots, ok: np.ndarray, slot: np.ndarray, j: np.ndarray, u: np.ndarray, inv_s: np.ndarray,
    cj: np.ndarray,
) -> None:
    """Border ``inv(H_PP)`` with coordinate ``j[k]`` in slot ``slot[k]`` where ``ok``.

    In place, masked over all rows of ``sl``; ``u = inv(H_PP) H_Pj`` (overwritten),
    ``inv_s`` the inverse Schur complement ``1 / (H_jj - H_jP u)`` (0 where not ``ok``)
    and ``cj`` the linear term of ``j``. The empty slot holds the identity, so
    ``M + v v' / s - e e'`` with ``v = u - e_slot`` is the bordered inverse. The new
    coordinate's value is left to the caller.
    """
    ar = np.arange(ok.size)
    u[ar, slot] = -1.0
    sl.M += np.einsum("ni,nj->nij", u, u * inv_s[:, None])
    sl.M[ar, slot, slot] -= ok
    sl.on[ar, slot] |= ok
    sl.pos[ar, slot] = np.where(ok, j, sl.pos[ar, slot])
    sl.cs[ar, slot] = np.where(ok, cj, sl.cs[ar, slot])


def _drop(sl: _Slots, rows: np.ndarray, slot: np.ndarray, z: np.ndarray | None = None) -> None:
    """Remove passive slot ``slot[k]`` of row ``rows[k]`` (in place).

    The rank-one downdate ``M - m m' / m_ii`` followed by resetting row and column
    ``slot`` to the identity; the slot then points back at the row's own index
    ``home[rows[k]]``. A non-positive pivot ``m_ii`` (lost accuracy) fails the row.
    With ``z`` (the restricted optimum on the old passive set, one row per ``rows``)
    it becomes the optimum on the new one, ``z - (z_i / m_ii) m`` (in place).
    """
    ar = np.arange(rows.size)
    Mr = sl.M[rows]
    mcol = Mr[ar, :, slot]
    mii = mcol[ar, slot]
    good = mii > 0
    mcol /= np.where(good, mii, 1.0)[:, None]
    if z is not None:
        z -= z[ar, slot][:, None] * mcol
        z[ar, slot] = 0.0
    mcol[ar, slot] = 0.0
    mrow = Mr[ar, slot, :]
    Mr -= np.einsum("ni,nj->nij", mcol, mrow)
    Mr[ar, slot, :] = 0.0
    Mr[ar, slot, slot] = 1.0
    sl.M[rows] = Mr
    sl.fail[rows[~good]] = True
    sl.on[rows, slot] = False
    sl.xs[rows, slot] = 0.0
    sl.cs[rows, slot] = 0.0
    sl.pos[rows, slot] = sl.home[rows]


def _settle(sl: _Slots, rows: np.ndarray, z: np.ndarray) -> None:
    """Lawson-Hanson's inner loop for ``rows`` (in place).

    ``z`` (one row per ``rows``) is the restricted optimum on the passive set, which
    leaves the orthant. Step from the feasible ``xs[rows]`` toward ``z`` up to the
    first passive coordinate that reaches zero, drop it (rank-one downdate of ``M``;
    ``z`` becomes the optimum on the smaller set, ``z - (z_i / m_ii) m``) and repeat
    while ``z`` is still infeasible; a row whose ``z`` is positive on its passive
    slots takes it. A coordinate at zero whose target is positive (one that has just
    entered) stays passive; ties leave one per round, with a zero step.
    """
    while rows.size:
        r = np.arange(rows.size)
        x = sl.xs[rows]
        neg = sl.on[rows] & ~(z > 0)
        ratio = np.divide(x, x - z, out=np.where(neg, 0.0, np.inf), where=neg & (x > z))
        i = np.argmin(ratio, axis=1)
        x += ratio[r, i][:, None] * (z - x)
        np.maximum(x, 0.0, out=x)
        sl.xs[rows] = x
        _drop(sl, rows, i, z)
        good = ~sl.fail[rows]
        again = np.any(sl.on[rows] & ~(z > 0), axis=1)
        sl.xs[rows[good & ~again]] = z[good & ~again]
        again &= good
        rows, z = rows[again], z[again]


def _resolve(sl: _Slots, rows: np.ndarray) -> None:
    """Solve on the passive sets of ``rows`` from their feasible ``xs`` (in place)."""
    z = np.matmul(sl.M[rows], sl.cs[rows][:, :, None])[:, :, 0]
    neg = np.any(sl.on[rows] & ~(z > 0), axis=1)
    sl.xs[rows[~neg]] = z[~neg]
    _settle(sl, rows[neg], z[neg])


def _swap(prob: _FullProblem, sl: _Slots, rows: np.ndarray, j: np.ndarray, u: np.ndarray) -> None:
    """Bring the dependent violators ``j`` into ``rows`` along ``e_j - u`` (in place).

    ``u = inv(H_PP) H_Pj`` spans ``j``'s column of ``W``, so the objective is linear
    along ``e_j - u`` with slope ``-v_j < 0``: step until a passive coordinate reaches
    zero (:func:`_swap_ratio`), drop it, border ``j`` into its slot and settle.
    """
    W, W2, sq = prob.W, prob.W2, prob.sq
    xb, onb = sl.xs[rows], sl.on[rows]
    i, s, can = _swap_ratio(xb, u, onb)
    sl.fail[rows[~can]] = True
    rows, j, u, xb, i, s, onb = rows[can], j[can], u[can], xb[can], i[can], s[can], onb[can]
    if not rows.size:
        return
    xb = np.where(onb, np.maximum(xb - s[:, None] * u, 0.0), 0.0)
    xb[np.arange(rows.size), i] = 0.0
    sl.xs[rows] = xb
    _drop(sl, rows, i)
    gj = np.einsum("dns,dn->ns", W[:, sl.pos[rows]], W2[:, j]) * sl.on[rows]
    u2 = np.einsum("nij,nj->ni", sl.M[rows], gj)
    sch = sq[j] - np.einsum("ni,ni->n", gj, u2)
    ok = (sch > prob.schur_rel * sq[j]) & ~sl.fail[rows]
    sl.fail[rows[~ok]] = True
    rows, j, i, s, u2, sch = rows[ok], j[ok], i[ok], s[ok], u2[ok], sch[ok]
    if not rows.size:
        return
    # border on a copy of the rows, written back
    sub = sl.take(rows)
    cj = np.einsum("dn,dn->n", W2[:, j], W[:, sub.home]) - prob.p[j]
    _border_masked(sub, np.ones(rows.size, bool), i, j, u2, 1.0 / sch, cj)
    sl.put(rows, sub)
    sl.xs[rows, i] = s
    _resolve(sl, rows)


def _warm_slots(W: np.ndarray, p: np.ndarray, lam: float, B0: np.ndarray, sl: _Slots) -> np.ndarray:
    """Fill the passive slots of ``sl`` (all ``T`` columns) from the supports of ``B0``
    (in place), where usable.

    Returns the rows filled; their values are ``B0``'s (feasible, not yet optimal).
    """
    S = sl.on.shape[1]
    P0 = B0 > 0
    np.fill_diagonal(P0, False)
    cnt = P0.sum(axis=0)
    cand = np.flatnonzero((cnt > 0) & (cnt <= S))
    none = np.zeros(0, dtype=np.intp)
    if not cand.size:
        return none
    Pc = P0[:, cand].T  # (nc, T)
    order = np.argsort(~Pc, axis=1, kind="stable")[:, :S]
    on0 = np.take_along_axis(Pc, order, axis=1)
    Wp = np.transpose(W[:, order], (1, 2, 0)) * on0[:, :, None]  # nc x S x d
    H = (2.0 * lam) * np.matmul(Wp, np.transpose(Wp, (0, 2, 1)))
    H[:, np.arange(S), np.arange(S)] += ~on0
    try:
        Mi = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return none
    # a numerically singular support shows in diag(H inv(H)) != 1 (a full check of
    # H inv(H) = I costs a batched matrix product); the pivots re-check every column
    err = np.abs(np.einsum("nij,nji->ni", H, Mi) - 1.0).max(axis=1)
    good = np.isfinite(err) & (err < 1e-8)
    cg = cand[good]
    if not cg.size:
        return none
    og, o0 = order[good], on0[good]
    sl.M[cg] = Mi[good]
    sl.on[cg] = o0
    sl.pos[cg] = np.where(o0, og, cg[:, None])
    sl.xs[cg] = np.where(o0, B0[og, cg[:, None]], 0.0)
    sl.cs[cg] = np.where(o0, (2.0 * lam) * np.einsum("nsd,dn->ns", Wp[good], W[:, cg]) - p[og], 0.0)
    return cg
