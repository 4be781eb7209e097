"""The BLAS thread limit of the fits (:func:`blas_limit`)."""

from __future__ import annotations

import contextlib
import functools

from threadpoolctl import ThreadpoolController

__all__ = ["blas_limit"]


@functools.lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    """The thread pools loaded in this process, found once.

    Finding them scans the process's shared libraries (about 3 ms, 4% of a 12-task fit);
    threadpoolctl recommends creating the controller once and reusing it. NumPy's and
    SciPy's BLAS are loaded when :mod:`amtl_cvx` is imported, before the first fit.
    """
    return ThreadpoolController()


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
    return _controller().limit(limits=int(blas_threads), user_api="blas")
