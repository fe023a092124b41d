"""How the benchmarks write a number: milliseconds and ratios."""

from __future__ import annotations


def ms(value: float) -> str:
    """Milliseconds, readable: 1 decimal below 100."""
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def ratio(a: float, b: float) -> float:
    """a / b, guarding against an empty denominator."""
    return a / b if b > 0 else float("inf")
