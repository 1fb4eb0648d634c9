"""Money is integer kopecks everywhere; these convert at the edges only."""

from __future__ import annotations

KOPECKS_PER_RUB = 100


def rub_to_kopecks(rub: int) -> int:
    return rub * KOPECKS_PER_RUB


def format_rub(kopecks: int) -> str:
    """`12345` → `123.45`, `10000` → `100`."""
    sign = "-" if kopecks < 0 else ""
    rub, kop = divmod(abs(kopecks), KOPECKS_PER_RUB)
    return f"{sign}{rub}" if kop == 0 else f"{sign}{rub}.{kop:02d}"
