"""The two GO-MTL steps (:class:`GOMTLSteps`): the codes (S-step) and the basis (L-step)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import scipy.linalg as sla
from scipy.special import entr

from solvers.baselines._shared import _check_start, _EPS, _newton, _result
from solvers.baselines.gomtl_basis import _LogisticBasis
from solvers.baselines.gomtl_rows import _logistic_terms, _TaskRows
from solvers.baselines.lasso import _lasso_qp
from solvers.losses import _check_array, _check_scalar, _check_solver_options
from solvers.result import SolverResult


__all__ = ["GOMTLSteps", "solve_gomtl_codes", "solve_gomtl_basis", "gomtl_balance"]


#: The S-step accepts a trial point that does not resolve an Armijo decrease (its objective
#: can lie above the current one by at most ``gap * P``) only when its certified relative gap
#: is below the current one *and* below this: a rounding-level regime. (Without the second
#: condition, a far proximal Newton step with a gap of 0.85 was accepted with the objective
#: 2.5 times higher, and the task then stalled there.)
_CODES_GAP_ACCEPT = 1e-8


def gomtl_balance(L: np.ndarray, S: np.ndarray, mu: float, lam: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The GO-MTL penalty's best rescaling of the latent tasks: ``(L diag(c), diag(c)^{-1} S,
    drop)`` with ``c_i`` minimising ``lam c_i^2 ||L_i||^2 + mu ||S_i||_1 / c_i``, that is
    ``c_i^3 = mu ||S_i||_1 / (2 lam ||L_i||^2)`` (``c_i = 1`` where column ``i`` of ``L`` or row
    ``i`` of ``S`` is 0). ``W = L S``, hence the loss, does not change (up to rounding); the
    penalty ``mu ||S||_1 + lam ||L||_F^2`` falls by ``drop >= 0``."""
    a, b = np.sum(L * L, axis=0), np.sum(np.abs(S), axis=1)
    on = (a > 0) & (b > 0)
    c = np.ones(L.shape[1])
    c[on] = np.cbrt(mu * b[on] / (2.0 * lam * a[on]))
    drop = float(np.sum(lam * a + mu * b) - np.sum(lam * c * c * a + mu * b / c))
    return L * c, S / c[:, None], max(drop, 0.0)


class GOMTLSteps(_TaskRows, _LogisticBasis):
    r"""The two GO-MTL steps on one data set (validated and prepared once).

    ``codes(L, mu)`` solves ``min_S sum_t L_t(L s_t) + mu ||S||_1`` and ``basis(S, lam)``
    solves ``min_L sum_t L_t(L s_t) + lam ||L||_F^2``; :func:`solve_gomtl_codes` and
    :func:`solve_gomtl_basis` are these on freshly prepared data, and
    :func:`amtl_cvx.baselines.multitask.fit_gomtl` alternates them on one instance.

    **Data.** For the squared loss, every task with more than ``d + 1`` rows is first
    replaced by ``d + 1`` rows with the same losses, gradients and duality gaps (its thin QR
    factor and the norm of the targets' part outside the span, :func:`_compress_rows`): on
    ``make_tabular_tasks(random_state=0)`` the rows fall from 8,248 to 3,642 (4,060 padded:
    every task then fits the padded layout below), and the default GO-MTL grid's time
    roughly halves (docs/baselines.md). The tasks' rows are stacked once; when padding every task with zero rows of
    weight 0 to the largest size at most doubles the rows (always for equal sizes), they
    are held as one (T, n, d) array and every per-task product (the scores ``X_t w_t``, the
    sums ``X_t' v_t``, the Grams ``X_t' diag(v) X_t``) is one batched call.

    **Codes** (``S``, k x T). The T problems are independent l1-regularised problems in
    the k columns of ``M_t = X_t L`` (k, the number of latent tasks, is small). Each is
    solved by proximal Newton: the loss is replaced by its quadratic model at ``s_t``
    (Hessian ``G_t = M_t' diag(D_t) M_t / n_t``; for the squared loss the model is exact
    and ``G_t = M_t'M_t / n_t`` is formed once), the model's lasso is solved exactly by an
    active-set method (:func:`_lasso_qp`, warm-started from the support and signs of
    ``s_t``), and the step is taken with an Armijo search on the true objective. For the
    squared loss the first step is the exact minimiser up to rounding, and the next ones
    (linear terms recomputed from residuals of the data, not from ``G_t``) are iterative
    refinement. The **certificate** is the largest per-task relative duality gap
    ``max_t (P_t - D_t) / P_t``: with ``theta_t = -grad ell_t`` at the scores, scaled by
    ``min(1, mu / ||M_t' theta_t||_inf)``, ``D_t`` is the dual bound of the module
    docstring for that task, so the certificate bounds the relative suboptimality of
    *every* task's problem, whatever the scale of its data, of ``L`` or of ``mu``
    (``P_t = 0``, only at ``y_t = 0``, counts as 0). ``n_iter`` counts proximal Newton
    steps.

    **Basis** (``L``, d x k). With ``X_t L s_t = (s_t' kron X_t) vec(L)`` the Hessian is
    ``H = sum_t (s_t s_t') kron H_t + 2 lam I`` (dk x dk, ``H_t = X_t' diag(D) X_t / n_t``),
    and ``H V = sum_t X_t' diag(D) X_t (V s_t) s_t' / n_t + 2 lam V`` costs two passes over
    the data, without ``H``. Squared loss: ``H`` is assembled from the Grams
    ``X_t'X_t / n_t`` (computed once) and factorised once per call; a direct solve with
    refinement. Logistic loss: Newton's method with an Armijo search, its systems solved
    (inexactly, to about the current relative decrement) by preconditioned conjugate
    gradients (:func:`_pcg`) with the inverse of an earlier exact Hessian, kept by the
    instance from call to call (the alternation changes ``S`` and ``L`` little). The
    preconditioner is renewed (the Grams ``X_t' diag(D) X_t`` at the current point, the
    assembly of ``H`` and its inverse) when conjugate gradients stall on it, and, after the
    first Newton step of a call, when the products the calls since its last renewal needed
    beyond the fewest needed since add up to the cost of a renewal. The **certificate** is
    the relative Newton decrement of the module docstring, bounded from above:
    ``g'H^{-1}g`` by the bound of :func:`_pcg` at ``L`` (a fresh product ``H p``), its value
    at 0 (Hessian ``sum_t (s_t s_t') kron X_t'X_t / (4 n_t) + 2 lam I``, products from the
    Grams, conjugate gradients started from the previous call's solution) from below, so a
    certificate below ``tol`` certifies the exact relative decrement. ``n_iter`` counts
    Newton steps.
    """

    def _codes_eval(self, Z: np.ndarray, S: np.ndarray, mu: float, tasks: np.ndarray | None = None):
        """At codes ``S`` (T x k, one row per task), for the tasks ``tasks`` (default all):
        their primal values ``P``, relative duality gaps, ``corr = M_t' theta_t`` (minus the
        loss gradient, one row per task) and the logistic curvature per row (``None`` for the
        squared loss; a vector over all rows, set on the rows of ``tasks``). With the tasks
        padded to one size only the rows of ``tasks`` are read."""
        T, k = self.n_tasks, Z.shape[1]
        if self._X3 is not None:
            n = Z.shape[0] // T
            Z3, y, w, St = Z.reshape(T, n, k), self._y.reshape(T, n), self._w.reshape(T, n), S
            if tasks is not None:
                Z3, y, w, St = Z3[tasks], y[tasks], w[tasks], S[tasks]
            z = np.matmul(Z3, St[:, :, None])[:, :, 0]
        else:
            y, w, St = self._y, self._w, S
            z = self._scores(Z, S)

        def per_task(v):
            return v.sum(axis=1) if self._X3 is not None else self._per_task(v)

        if self.loss == "squared":
            r = y - z
            rw = r * w
            loss = 0.5 * per_task(r * rw)
            ry = per_task(y * rw)
            theta, D = rw, None
        else:
            m = y * z
            softplus, p, pc, l1 = _logistic_terms(m)
            loss = per_task(softplus * w)
            theta, D = y * p * w, p * pc
        corr = np.matmul(theta[:, None, :], Z3)[:, 0, :] if self._X3 is not None else self._sums(theta, Z)
        P = loss + mu * np.abs(St).sum(axis=1)
        amax = np.abs(corr).max(axis=1)
        a = np.minimum(1.0, mu / np.where(amax > 0, amax, np.inf))
        a[amax == 0] = 1.0
        if self.loss == "squared":
            dual = a * ry - a * a * loss
        else:  # the binary entropy of a p (a = 1: from the margins, without logarithms)
            ent = l1 + p * np.maximum(m, 0.0) + pc * np.maximum(-m, 0.0)
            ar = a[:, None] * np.ones_like(p) if self._X3 is not None else a[self._task]
            scaled = ar < 1.0
            if scaled.any():
                q = ar[scaled] * p[scaled]
                ent[scaled] = entr(q) + entr(1.0 - q)
            dual = per_task(ent * w)
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.where(P > 0, np.maximum(P - dual, 0.0) / P, 0.0)
        if self._X3 is not None:  # only the rows of ``tasks`` were read: P, gap, corr are theirs
            if D is not None:
                D_all = np.zeros((T, Z.shape[0] // T))
                D_all[slice(None) if tasks is None else tasks] = D
                D = D_all.reshape(-1)
        elif tasks is not None:
            P, gap, corr = P[tasks], gap[tasks], corr[tasks]
        return P, gap, corr, D

    # ------------------------------------------------------------ steps
    def codes(self, L: Any, mu: float, *, S0: Any = None, tol: float = 1e-10, max_iter: int = 100) -> SolverResult:
        """The S-step from ``S0`` (k x T, default zeros). ``solution`` is ``S`` (k, T),
        ``objective`` ``sum_t L_t(L s_t) + mu ||S||_1``, ``certificate`` the largest
        per-task relative duality gap (class docstring); ``max_iter`` caps the proximal
        Newton steps."""
        L = _check_array(L, "L", ndim=2)
        if L.shape[0] != self.n_features:
            raise ValueError(f"L must have {self.n_features} rows, got shape {L.shape}")
        mu = _check_scalar(mu, "mu", strict=True)
        tol, max_iter = _check_solver_options(tol, max_iter)
        k = L.shape[1]
        S = _check_start(S0, (k, self.n_tasks), "S0").T.copy()  # one row per task
        Z = self._X @ L
        squared = self.loss == "squared"
        if squared:  # the model is exact: the first step needs neither a value nor a search
            T = self.n_tasks
            P, gap, corr, D = np.full(T, np.inf), np.full(T, np.inf), None, None
            G = self._grams(Z, self._w)
            lin = self._sums(self._y * self._w, Z)  # M_t' y_t / n_t
        else:
            P, gap, corr, D = self._codes_eval(Z, S, mu)
        live = np.ones(self.n_tasks, dtype=bool)  # tasks still improving
        it = 0
        while it < max_iter:
            todo = np.nonzero(live & (gap > tol))[0]
            if todo.size == 0:
                break
            if not squared:  # the model Hessians of the tasks still to do
                Gt = self._grams(Z, D * self._w, todo)
            else:
                Gt = G[todo]
            st = S[todo]
            # the gradient of the loss at s: -corr, from the data's residuals (for the squared
            # loss the next steps are then iterative refinement); the first squared step
            # takes it from the model, G s - M'y/n
            g0 = np.einsum("tij,tj->ti", Gt, st) - lin[todo] if corr is None else -corr[todo]
            target = _lasso_qp(Gt, g0, mu, st)
            step = target - st
            # the model's decrease (<= 0): linear term plus the change of the l1 term
            pred = mu * (np.abs(target).sum(axis=1) - np.abs(st).sum(axis=1)) + np.einsum("ti,ti->t", g0, step)
            Po, go = P[todo], gap[todo]
            slack = 64 * _EPS * np.where(np.isfinite(Po), np.abs(Po), 0.0)  # Po = inf: the first squared step
            alpha = np.ones(todo.size)
            pending = np.ones(todo.size, dtype=bool)
            progress = np.zeros(todo.size, dtype=bool)
            while True:  # Armijo search (squared loss: the exact model's step, alpha = 1 only)
                idx = np.nonzero(pending)[0]  # positions in todo
                tasks = todo[idx]
                trial = S.copy()
                trial[tasks] = st[idx] + alpha[idx, None] * step[idx]
                Pn, gn, cn, Dn = self._codes_eval(Z, trial, mu, tasks)
                # a decrease that F resolves (Armijo), or, at rounding level, a smaller certified
                # gap: since P* <= Po, a point with relative gap gn can lie above Po by at most
                # gn Pn, and at these levels the rounding of P (large terms of X_t L s_t
                # cancelling) can exceed eps P
                accept = (Pn <= Po[idx] + 1e-4 * alpha[idx] * pred[idx]) | (
                    (gn < go[idx]) & (gn <= _CODES_GAP_ACCEPT) & (Pn <= Po[idx] + gn * np.abs(Pn) + slack[idx])
                )
                if accept.any():
                    rows = tasks[accept]
                    if corr is None:
                        corr = np.zeros_like(S)
                    S[rows], P[rows], gap[rows], corr[rows] = trial[rows], Pn[accept], gn[accept], cn[accept]
                    if D is not None:
                        on = np.zeros(self.n_tasks, dtype=bool)
                        on[rows] = True
                        on = on[self._task]
                        D[on] = Dn[on]
                    # progress: F lower beyond rounding, or the gap at least halved
                    a_idx = idx[accept]
                    progress[a_idx] = (Pn[accept] < Po[a_idx] - slack[a_idx]) | (gn[accept] <= 0.5 * go[a_idx])
                    pending[a_idx] = False
                alpha[pending] *= 0.5
                if squared or not pending.any() or alpha.max() < 1e-12:
                    break
            # a task whose step no longer makes progress is at the limit of floating point
            live[todo[~progress]] = False
            it += 1
        if not np.all(np.isfinite(gap)):  # max_iter = 0 with the squared loss: not evaluated
            P, gap = self._codes_eval(Z, S, mu)[:2]
        return _result(S.T.copy(), float(P.sum()), it, float(gap.max()), tol, None)

    def basis(self, S: Any, lam: float, *, L0: Any = None, tol: float = 1e-10, max_iter: int = 100) -> SolverResult:
        """The L-step from ``L0`` (d x k, default zeros). ``solution`` is ``L`` (d, k),
        ``objective`` ``sum_t L_t(L s_t) + lam ||L||_F^2``, ``certificate`` the relative
        Newton decrement (squared loss) or an upper bound of it (logistic loss, class
        docstring); ``max_iter`` caps the Newton steps."""
        S = _check_array(S, "S", ndim=2)
        T, d = self.n_tasks, self.n_features
        if S.shape[1] != T:
            raise ValueError(f"S must have {T} columns, got shape {S.shape}")
        k = S.shape[0]
        lam = _check_scalar(lam, "lam", strict=True)
        tol, max_iter = _check_solver_options(tol, max_iter)
        L = _check_start(L0, (d, k), "L0")
        S = np.ascontiguousarray(S, dtype=np.float64)
        St = S.T.copy()  # (T, k)
        X, y, w, lam2 = self._X, self._y, self._w, 2.0 * lam
        SS = np.einsum("it,jt->tij", S, S).reshape(T, k * k)

        def value_grad(V: np.ndarray):
            """``(F(V), grad F(V), per-row curvature / n_t)`` (curvature ``None``: squared)."""
            z = self._scores(X, (V @ S).T)  # row i of task t: x_i' V s_t
            f = lam * float(np.sum(V * V))
            if self.loss == "squared":
                gz = (z - y) * w
                f += 0.5 * float((z - y) @ gz)
                Dw = None
            else:
                softplus, p, pc, _ = _logistic_terms(y * z)
                f += float(softplus @ w)
                gz = -y * p * w
                Dw = p * pc * w
            return f, self._sums(gz, X).T @ St + lam2 * V, Dw

        def assemble(Ht: np.ndarray) -> np.ndarray:
            """``sum_t (s_t s_t') kron H_t + 2 lam I`` from (T, d, d); row ``a + d i``: ``L[a, i]``."""
            H = (SS.T @ Ht.reshape(T, d * d)).reshape(k, k, d, d).transpose(0, 2, 1, 3).reshape(k * d, k * d)
            H[np.diag_indices(k * d)] += lam2
            return H

        def factorize(H: np.ndarray) -> np.ndarray:
            # LAPACK directly: H is finite by construction, and scipy's checks of every
            # solve cost more than the solve at these sizes
            C, info = sla.lapack.dpotrf(H, lower=False, clean=False)
            if info != 0:
                raise np.linalg.LinAlgError(f"the L-step Hessian is not positive definite (dpotrf info {info})")
            return C

        def solver(C: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            def solve(G: np.ndarray) -> np.ndarray:
                x, info = sla.lapack.dpotrs(C, G.reshape(-1, order="F"), lower=False)
                return x.reshape((d, k), order="F")

            return solve

        if self.loss == "squared":  # a constant Hessian, assembled from the Grams: one factorisation
            Hsolve = solver(factorize(assemble(self._data_grams())))
            last: list = [None, 0.0]  # the last point evaluated and its value

            def value_grad_hess(V: np.ndarray):
                f, G, _ = value_grad(V)
                last[:] = [V, f]
                return f, G, lambda: None

            L, n_iter, cert = _newton(value_grad_hess, lambda _: Hsolve, L, tol, max_iter, None, quadratic=True)
            return _result(L, last[1] if last[0] is L else value_grad(L)[0], n_iter, cert, tol, None)

        def inverse(H: np.ndarray) -> np.ndarray:  # the preconditioner of the logistic L-step
            Ci, info = sla.lapack.dpotri(factorize(H), lower=False)
            if info != 0:
                raise np.linalg.LinAlgError(f"the L-step Hessian is singular (dpotri info {info})")
            return np.triu(Ci) + np.triu(Ci, 1).T

        L, f, n_iter, cert = self._basis_newton(value_grad, assemble, inverse, S, lam, L, tol, max_iter)
        return _result(L, f, n_iter, cert, tol, None)


def solve_gomtl_codes(Xs: Sequence[Any], ys: Sequence[Any], L: Any, mu: float, *, loss: str = "squared",
                      S0: Any = None, tol: float = 1e-10, max_iter: int = 100) -> SolverResult:
    """GO-MTL S-step: ``min_S sum_t L_t(L s_t) + mu ||S||_1`` (``L`` d x k fixed).

    T independent l1-regularised problems in the designs ``X_t L``, each solved by
    proximal Newton with an exact active-set solve of every model (squared loss: one
    exact solve plus refinement), see :class:`GOMTLSteps`. ``solution`` is ``S`` (k, T);
    ``certificate`` the largest per-task relative duality gap; ``max_iter`` caps the
    proximal Newton steps.
    """
    return GOMTLSteps(Xs, ys, loss).codes(L, mu, S0=S0, tol=tol, max_iter=max_iter)


def solve_gomtl_basis(Xs: Sequence[Any], ys: Sequence[Any], S: Any, lam: float, *, loss: str = "squared",
                      L0: Any = None, tol: float = 1e-10, max_iter: int = 100) -> SolverResult:
    """GO-MTL L-step: ``min_L sum_t L_t(L s_t) + lam ||L||_F^2`` (``S`` k x T fixed).

    With ``X_t L s_t = (s_t' kron X_t) vec(L)`` the Hessian is
    ``sum_t (s_t s_t') kron H_t + 2 lam I`` (dk x dk, formed densely): a direct solve
    with refinement (squared) or Newton (logistic), see :class:`GOMTLSteps`.
    ``solution`` is ``L`` (d, k); ``certificate`` the relative Newton decrement.
    """
    return GOMTLSteps(Xs, ys, loss).basis(S, lam, L0=L0, tol=tol, max_iter=max_iter)
