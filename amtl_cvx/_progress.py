"""An optional progress bar: tqdm when installed and asked for, otherwise nothing."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass


@contextmanager
def progress_bar(enabled: bool, total: int | None, desc: str) -> Iterator[object]:
    """Yield a tqdm bar when ``enabled`` (and tqdm is installed), else a silent stand-in."""
    if not enabled:
        yield _NoBar()
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is an optional extra
        yield _NoBar()
        return
    bar = tqdm(total=total, desc=desc, leave=False)
    try:
        yield bar
    finally:
        bar.close()
