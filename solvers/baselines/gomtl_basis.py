"""The logistic GO-MTL basis step: Newton with preconditioned conjugate gradients (:func:`_pcg`),
its preconditioner kept from call to call."""

from __future__ import annotations

from typing import Callable

import numpy as np

from solvers.baselines._shared import _armijo


def _pcg(
    apply: Callable[[np.ndarray], np.ndarray],
    g: np.ndarray,
    psolve: Callable[[np.ndarray], np.ndarray],
    lam2: float,
    *,
    target: float | None,
    rtol: float,
    budget: int,
    x0: np.ndarray | None = None,
) -> tuple[np.ndarray, float, float, str]:
    r"""Preconditioned conjugate gradients on ``H p = g`` from ``p = x0`` (default 0; ``H``
    symmetric with ``H >= lam2 I``, ``lam2 > 0``; ``apply(V) = H V``, ``psolve(R) ~ H^{-1} R``).

    Returns ``(p, lb, ub, status)`` with bounds ``lb <= g'H^{-1}g <= ub`` (in exact
    arithmetic) evaluated at the returned ``p`` with a fresh product ``H p``: for any ``p``,
    with ``r = g - H p``, ``g'H^{-1}g = (2 g'p - p'Hp) + r'H^{-1}r`` and
    ``0 <= r'H^{-1}r <= ||r||^2 / lam2``. ``status``: ``"certified"`` (the recurrences
    reached ``ub <= target``; the caller checks the returned ``ub``), ``"solved"`` (the
    preconditioned residual norm fell to ``rtol`` of its start), ``"zero"`` (``g = 0``),
    ``"slow"`` (the observed rate predicts more than ``budget`` iterations), ``"budget"`` or
    ``"breakdown"``. With a ``target`` (a Newton system) and ``x0 = None``, a ``"solved"``
    exit skips the fresh product and returns the bounds of the recurrences (``g'p = p'Hp``
    and the recurrence residual): it is used for a step only, never as a certificate.
    """
    if x0 is None:
        p, r = np.zeros_like(g), g.copy()
        z = psolve(r)
        rz0 = rz = float(np.vdot(r, z))  # rtol is relative to the residual of p = 0
        if not rz > 0:
            return p, 0.0, float(np.vdot(g, g)) / lam2, "zero"
    else:
        p, r = x0.copy(), g - apply(x0)
        z = psolve(r)
        rz, rz0 = float(np.vdot(r, z)), float(np.vdot(g, psolve(g)))
        if not rz0 > 0:
            return np.zeros_like(g), 0.0, 0.0, "zero"
    direction = z
    status, it = ("budget", 0) if rz > rtol * rtol * rz0 else ("solved", budget)
    while it < budget:
        Hd = apply(direction)
        dHd = float(np.vdot(direction, Hd))
        if not dHd > 0:
            status = "breakdown"
            break
        alpha = rz / dHd
        p = p + alpha * direction
        r = r - alpha * Hd
        it += 1
        if target is not None and float(np.vdot(g, p)) + float(np.vdot(r, r)) / lam2 <= target:
            status = "certified"
            break
        z = psolve(r)
        rz_new = float(np.vdot(r, z))
        if rz_new <= rtol * rtol * rz0:
            status = "solved"
            break
        if it >= 3:  # the residual's rate so far: iterations it predicts to reach rtol
            rate = 0.5 * np.log(rz_new / rz0) / it
            if not rate < 0 or np.log(rtol) / rate > budget:
                status = "slow"
                break
        direction = z + (rz_new / rz) * direction
        rz = rz_new
    if status == "solved" and target is not None and x0 is None:
        # a Newton step, not a certificate (the recurrences did not reach the target): the
        # bounds from the recurrences (g'p = p'Hp, and r), without a fresh product
        lb = float(np.vdot(g, p))
        return p, max(lb, 0.0), max(lb, 0.0) + float(np.vdot(r, r)) / lam2, status
    Hp = apply(p)
    r = g - Hp
    lb = 2.0 * float(np.vdot(g, p)) - float(np.vdot(p, Hp))
    ub = lb + float(np.vdot(r, r)) / lam2
    return p, max(lb, 0.0), max(ub, 0.0), status


class _LogisticBasis:
    """The logistic L-step of :class:`solvers.baselines.gomtl.GOMTLSteps` (its docstring,
    **Basis**), on the rows of :class:`solvers.baselines.gomtl_rows._TaskRows`."""

    def _basis_newton(self, value_grad, assemble, inverse, S, lam, L, tol, max_iter):
        """The logistic L-step: Newton with preconditioned conjugate gradients (class
        docstring). Returns ``(L, F(L), Newton steps, certificate)``."""
        T, d, k = self.n_tasks, self.n_features, S.shape[0]
        lam2, R = 2.0 * lam, self._X.shape[0]
        St = S.T.copy()
        grams = self._data_grams()
        # costs in multiply-adds of a matrix product: a pass over the data or over the
        # preconditioner is memory-bound (~4 per entry read); a new preconditioner is the
        # Grams X_t' diag(D) X_t, the assembly of H (T k^2 d^2 entries) and its inverse
        cg_cost = 8.0 * R * d + 4.0 * (d * k) ** 2  # one CG iteration: a product and a solve
        inverse_cost = 4.0 * T * k * k * d * d + (d * k) ** 3
        refresh_cost = R * d * d + inverse_cost
        budget0 = int(np.clip(inverse_cost / (8.0 * T * d * d + 4.0 * (d * k) ** 2), 2, 100))
        budget = int(np.clip(refresh_cost / cg_cost, 2, 100))
        state = self._pc_state if self._pc_state[:2] == (k, lam) else (k, lam, None, 0.0)
        refreshed, n_cg = False, 0

        def solver(Minv: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            return lambda G: (Minv @ G.reshape(-1, order="F")).reshape((d, k), order="F")

        def hess0(V: np.ndarray) -> np.ndarray:  # the Hessian at L = 0: D = 1/4 on every row
            return 0.25 * np.einsum("tab,tb->ta", grams, St @ V.T).T @ St + lam2 * V

        def solve_system(name, apply, g, exact, target, rtol, budget_, x0=None):
            """PCG with the kept preconditioner; on a stall, the inverse of the exact Hessian
            (assembled from the per-task matrices ``exact()``), kept."""
            nonlocal refreshed
            kept = self._factors.get(name)
            if kept is not None and kept[:2] == (k, lam):
                p, lb, ub, status = _pcg(apply, g, solver(kept[2]), lam2, target=target, rtol=rtol, budget=budget_, x0=x0)
                if status in ("solved", "zero") or (target is not None and ub <= target):
                    return p, lb, ub
            Minv = inverse(assemble(exact()))
            self._factors[name] = (k, lam, Minv)
            refreshed |= name == "H"
            return _pcg(apply, g, solver(Minv), lam2, target=target, rtol=rtol, budget=8)[:3]

        # the reference g'H^{-1}g at L = 0 (from below): the gradient there is -sum_t X_t'y_t s_t' / (2 n_t);
        # PCG started from the last reference solution (S changes little from call to call), to a
        # residual 1e-4 of the start: the lower bound is then within ~1e-8 of the value (it only
        # makes the certificate that much more conservative)
        if self._Xy is None:
            self._Xy = self._sums(self._y * self._w, self._X)
        g0 = -0.5 * self._Xy.T @ St
        last = self._factors.get("p0")
        x0 = last[2] if last is not None and last[:2] == (k, lam) else None
        p0, dec0, _ = solve_system("H0", hess0, g0, lambda: 0.25 * grams, None, 1e-4, budget0, x0)
        self._factors["p0"] = (k, lam, p0)
        ref = np.sqrt(dec0) if dec0 > 0 else 1.0
        target = (tol * ref) ** 2
        f, g, Dw = value_grad(L)
        it, rtol = 0, 1e-2
        while True:

            def apply(V: np.ndarray, Dw: np.ndarray = Dw) -> np.ndarray:
                nonlocal n_cg
                n_cg += 1
                return self._sums(Dw * self._scores(self._X, (V @ S).T), self._X).T @ St + lam2 * V

            p, dec, ub = solve_system("H", apply, g, lambda: self._grams(self._X, Dw), target, rtol, budget)
            cert = np.sqrt(ub) / ref
            # inexact Newton: the next system solved to about the relative decrement here
            rtol = float(np.clip(cert, 1e-6, 1e-2))
            if cert <= tol or it >= max_iter or not dec > 0:
                break
            step = _armijo(value_grad, L, p, dec, f, g)
            it += 1
            if step is None:
                break
            L, f, g, Dw = step
            if it == 1 and not refreshed and state[3] >= refresh_cost:
                # the kept preconditioner has aged: the CG iterations it cost beyond those right
                # after its last renewal add up to a renewal; renew it here, after the first
                # step (the later, more accurate systems gain most)
                self._factors["H"] = (k, lam, inverse(assemble(self._grams(self._X, Dw))))
                refreshed = True
        # CG products of a call right after a renewal set the base (lowered by any call that
        # needs fewer); the other calls add their excess over it
        if refreshed or state[2] is None:
            self._pc_state = (k, lam, n_cg, 0.0)
        else:
            self._pc_state = (k, lam, min(state[2], n_cg), state[3] + max(n_cg - state[2], 0) * cg_cost)
        return L, f, it, float(cert)
