"""Periodic-table cell positions from Z, f-block drawn as two rows under the main table."""

from __future__ import annotations

F_BLOCK_ROW = {6: 9, 7: 10}  # period → drawing row of its lanthanide/actinide strip
_PERIOD_STARTS = (1, 3, 11, 19, 37, 55, 87, 119)


def period_of(z: int) -> int:
    return next(p for p, start in enumerate(_PERIOD_STARTS[1:], start=1) if z < start)


def cell(z: int) -> tuple[int, int]:
    """(column 1..18, drawing row) of atomic number ``z``; La..Yb and Ac..No go to rows 9/10."""
    period = period_of(z)
    offset = z - _PERIOD_STARTS[period - 1]  # 0-based position within the period
    if period == 1:
        return (1 if z == 1 else 18), 1
    if period in (2, 3):
        return (offset + 1 if offset < 2 else offset + 11), period
    if period in (4, 5):
        return offset + 1, period
    if offset < 2:
        return offset + 1, period
    if offset < 16:  # the 14 f-block elements after the s-block pair
        return offset + 1, F_BLOCK_ROW[period]
    return offset - 13, period
