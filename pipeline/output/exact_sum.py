"""A float sum kept exactly, so that totals folded in any order, or merged from parts, agree to
the last bit (docs/design.md, "Run totals").

The sum is held as non-overlapping partials (Shewchuk's method): adding a float splits it into the
part that fits beside the partials and the rounding error that does not, and keeps both. `value`
is the exact sum rounded once, so it does not depend on the order of the additions.
"""
from __future__ import annotations

import math


class ExactSum:
    def __init__(self, partials: list[float] | None = None):
        self.partials: list[float] = []
        for x in partials or ():
            self.add(x)

    def add(self, x: float) -> None:
        kept = []
        x = float(x)
        for y in self.partials:
            if abs(x) < abs(y):
                x, y = y, x
            high = x + y
            low = y - (high - x)  # what rounding lost from x + y, exactly
            if low:
                kept.append(low)
            x = high
        kept.append(x)
        self.partials = kept

    def merge(self, other: ExactSum) -> None:
        for x in other.partials:
            self.add(x)

    @property
    def value(self) -> float:
        return math.fsum(self.partials)
