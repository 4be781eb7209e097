"""argparse types shared by the command-line modules (comma-separated lists)."""

from __future__ import annotations

import argparse

import numpy as np

__all__ = ["floats", "ints", "int_at_least", "ridge_value"]


def floats(text: str) -> list[float]:
    """``"0.1,1,10"`` -> ``[0.1, 1.0, 10.0]``: nonnegative finite numbers."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc
    if not values or any(not np.isfinite(v) or v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected nonnegative finite numbers, got {text!r}")
    return values


def ints(text: str) -> list[int]:
    """``"10,50"`` -> ``[10, 50]``: positive integers."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def int_at_least(low: int):
    """An argparse type: one integer ``>= low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from exc
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    return parse


def ridge_value(text: str) -> float | str:
    """``"auto"`` or one nonnegative finite number."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a nonnegative number, got {text!r}") from exc
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a nonnegative number, got {text!r}")
    return value
