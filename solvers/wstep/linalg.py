"""Linear algebra of the W-step solvers: BLAS-free inner products, preconditioned CG
with the two-level (block-Jacobi, then coupling) preconditioner, Armijo backtracking."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from solvers.wstep.coupling import _block_inverse, _Coupling


def _backtrack(fg, V: np.ndarray, p: np.ndarray, f: float, slope: float, gnorm: float):
    """Armijo backtracking from ``V`` along ``p`` (at most 60 halvings); at the rounding
    level of ``f`` a step that lowers the gradient's norm below ``gnorm`` is accepted.
    Returns ``(accepted, V_new, f_new, g_new)`` (the last trial point if none was)."""
    step = 1.0
    for _ in range(60):
        Vn = V + step * p
        fn, gn = fg(Vn)
        if fn <= f + 1e-4 * step * slope:
            return True, Vn, fn, gn
        if abs(fn - f) <= 1e-13 * abs(f) and _nrm(gn) < gnorm:
            return True, Vn, fn, gn
        step *= 0.5
    return False, Vn, fn, gn



def _dot(x: np.ndarray, y: np.ndarray) -> float:
    """Inner product of two equally shaped arrays.

    Uses ``einsum`` rather than BLAS ``ddot``: a multithreaded BLAS level-1 call
    on a loaded machine can be orders of magnitude slower than this loop.
    """
    return float(np.einsum("i,i->", x.ravel(), y.ravel()))



def _nrm(x: np.ndarray) -> float:
    """Euclidean (Frobenius) norm without BLAS (see :func:`_dot`)."""
    return float(np.sqrt(_dot(x, x)))



def _bmv(G: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Batched ``G[t] @ V[t]`` for ``G`` (T, d, d) and ``V`` (T, d)."""
    return np.matmul(G, V[:, :, None])[:, :, 0]



def _pcg(
    matvec: Callable[[np.ndarray], np.ndarray],
    precond: Callable[[np.ndarray], np.ndarray],
    rhs: np.ndarray,
    x0: np.ndarray,
    r0: np.ndarray,
    abs_tol: float,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Preconditioned CG for ``A x = rhs`` from ``x0`` with residual ``r0 = rhs - A x0``.

    Stops when the recursive residual norm is ``<= abs_tol`` or after
    ``max_iter`` iterations. Returns ``(x, r, iterations)``.
    """
    x = x0.copy()
    r = r0.copy()
    if max_iter <= 0 or _nrm(r) <= abs_tol:
        return x, r, 0
    z = precond(r)
    p = z.copy()
    rz = _dot(r, z)
    it = 0
    while it < max_iter:
        Ap = matvec(p)
        pAp = _dot(p, Ap)
        if not pAp > 0 or not np.isfinite(pAp):
            break
        alpha = rz / pAp
        x += alpha * p
        r -= alpha * Ap
        it += 1
        if _nrm(r) <= abs_tol:
            break
        z = precond(r)
        rz_new = _dot(r, z)
        if not rz_new > 0:
            break
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, r, it



class _TwoLevelPCG:
    """PCG for ``H x = rhs``, ``H = blockdiag(H_t) + 2 lam (M kron I) + 2 ridge I``.

    Starts with the block-Jacobi preconditioner (per-task inverses of
    ``H_t + (2 lam M_tt + 2 ridge) I``). If that has not converged after
    ``switch_after`` iterations (a strongly coupled, ill-conditioned ``M``), it
    continues from the current iterate with the coupling preconditioner
    ``(2 lam M + diag(sig)) kron I`` (one sparse LU of a T x T matrix, applied to
    all d columns at once), where ``sig_t`` approximates ``H_t`` by a multiple of
    the identity (its mean eigenvalue plus ``2 ridge``).
    """

    switch_after = 100

    def __init__(
        self,
        matvec: Callable[[np.ndarray], np.ndarray],
        blocks: np.ndarray,
        cp: _Coupling,
        lam: float,
        ridge: float,
        sig: np.ndarray,
    ) -> None:
        self.matvec = matvec
        self.blocks = blocks
        self.cp = cp
        self.lam = lam
        self.ridge = ridge
        self.sig = sig
        self._pinv: np.ndarray | None = None
        self._lu: Any = None
        self.use_coupled = False

    def _jacobi(self, R: np.ndarray) -> np.ndarray:
        if self._pinv is None:
            d = self.blocks.shape[1]
            diag = (2.0 * self.lam * self.cp.mdiag + 2.0 * self.ridge)[:, None, None]
            self._pinv = _block_inverse(self.blocks + diag * np.eye(d))
        return _bmv(self._pinv, R)

    def _coupled(self, R: np.ndarray) -> np.ndarray:
        if self._lu is None:
            T = self.cp.T
            Bs = self.cp.B if self.cp.sparse else sp.csr_matrix(self.cp.B)
            IB = sp.identity(T, format="csr") - Bs
            K = (2.0 * self.lam) * (IB @ IB.T) + sp.diags(np.maximum(self.sig, 0.0))
            self._lu = spla.splu(sp.csc_matrix(K))
        return self._lu.solve(R)

    def solve(
        self, rhs: np.ndarray, x0: np.ndarray, r0: np.ndarray, abs_tol: float, max_iter: int
    ) -> tuple[np.ndarray, int]:
        """Return ``(x, iterations)``; stops on the recursive residual ``<= abs_tol``."""
        total = 0
        x, r = x0, r0
        if not self.use_coupled:
            budget = min(max_iter, self.switch_after)
            x, r, it = _pcg(self.matvec, self._jacobi, rhs, x, r, abs_tol, budget)
            total += it
            if _nrm(r) <= abs_tol or total >= max_iter or self.cp.zero or it < budget:
                return x, total
            self.use_coupled = True
            r = rhs - self.matvec(x)
        x, r, it = _pcg(self.matvec, self._coupled, rhs, x, r, abs_tol, max_iter - total)
        return x, total + it

