"""The BLAS thread limit of the fits (:func:`blas_limit`)."""

from __future__ import annotations

import contextlib

from threadpoolctl import threadpool_limits

__all__ = ["blas_limit"]


def blas_limit(blas_threads: int | None):
    """Context capping the BLAS threads at ``blas_threads`` (``None``: leave as is).

    The fits make many small products (d x d blocks, T x d panels); with several BLAS
    threads on a machine whose cores are busy each one waits for the others, and runs
    measured 4x to 160x slower than with one thread. One thread is the default of every
    fit; pass ``blas_threads=None`` (or a larger number) to use what BLAS is configured
    with, for example for very large dense W-step factorisations on an idle machine.
    """
    if blas_threads is None:
        return contextlib.nullcontext()
    if isinstance(blas_threads, bool) or int(blas_threads) != blas_threads or blas_threads < 1:
        raise ValueError(f"blas_threads must be a positive integer or None, got {blas_threads!r}")
    return threadpool_limits(limits=int(blas_threads), user_api="blas")
