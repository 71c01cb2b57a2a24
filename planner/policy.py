"""The scaling policy this project deploys, as numbers: the construct builds it from these, the model reads them."""

from __future__ import annotations

import math

MAX_STEP_ADJUSTMENTS = 20  # Application Auto Scaling's default quota per step scaling policy


def wake_steps(*, min_tasks: int, max_tasks: int, target: float, wake_depth: int) -> list[tuple[int, int | None, int]]:
    """Wake step intervals as (lowest visible, first visible above or None, tasks), for visible >= wake_depth.

    Each interval sets the smallest listed task count whose ``count x target`` covers the visible
    backlog, so a service woken by a flash sale starts where target tracking would settle. Counts
    are every value from ``max(1, min_tasks)`` to ``max_tasks`` when that fits the step quota, else
    a geometric series between them (rounding the wake up to the next listed count).
    """
    base = max(1, min_tasks)
    if max_tasks < base:
        return [(wake_depth, None, base)]
    if max_tasks - base < MAX_STEP_ADJUSTMENTS:
        counts = list(range(base, max_tasks + 1))
    else:
        ratio = (max_tasks / base) ** (1 / (MAX_STEP_ADJUSTMENTS - 1))
        counts = sorted({round(base * ratio**i) for i in range(MAX_STEP_ADJUSTMENTS)} | {max_tasks})
    # visible v maps to count c when prev x target < v <= c x target; v is an integer message count.
    covers = [c for c in counts[:-1] if math.floor(c * target) + 1 > wake_depth] + [counts[-1]]
    lowers = [wake_depth] + [math.floor(c * target) + 1 for c in covers[:-1]]
    uppers: list[int | None] = [*lowers[1:], None]
    return list(zip(lowers, uppers, covers, strict=True))
