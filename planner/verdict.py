""" "Choose X when": the answer read off the figures, one line per criterion, never written by hand.

Each line names the variant that wins a criterion (drain, order wait, time to full capacity, cost at a
volume), by how much against the runner-up, and where the cheapest variant changes with volume.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from planner.model import duration_text

TIE_S, TIE_SHARE, TIE_USD = 1.0, 0.05, 0.01  # closer than this is a tie, not a choice


def _best(figures: Mapping[str, Mapping[str, Any]], key: str) -> tuple[str, float, str | None, float | None] | None:
    """(winner, its value, runner-up, its value) on ``key`` (lower is better; None = not reached, last)."""
    ranked = sorted(
        ((v, f[key]) for v, f in figures.items() if f.get(key) is not None), key=lambda item: float(item[1])
    )
    if not ranked:
        return None
    winner, value = ranked[0]
    second = ranked[1] if len(ranked) > 1 else (None, None)
    return winner, float(value), second[0], None if second[1] is None else float(second[1])


def verdict(figures: Mapping[str, Mapping[str, Any]], cost_by_volume: Mapping[str, Mapping[int, float]]) -> list[str]:
    """``figures``: variant -> the planner's sale figures (``drain_seconds``, ``wait_p99_seconds``,
    ``full_capacity_seconds``); ``cost_by_volume``: variant -> {orders a month: USD}."""
    lines: list[str] = []
    for key, what in (
        ("drain_seconds", "the shortest drain after the sale"),
        ("wait_p99_seconds", "the shortest order wait (p99)"),
        ("full_capacity_seconds", "the fastest to full worker capacity"),
    ):
        best = _best(figures, key)
        if best is None:
            continue
        winner, value, second, second_value = best
        capacity = figures[winner].get("capacity_per_s")
        paying = f" (pays up to {capacity:.1f}/s)" if capacity is not None else ""
        if second is None or second_value is None:
            lines.append(f"choose {winner} for {what}: {duration_text(value)}{paying}")
        elif second_value - value <= max(TIE_S, TIE_SHARE * value):
            lines.append(
                f"{winner} and {second} tie for {what}: {duration_text(value)} and {duration_text(second_value)}"
            )
        else:
            lines.append(
                f"choose {winner} for {what}: {duration_text(value)}{paying}, against {second} "
                f"{duration_text(second_value)}"
            )
    volumes = sorted({n for costs in cost_by_volume.values() for n in costs})
    cheapest = [min(cost_by_volume, key=lambda v: cost_by_volume[v][n]) for n in volumes]
    start = 0
    for i in range(1, len(volumes) + 1):
        if i == len(volumes) or cheapest[i] != cheapest[start]:
            v = cheapest[start]
            span = f"{volumes[start]:,}" if i - 1 == start else f"{volumes[start]:,}-{volumes[i - 1]:,}"
            n = volumes[start]
            others = sorted((cost_by_volume[o][n], o) for o in cost_by_volume if o != v)
            if others and others[0][0] - cost_by_volume[v][n] < TIE_USD:
                lines.append(f"{v} and {others[0][1]} tie for the lowest cost at {span} orders a month")
            elif others:
                saved = others[0][0] - cost_by_volume[v][n]
                lines.append(
                    f"choose {v} for the lowest cost at {span} orders a month "
                    f"(at {n:,}: ${saved:,.2f} a month under {others[0][1]})"
                )
            else:
                lines.append(f"choose {v} for the lowest cost at {span} orders a month")
            start = i
    return lines
