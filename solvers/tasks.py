"""Fast solver of the AMTL W-step (``B`` fixed), numpy and scipy only.

The problem (``docs/objective.md``, section "W-step")::

    min_W  sum_t a_t * L_t(w_t) + lam * ||W (I - B)||_F^2 + ridge * ||W||_F^2

``W`` is d x T with column ``w_t``; ``L_t`` is the mean squared or logistic loss
of task t. Internally the columns are stored as the rows of ``V = W'`` (T x d)
so that every product with the (usually sparse) ``B`` is a sparse-times-dense
product: ``(W (I - B))' = V - B' V`` and ``(W M)' = M V`` with
``M = (I - B)(I - B)'``.

Algorithms
----------
squared
    The optimality condition is the linear system
    ``(blockdiag(a_t/n_t X_t'X_t) + 2 lam (M kron I_d) + 2 ridge I) vec(W) =
    vec(a_t/n_t X_t'y_t)``. For ``d * T <= DENSE_MAX`` it is solved by a dense
    Cholesky factorisation; otherwise by preconditioned conjugate gradients with
    matrix-free products and a block-Jacobi preconditioner (per-task inverses of
    ``a_t/n_t X_t'X_t + (2 lam M_tt + 2 ridge) I``); if that stalls (strong,
    ill-conditioned coupling) PCG continues with a coupling preconditioner
    ``(2 lam M + diag(sig_t)) kron I_d`` factorised once by a sparse LU of a
    T x T matrix (see :class:`_TwoLevelPCG`). Neither preconditioner is reliable when
    ``I - B`` is nearly singular and the tasks' Gram matrices share a null space (one-hot
    groups collinear with a bias column): the system's condition number then reaches
    1e10 and PCG stalls. So for ``d * T <= DIRECT_MAX`` PCG gets
    :data:`PCG_BUDGET` iterations and the system is then solved directly (dense
    Cholesky with iterative refinement, see :func:`_direct`). If the system is
    singular (``ridge = 0``, ``I - B`` singular and a direction no task's data sees),
    the **minimum-norm minimiser** is returned. Only the per-task Gram matrices
    ``X_t'X_t`` are used; see :func:`precompute_grams` to cache them.
logistic
    Newton's method with inexact (forcing-term) PCG inner solves on the exact
    Hessian ``blockdiag(a_t/n_t X_t' D_t X_t) + 2 lam (M kron I_d) + 2 ridge I``
    (same preconditioners; a Newton direction PCG cannot reach within its budget is
    computed by the dense Cholesky solve when ``d * T <= DIRECT_MAX``) and an Armijo
    backtracking line search.

Certificate
-----------
Both stop on the relative gradient norm::

    ||grad F(W)||_F / ||grad F(0)||_F <= tol

(``grad F(0)`` does not depend on the starting point, so a warm start at the
solution is accepted with zero iterations; when it is 0, ``W = 0`` is the minimiser
and the denominator is taken as 1). The ratio does not change when the targets, or
the features, are scaled by any power of ten: with ``max(1, ||grad F(0)||)`` in the
denominator, targets of size 1e-100 were "solved" by ``W = 0`` with certificate
6e-100. ``n_iter`` counts PCG iterations
(squared; a dense solve counts as one) or Newton iterations (logistic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.linalg import lapack
from scipy.special import expit

from solvers.losses import (
    Loss,
    _check_array,
    _check_scalar,
    _check_solver_options,
    _check_tasks,
    _check_transfer,
    get_loss,
)
from solvers.result import SolverResult

__all__ = [
    "TaskGrams",
    "precompute_grams",
    "solve_tasks",
    "tasks_objective",
    "tasks_gradient",
    "DENSE_MAX",
    "DIRECT_MAX",
    "PCG_BUDGET",
]

#: Largest ``d * T`` for which the squared W-step starts with a dense Cholesky solve.
DENSE_MAX = 300

#: Largest ``d * T`` for which a W-step falls back to a dense Cholesky solve when
#: PCG does not reach its tolerance within :data:`PCG_BUDGET` iterations
#: (``H`` then takes ``8 (d T)^2`` bytes: 288 MB at ``d T = 6000``).
DIRECT_MAX = 6000

#: PCG iterations tried before the dense fallback (when ``d * T <= DIRECT_MAX``).
PCG_BUDGET = 300

_MAX_REFINE = 30

_SPARSE_DENSITY = 0.1  # dense B with fewer nonzeros than this fraction goes sparse


# ----------------------------------------------------------------------------
# Structure: the coupling M = (I - B)(I - B)' and per-task Gram matrices
# ----------------------------------------------------------------------------


class _Coupling:
    """Products with ``I - B``, ``(I - B)'`` and ``M = (I - B)(I - B)'`` on T x d arrays."""

    def __init__(self, B: np.ndarray | sp.csr_matrix) -> None:
        T = B.shape[0]
        self.T = T
        if not sp.issparse(B) and T > 20 and np.count_nonzero(B) < _SPARSE_DENSITY * T * T:
            B = sp.csr_matrix(B)
        if sp.issparse(B):
            self.B = B.tocsr()
            self.Bt = B.T.tocsr()
            self.sparse = True
            self.zero = self.B.nnz == 0
            sq = self.B.multiply(self.B).sum(axis=1)
            self.mdiag = 1.0 + np.asarray(sq).ravel()
        else:
            self.B = np.asarray(B)
            self.Bt = np.ascontiguousarray(self.B.T)
            self.sparse = False
            self.zero = not np.any(self.B)
            self.mdiag = 1.0 + np.einsum("ij,ij->i", self.B, self.B)

    def ibt(self, V: np.ndarray) -> np.ndarray:
        """Return ``(I - B)' V`` (the rows of ``(W (I - B))'``)."""
        if self.zero:
            return V.copy()
        return V - self.Bt @ V

    def ib(self, U: np.ndarray) -> np.ndarray:
        """Return ``(I - B) U``."""
        if self.zero:
            return U.copy()
        return U - self.B @ U

    def m(self, V: np.ndarray) -> np.ndarray:
        """Return ``M V`` with ``M = (I - B)(I - B)'`` (the rows of ``(W M)'``)."""
        if self.zero:
            return V
        return self.ib(self.ibt(V))

    def dense_m(self) -> np.ndarray:
        """Return ``M`` as a dense T x T array."""
        IB = np.eye(self.T) - (self.B.toarray() if self.sparse else self.B)
        return IB @ IB.T


@dataclass(frozen=True)
class TaskGrams:
    """Cached per-task sufficient statistics of the squared loss.

    Attributes
    ----------
    gram : numpy.ndarray
        ``(T, d, d)``, ``gram[t] = X_t' X_t``.
    xty : numpy.ndarray
        ``(T, d)``, ``xty[t] = X_t' y_t``.
    n : numpy.ndarray
        ``(T,)`` row counts ``n_t``.
    """

    gram: np.ndarray
    xty: np.ndarray
    n: np.ndarray


def _grams(Xs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> TaskGrams:
    T, d = len(Xs), Xs[0].shape[1]
    G = np.empty((T, d, d))
    c = np.empty((T, d))
    for t in range(T):
        G[t] = Xs[t].T @ Xs[t]
        c[t] = Xs[t].T @ ys[t]
    n = np.array([X.shape[0] for X in Xs], dtype=np.float64)
    return TaskGrams(gram=G, xty=c, n=n)


def precompute_grams(Xs: Sequence[Any], ys: Sequence[Any]) -> TaskGrams:
    """Compute the per-task Gram matrices ``X_t'X_t`` and ``X_t'y_t`` once.

    Pass the result as ``grams=`` to :func:`solve_tasks` (squared loss) to skip
    this ``O(sum_t n_t d^2)`` step in repeated W-steps on the same data.

    Parameters
    ----------
    Xs : sequence of numpy.ndarray
        T designs, ``Xs[t]`` of shape ``(n_t, d)``.
    ys : sequence of numpy.ndarray
        T targets, ``ys[t]`` of shape ``(n_t,)``.

    Returns
    -------
    TaskGrams
    """
    Xl, yl = _check_tasks(Xs, ys, get_loss("squared"))
    return _grams(Xl, yl)


def _block_inverse(P: np.ndarray) -> np.ndarray:
    """Inverses of the symmetric positive definite blocks ``P[t]`` (T, d, d)."""
    T, d, _ = P.shape
    if d <= 32:
        try:
            return np.linalg.inv(P)
        except np.linalg.LinAlgError:
            pass
    out = np.empty_like(P)
    for t in range(T):
        c, info = lapack.dpotrf(P[t], lower=1)
        if info == 0:
            inv, info = lapack.dpotri(c, lower=1)
        if info != 0:
            out[t] = np.linalg.pinv(P[t], hermitian=True)
            continue
        low = np.tril(inv)
        out[t] = low + np.tril(low, -1).T
    return out


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


# ----------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------


def _prepare(
    Xs: Sequence[Any],
    ys: Sequence[Any],
    B: Any,
    lam: Any,
    loss: str | Loss,
    weights: Any,
    ridge: Any,
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | sp.csr_matrix, float, Loss, np.ndarray, float]:
    lossf = get_loss(loss)
    Xl, yl = _check_tasks(Xs, ys, lossf)
    T = len(Xl)
    Bv = _check_transfer(B, T, "B")
    lam_f = _check_scalar(lam, "lam", strict=True)
    ridge_f = _check_scalar(ridge, "ridge", strict=False)
    if weights is None:
        a = np.ones(T)
    else:
        a = _check_array(weights, "weights", ndim=1)
        if a.shape != (T,):
            raise ValueError(f"weights must have shape ({T},), got {a.shape}")
        if np.any(a < 0):
            raise ValueError("weights must be nonnegative")
    return Xl, yl, Bv, lam_f, lossf, a, ridge_f


def _check_W(W: Any, d: int, T: int, name: str) -> np.ndarray:
    Wa = _check_array(W, name, ndim=2)
    if Wa.shape != (d, T):
        raise ValueError(f"{name} must have shape ({d}, {T}), got {Wa.shape}")
    return Wa


# ----------------------------------------------------------------------------
# Objective and gradient
# ----------------------------------------------------------------------------


def _loss_values_grads(
    Xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], V: np.ndarray, lossf: Loss
) -> tuple[np.ndarray, np.ndarray]:
    T = len(Xs)
    vals = np.empty(T)
    grads = np.empty_like(V)
    for t in range(T):
        vals[t], grads[t] = lossf.value_and_gradient(Xs[t], ys[t], V[t])
    return vals, grads


def _objective_v(
    Xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    V: np.ndarray,
    cp: _Coupling,
    lam: float,
    lossf: Loss,
    a: np.ndarray,
    ridge: float,
) -> float:
    vals = np.array([lossf.value(Xs[t], ys[t], V[t]) for t in range(len(Xs))])
    U = cp.ibt(V)
    return float(a @ vals + lam * _dot(U, U) + ridge * _dot(V, V))


def tasks_objective(
    Xs: Sequence[Any],
    ys: Sequence[Any],
    W: Any,
    B: Any,
    lam: float,
    *,
    loss: str = "squared",
    weights: Any = None,
    ridge: float = 0.0,
) -> float:
    """Evaluate the W-step objective.

    ::

        F(W) = sum_t a_t * L_t(w_t) + lam * ||W (I - B)||_F^2 + ridge * ||W||_F^2

    Parameters
    ----------
    Xs, ys : sequence of numpy.ndarray
        T tasks, ``Xs[t]`` (n_t, d), ``ys[t]`` (n_t,).
    W : numpy.ndarray
        (d, T), column ``w_t``.
    B : numpy.ndarray or scipy.sparse matrix
        (T, T) transfer matrix, ``B >= 0`` with zero diagonal.
    lam : float
        Coupling weight, ``lam > 0``.
    loss : {"squared", "logistic"}
        Mean per-task loss ``L_t``.
    weights : numpy.ndarray, optional
        (T,) loss weights ``a_t >= 0``; ``None`` means all ones.
    ridge : float
        ``ridge >= 0``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On invalid input (the message names the argument).
    """
    Xl, yl, Bv, lam_f, lossf, a, ridge_f = _prepare(Xs, ys, B, lam, loss, weights, ridge)
    Wa = _check_W(W, Xl[0].shape[1], len(Xl), "W")
    return _objective_v(Xl, yl, Wa.T, _Coupling(Bv), lam_f, lossf, a, ridge_f)


def tasks_gradient(
    Xs: Sequence[Any],
    ys: Sequence[Any],
    W: Any,
    B: Any,
    lam: float,
    *,
    loss: str = "squared",
    weights: Any = None,
    ridge: float = 0.0,
) -> np.ndarray:
    """Gradient of the W-step objective (see :func:`tasks_objective`).

    Column t is ``a_t * grad L_t(w_t) + 2 lam [W (I-B)(I-B)']_t + 2 ridge w_t``.

    Returns
    -------
    numpy.ndarray
        (d, T).
    """
    Xl, yl, Bv, lam_f, lossf, a, ridge_f = _prepare(Xs, ys, B, lam, loss, weights, ridge)
    Wa = _check_W(W, Xl[0].shape[1], len(Xl), "W")
    V = Wa.T
    _, gl = _loss_values_grads(Xl, yl, V, lossf)
    g = a[:, None] * gl + 2.0 * lam_f * _Coupling(Bv).m(V) + 2.0 * ridge_f * V
    return np.ascontiguousarray(g.T)


# ----------------------------------------------------------------------------
# Solver
# ----------------------------------------------------------------------------


def solve_tasks(
    Xs: Sequence[Any],
    ys: Sequence[Any],
    B: Any,
    lam: float,
    *,
    loss: str = "squared",
    weights: Any = None,
    ridge: float = 0.0,
    W0: Any = None,
    tol: float = 1e-10,
    max_iter: int = 1000,
    record_history: bool = False,
    grams: TaskGrams | None = None,
) -> SolverResult:
    """Solve the W-step of AMTL with ``B`` fixed.

    ::

        min_W  sum_t a_t * L_t(w_t) + lam * ||W (I - B)||_F^2 + ridge * ||W||_F^2

    with ``L_t(w) = 1/(2 n_t) ||y_t - X_t w||^2`` (squared) or
    ``L_t(w) = mean(log(1 + exp(-y_t * X_t w)))`` (logistic, labels in {-1, +1}).

    Parameters
    ----------
    Xs, ys : sequence of numpy.ndarray
        T tasks, ``Xs[t]`` (n_t, d) with ``n_t >= 1``, ``ys[t]`` (n_t,).
    B : numpy.ndarray or scipy.sparse matrix
        (T, T), ``B >= 0`` with zero diagonal; sparse input is used as is and a
        mostly-zero dense input is converted to CSR.
    lam : float
        ``lam > 0``.
    loss : {"squared", "logistic"}
        Per-task mean loss.
    weights : numpy.ndarray, optional
        (T,) loss weights ``a_t >= 0`` (``None``: all ones).
    ridge : float
        ``ridge >= 0``. With ``ridge = 0`` and separable data the logistic
        problem may have no minimiser; ``max_iter`` then stops the run with
        ``converged=False``.
    W0 : numpy.ndarray, optional
        (d, T) warm start (default zeros).
    tol : float
        Tolerance on the certificate ``||grad F(W)||_F / ||grad F(0)||_F``.
    max_iter : int
        Squared: maximum PCG iterations (a dense Cholesky solve counts as one).
        Logistic: maximum Newton iterations.
    record_history : bool
        Record the certificate after every iteration.
    grams : TaskGrams, optional
        Precomputed Gram matrices from :func:`precompute_grams` (squared loss only;
        must come from the same ``Xs``, ``ys``).

    Returns
    -------
    SolverResult
        ``solution`` is ``W`` (d, T); ``objective`` is ``F(W)`` above;
        ``certificate`` the relative gradient norm at exit.

    Raises
    ------
    ValueError
        On invalid input (the message names the argument).
    """
    Xl, yl, Bv, lam_f, lossf, a, ridge_f = _prepare(Xs, ys, B, lam, loss, weights, ridge)
    tol_f, max_it = _check_solver_options(tol, max_iter)
    T, d = len(Xl), Xl[0].shape[1]
    V = np.zeros((T, d)) if W0 is None else _check_W(W0, d, T, "W0").T.copy()
    cp = _Coupling(Bv)
    if lossf.name == "squared":
        grams, unit, sigma = _unit_grams(grams, Xl, yl)
        V, n_iter, cert, hist = _solve_squared(unit, V / sigma, cp, lam_f, a, ridge_f, tol_f, max_it, record_history)
        V = V * sigma
    elif lossf.name == "logistic":
        V, n_iter, cert, hist = _solve_logistic(Xl, yl, V, cp, lam_f, a, ridge_f, tol_f, max_it, record_history)
    else:  # pragma: no cover - only the two named losses are dispatched
        raise ValueError(f"loss {lossf.name!r} is not supported by solve_tasks")
    return _result(Xl, yl, V, cp, lam_f, lossf, a, ridge_f, n_iter, cert, tol_f, hist)


def _unit_grams(grams: TaskGrams | None, Xl, yl) -> tuple[TaskGrams, TaskGrams, float]:
    """The squared W-step's Gram matrices (checked, or computed), the same in units where
    ``max |y| = 1``, and that unit ``sigma``. The step is homogeneous in the targets
    (``W / sigma``, the objective ``/ sigma^2``, the same certificate), so targets of
    1e-160 or 1e154 neither underflow nor overflow on the way."""
    T, d = len(Xl), Xl[0].shape[1]
    if grams is None:
        grams = _grams(Xl, yl)
    elif not isinstance(grams, TaskGrams) or grams.gram.shape != (T, d, d):
        raise ValueError(f"grams must be a TaskGrams for {T} tasks with {d} features")
    sigma = max(float(np.max(np.abs(y))) for y in yl)
    if sigma in (0.0, 1.0):
        sigma = 1.0
    return grams, TaskGrams(gram=grams.gram, xty=grams.xty / sigma, n=grams.n), sigma


def _result(Xl, yl, V, cp, lam_f, lossf, a, ridge_f, n_iter, cert, tol_f, hist) -> SolverResult:
    """The W-step's :class:`SolverResult` at ``V`` (T x d); an objective that overflows
    float64 at a finite ``V`` is a ``ValueError``."""
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below
        obj = _objective_v(Xl, yl, V, cp, lam_f, lossf, a, ridge_f)
    if not np.isfinite(obj) and np.all(np.isfinite(V)):
        raise ValueError(
            "the W-step objective overflows float64 (targets or lam near 1e154 and beyond); "
            "rescale the data or lam"
        )
    return SolverResult(
        solution=np.ascontiguousarray(V.T),
        objective=obj,
        n_iter=n_iter,
        converged=bool(cert <= tol_f),
        certificate=float(cert),
        tol=tol_f,
        history=tuple(hist),
    )


def _direct(
    blocks: np.ndarray,
    cp: _Coupling,
    lam: float,
    ridge: float,
    rhs: np.ndarray,
    matvec: Callable[[np.ndarray], np.ndarray],
    ref: float,
    tol: float,
    V: np.ndarray,
    resid: np.ndarray,
    cert: float,
    hist: list[float] | None,
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Dense direct solve of the squared W-step's normal equations ``H vec(V) = rhs``.

    ``H = 2 lam kron(M, I_d) + blockdiag(blocks) + 2 ridge I`` (task-major; the
    blocks are ``s_t G_t`` for the squared loss, the loss Hessians for the logistic), written
    into its (T, d, T, d) view and factorised by Cholesky. The solution is improved by
    iterative refinement on the true residual (at most ``_MAX_REFINE`` steps) until the
    certificate reaches ``tol``.

    If ``H`` is singular (``ridge = 0``, a direction no task's data sees on which the
    coupling vanishes: ``I - B`` singular), Cholesky fails or leaves a pivot at
    rounding level (``<= n eps max diag H``); then ``H + delta I``
    (``delta = 1e-10 max diag H``) is factorised and refinement is run from zero
    (iterated Tikhonov regularisation). The normal equations of a squared loss are
    consistent, each correction lies in the range of ``H`` and the iteration starts at
    zero, so it converges to the **minimum-norm minimiser**.

    Returns ``(V, resid, cert, solves)``; a solve that does not lower the certificate
    is not kept.
    """
    T, d = V.shape
    H4 = np.zeros((T, d, T, d))
    H4[:, np.arange(d), :, np.arange(d)] = (2.0 * lam) * cp.dense_m()
    ar = np.arange(T)
    H4[ar, :, ar, :] += blocks
    H = H4.reshape(T * d, T * d)
    H[np.diag_indices_from(H)] += 2.0 * ridge
    hmax = max(float(np.max(np.diag(H))), np.finfo(float).tiny)
    try:
        fac = sla.cho_factor(H, lower=False, check_finite=False)
        # rank-revealing test: a pivot at rounding level means H is singular (rounding
        # may let Cholesky finish anyway, with an arbitrary null-space component)
        if np.min(np.diag(fac[0])) ** 2 <= H.shape[0] * np.finfo(float).eps * hmax:
            raise np.linalg.LinAlgError("singular")
        x, r, c = V, resid, cert
    except (np.linalg.LinAlgError, sla.LinAlgError):
        H[np.diag_indices_from(H)] += 1e-10 * hmax  # cho_factor left H intact
        try:
            fac = sla.cho_factor(H, lower=False, check_finite=False)
        except (np.linalg.LinAlgError, sla.LinAlgError):
            return V, resid, cert, 0
        x, r = np.zeros_like(V), rhs.copy()
        c = _nrm(r) / ref
    solves = 0
    for _ in range(_MAX_REFINE):
        xn = x + sla.cho_solve(fac, r.ravel(), check_finite=False).reshape(T, d)
        rn = rhs - matvec(xn)
        cn = _nrm(rn) / ref
        solves += 1
        if not np.isfinite(cn) or cn >= c and solves > 1:
            break
        x, r, c = xn, rn, cn
        if hist is not None:
            hist.append(c)
        if c <= 0.5 * tol:
            break
    if c < cert:
        return x, r, c, solves
    return V, resid, cert, solves


def _solve_squared(
    gr: TaskGrams,
    V: np.ndarray,
    cp: _Coupling,
    lam: float,
    a: np.ndarray,
    ridge: float,
    tol: float,
    max_iter: int,
    record: bool,
) -> tuple[np.ndarray, int, float, list[float]]:
    T, d = V.shape
    s = a / gr.n
    G = gr.gram
    rhs = s[:, None] * gr.xty
    ref = _nrm(rhs) or 1.0

    def matvec(P: np.ndarray) -> np.ndarray:
        return s[:, None] * _bmv(G, P) + 2.0 * lam * cp.m(P) + (2.0 * ridge) * P

    hist: list[float] = []
    resid = rhs - matvec(V)  # = -gradient
    cert = _nrm(resid) / ref
    n_iter = 0
    if cert <= tol or max_iter == 0:
        return V, n_iter, cert, hist

    blocks = s[:, None, None] * G
    hist_or_none = hist if record else None
    dense_ok = d * T <= DIRECT_MAX
    if d * T <= DENSE_MAX:
        V, resid, cert, it = _direct(blocks, cp, lam, ridge, rhs, matvec, ref, tol, V, resid, cert, hist_or_none)
        n_iter += it
        if cert <= tol:
            return V, n_iter, cert, hist

    sig = s * np.trace(G, axis1=1, axis2=2) / d + 2.0 * ridge
    solver = _TwoLevelPCG(matvec, blocks, cp, lam, ridge, sig)
    # PCG with restarts on the true residual (the recursive one drifts); where a direct
    # solve is affordable, PCG gets a budget of PCG_BUDGET iterations before it.
    budget = min(max_iter, PCG_BUDGET) if dense_ok else max_iter
    stall = 0
    while cert > tol and n_iter < budget:
        Vn, it = solver.solve(rhs, V, resid, 0.5 * tol * ref, budget - n_iter)
        n_iter += it
        rn = rhs - matvec(Vn)
        cn = _nrm(rn) / ref
        if record:
            hist.append(cn)
        if cn < cert:
            improved = cn < 0.5 * cert
            V, resid, cert = Vn, rn, cn
            stall = 0 if improved else stall + 1
        else:
            stall += 1
        if it == 0 or stall >= 3:
            break
    if cert > tol and dense_ok and d * T > DENSE_MAX and n_iter < max_iter:
        V, resid, cert, it = _direct(blocks, cp, lam, ridge, rhs, matvec, ref, tol, V, resid, cert, hist_or_none)
        n_iter += it
    return V, n_iter, cert, hist


def _solve_logistic(
    Xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    V: np.ndarray,
    cp: _Coupling,
    lam: float,
    a: np.ndarray,
    ridge: float,
    tol: float,
    max_iter: int,
    record: bool,
) -> tuple[np.ndarray, int, float, list[float]]:
    T, d = V.shape
    n = np.array([X.shape[0] for X in Xs], dtype=np.float64)
    s = a / n
    # grad F(0) = -a_t/(2 n_t) X_t' y_t
    g0 = np.stack([Xs[t].T @ ys[t] for t in range(T)]) * (-0.5 * s[:, None])
    ref = _nrm(g0) or 1.0

    def fg(Vc: np.ndarray, need_grad: bool = True) -> tuple[float, np.ndarray | None]:
        val = 0.0
        gl = np.empty_like(Vc) if need_grad else None
        for t in range(T):
            m = ys[t] * (Xs[t] @ Vc[t])
            val += a[t] * float(np.sum(np.logaddexp(0.0, -m))) / n[t]
            if need_grad:
                gl[t] = -(Xs[t].T @ (ys[t] * expit(-m))) * s[t]
        U = cp.ibt(Vc)
        val += lam * _dot(U, U) + ridge * _dot(Vc, Vc)
        if not need_grad:
            return val, None
        g = gl + 2.0 * lam * cp.ib(U) + (2.0 * ridge) * Vc
        return val, g

    f, g = fg(V)
    gnorm = _nrm(g)
    cert = gnorm / ref
    hist: list[float] = []
    n_iter = 0
    cg_cap = max(50, min(d * T, 2000))
    while cert > tol and n_iter < max_iter:
        Hb = np.empty((T, d, d))
        for t in range(T):
            m = ys[t] * (Xs[t] @ V[t])
            D = expit(m) * expit(-m)
            Hb[t] = (Xs[t].T @ (D[:, None] * Xs[t])) * s[t]
        def matvec(P: np.ndarray, Hb: np.ndarray = Hb) -> np.ndarray:
            return _bmv(Hb, P) + 2.0 * lam * cp.m(P) + (2.0 * ridge) * P

        sig = np.trace(Hb, axis1=1, axis2=2) / d + 2.0 * ridge
        solver = _TwoLevelPCG(matvec, Hb, cp, lam, ridge, sig)
        eta = min(0.5, np.sqrt(cert))
        p, _ = solver.solve(-g, np.zeros_like(V), -g, eta * gnorm, cg_cap)
        if d * T <= DIRECT_MAX:
            rp = -g - matvec(p)
            miss = _nrm(rp)
            if miss > eta * gnorm:  # PCG missed its forcing term: Newton direction by Cholesky
                p = _direct(Hb, cp, lam, ridge, -g, matvec, gnorm, eta, p, rp, miss / gnorm, None)[0]
        slope = _dot(g, p)
        if not slope < 0:  # not a descent direction (numerical trouble): use -g
            p = -g
            slope = -gnorm * gnorm
        accepted, Vn, fn, gn = _backtrack(fg, V, p, f, slope, gnorm)
        n_iter += 1
        if not accepted:
            if record:
                hist.append(cert)
            break
        V, f, g = Vn, fn, gn
        gnorm = _nrm(g)
        cert = gnorm / ref
        if record:
            hist.append(cert)
    return V, n_iter, cert, hist
