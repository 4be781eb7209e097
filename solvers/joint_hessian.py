"""The Hessian of the reduced AMTL objective ``G(W) = min_B F(W, B)`` on a fixed support
of ``B`` (squared loss), for the Newton finish of :func:`solvers.joint.solve_amtl`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from solvers.joint import _Losses

__all__: list[str] = []


def _reduced_hessian(
    Lf: _Losses, W: np.ndarray, B: np.ndarray, lam: float, mu: float, c: np.ndarray, ridge: float,
    rho: float = 0.0,
) -> np.ndarray | None:
    """Hessian of ``G(W) = min_B F(W, B)`` on the current support of ``B`` (squared loss).

    With ``x = vec(W)`` (column-major) and the free entries ``B[s, j] > 0``::

        H_G = H_WW - K' H_BB^{-1} K,
        H_WW = blockdiag(a_t X_t'X_t / n_t) + 2 lam (M M' kron I_d) + 2 ridge I,  M = I - B,
        K[(s, j), block t] = [t = s] (mu c_s grad L_s - 2 lam r_j) - 2 lam M[t, j] w_s,
        H_BB = blockdiag_j(2 lam W_Sj' W_Sj + 2 rho I)

    (``r_j = W m_j``). Returns None when a block ``W_Sj' W_Sj`` is singular (a
    degenerate support: the minimiser over ``B`` is not unique and ``G`` has no
    Hessian there).
    """
    d, T = W.shape
    factors = {}
    for j in range(T):
        S = np.flatnonzero(B[:, j] > 0)
        if S.size == 0:
            continue
        WS = W[:, S]
        try:
            Lc = np.linalg.cholesky(2.0 * lam * (WS.T @ WS) + 2.0 * rho * np.eye(S.size))
        except np.linalg.LinAlgError:
            return None
        if np.min(np.diag(Lc)) <= 1e-8 * np.max(np.diag(Lc)):
            return None
        factors[j] = (S, Lc)
    L, gL = Lf(W)
    a = 1.0 + mu * c * B.sum(axis=1)
    M = np.eye(T) - B
    R = W @ M
    H = np.kron(2.0 * lam * (M @ M.T), np.eye(d))
    for t in range(T):
        H[t * d:(t + 1) * d, t * d:(t + 1) * d] += a[t] * Lf.G[t] / Lf.n[t]
    H[np.diag_indices_from(H)] += 2.0 * ridge
    for j, (S, Lc) in factors.items():
        blocks = np.union1d(S, [j])
        K = np.zeros((S.size, blocks.size * d))
        pos = {int(t): k for k, t in enumerate(blocks)}
        for r, s_ in enumerate(S):
            k = pos[int(s_)]
            K[r, k * d:(k + 1) * d] += mu * c[s_] * gL[:, s_] - 2.0 * lam * R[:, j]
            for t in blocks:
                if M[t, j] != 0.0:
                    k = pos[int(t)]
                    K[r, k * d:(k + 1) * d] -= 2.0 * lam * M[t, j] * W[:, s_]
        Y = np.linalg.solve(Lc, K)
        cols = (blocks[:, None] * d + np.arange(d)[None, :]).ravel()
        H[np.ix_(cols, cols)] -= Y.T @ Y
    return H
