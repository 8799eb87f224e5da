"""The overview's chart: matches per bank and day as server-rendered SVG bars (no script, no library).

Only geometry is computed here; the template draws it, with a table of the same numbers beside it for screen
readers and for anyone who wants the figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT = 720, 220
LEFT, BOTTOM, TOP = 40, 28, 10
SERIES = 6  # colours in the stylesheet (.series-0 .. .series-5); more banks reuse them


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int
    label: str  # for the bar's <title>: "bank, day: n matches"


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (x, day label) under every few bars
    grid: list[tuple[float, int]]  # (y, value) for horizontal lines
    legend: list[tuple[str, int]]  # (bank, series)
    peak: int


def rows(days: list[str], activity: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str, dict[str, Any]]]:
    """The chart's numbers as table rows (day, bank, counts), days in order, only where something matched."""
    return [(day, bank, activity[bank][n]) for n, day in enumerate(days) for bank in sorted(activity)
            if activity[bank][n]["matches"]]


def bars(days: list[str], activity: dict[str, list[dict[str, Any]]]) -> Chart:
    """Stacked bars of matches per day, one colour per bank."""
    banks = sorted(activity)
    totals = [sum(activity[bank][n]["matches"] for bank in banks) for n in range(len(days))]
    peak = max([*totals, 1])
    plot_w, plot_h = WIDTH - LEFT - 10, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(days), 1)
    drawn: list[Bar] = []
    for n, day in enumerate(days):
        base = HEIGHT - BOTTOM
        for series, bank in enumerate(banks):
            count = activity[bank][n]["matches"]
            if not count:
                continue
            height = plot_h * count / peak
            base -= height
            drawn.append(Bar(round(LEFT + n * slot + slot * 0.15, 1), round(base, 1), round(slot * 0.7, 1),
                             round(height, 1), series % SERIES, f"{bank}, {day}: {count} matches"))
    step = max(1, len(days) // 7)
    ticks = [(round(LEFT + n * slot + slot / 2, 1), day[5:]) for n, day in enumerate(days) if n % step == 0]
    values = sorted({0, peak // 2, peak})  # whole numbers only, each once (a peak of 1 has no middle line)
    grid = [(round(HEIGHT - BOTTOM - plot_h * value / peak, 1), value) for value in values]
    return Chart(WIDTH, HEIGHT, drawn, ticks, grid, [(bank, n % SERIES) for n, bank in enumerate(banks)], peak)
