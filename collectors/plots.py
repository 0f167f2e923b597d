"""PNG plots of Prometheus range results that read at 3 a.m. on a phone.

The window always shows context (an hour, and at least half an hour before the alert started),
however little data Prometheus has; sparse series are drawn with markers and say how many
samples there are; no data says so on the image; the alert's threshold is a labelled line.
The choices are pure functions (`plot_window`, `frame`); `draw` only paints them, with fixed
size, fonts and metadata, so the same input gives the same PNG bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from collectors.promql import Threshold

WIDTH_PX, HEIGHT_PX, DPI = 900, 360, 100
LEAST = timedelta(hours=1)  # the shortest window a plot shows
BEFORE_START = timedelta(minutes=30)  # context before the alert started
MOST = timedelta(hours=24)  # a long incident's plot starts no earlier than this before now
MAX_POINTS = 480  # per series: the step grows with the window beyond this
SPARSE = 30  # a series with fewer samples is drawn with markers, and the title says how many
MAX_SERIES = 8
# Points at DPI 100: a 900 px plot is shown about 400 px wide on a phone, at less than half size.
FONT = 14


@dataclass(frozen=True)
class Window:
    """The time span a plot shows, from `start` to `end` (now), both aware."""

    start: datetime
    end: datetime

    @property
    def step_seconds(self) -> int:
        """Return the range query's step: 15 s, longer when the window would hold too many."""
        return max(15, math.ceil((self.end - self.start).total_seconds() / MAX_POINTS))

    def describe(self) -> str:
        """Return the window as a reader says it: `13:05-14:05 UTC` (with dates if they differ)."""
        start, end = self.start.astimezone(UTC), self.end.astimezone(UTC)
        if start.date() == end.date():
            return f"{start:%H:%M}-{end:%H:%M} UTC"
        return f"{start:%d %b %H:%M} - {end:%d %b %H:%M} UTC"


def plot_window(now: datetime, alert_start: datetime | None = None) -> Window:
    """Return the window for plots drawn `now`: the last hour, from 30 min before the alert start.

    The data never narrows it: two samples of a target scraped since a minute ago are drawn in
    the hour around them, not stretched across the frame.
    """
    start = now - LEAST
    if alert_start is not None and alert_start <= now:
        start = min(start, alert_start - BEFORE_START)
    return Window(max(start, now - MOST), now)


@dataclass(frozen=True)
class Series:
    """One series of a range result: its name and its points (Unix seconds, value)."""

    name: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Frame:
    """What a plot shows besides the lines: y range, markers, and the notes on the image."""

    low: float
    high: float
    samples: int
    markers: bool
    note: str  # "2 samples", "no data in 13:05-14:05 UTC", "8 of 12 series" or ""
    shown: tuple[Series, ...] = field(default=())


def frame(series: Sequence[Series], window: Window, threshold: float | None = None) -> Frame:
    """Return how to frame `series` in `window`: the y range takes the threshold in, too."""
    shown = tuple(s for s in series if s.points)[:MAX_SERIES]
    values = [v for s in shown for _, v in s.points if math.isfinite(v)]
    samples = sum(len(s.points) for s in shown)
    low, high = _value_range(values + ([threshold] if threshold is not None else []))
    notes = []
    if not values:
        notes.append(f"no data in {window.describe()}")
    elif max(len(s.points) for s in shown) < SPARSE:
        notes.append(f"{samples} sample{'s' if samples != 1 else ''}")
    drawn = sum(1 for s in series if s.points)
    if drawn > len(shown):
        notes.append(f"{len(shown)} of {drawn} series")
    sparse = bool(shown) and max(len(s.points) for s in shown) < SPARSE
    return Frame(low, high, samples, sparse, ", ".join(notes), shown)


def _value_range(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    if low == high:  # one value: a band around it, never a zero-height axis
        pad = abs(low) * 0.1 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.08
    return low - pad, high + 2.5 * pad  # room at the top for the alert start's label


def with_gaps(points: Sequence[tuple[float, float]], step: float) -> tuple[list, list]:
    """Return (times, values) with a break (NaN) where samples are missing for over two steps.

    A line across a gap would draw data Prometheus does not have (a target that was down).
    """
    times: list[datetime] = []
    values: list[float] = []
    previous = None
    for stamp, value in points:
        if previous is not None and stamp - previous > 2 * step:
            times.append(datetime.fromtimestamp((stamp + previous) / 2, UTC))
            values.append(float("nan"))
        times.append(datetime.fromtimestamp(stamp, UTC))
        values.append(value)
        previous = stamp
    return times, values


def draw(
    title: str,
    expression: str,
    unit: str,
    series: Sequence[Series],
    window: Window,
    threshold: Threshold | None = None,
    alert_start: datetime | None = None,
) -> bytes:
    """Paint one plot as a WIDTH_PX x HEIGHT_PX PNG; the same arguments give the same bytes."""
    # The object API, not pyplot: no global figure registry shared by collector threads.
    from matplotlib import dates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    shape = frame(series, window, threshold.value if threshold else None)
    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    figure.subplots_adjust(left=0.11, right=0.97, top=0.79, bottom=0.17)
    axes = figure.add_subplot()
    for line in shape.shown:
        times, values = with_gaps(line.points, window.step_seconds)
        axes.plot(
            times, values, linewidth=1.8, label=line.name[:48],
            marker="o" if shape.markers else None, markersize=6,
        )  # fmt: skip
    if threshold is not None:
        axes.axhline(threshold.value, color="#c62828", linestyle="--", linewidth=1.5)
        axes.annotate(
            threshold.describe(), (1, threshold.value), xycoords=("axes fraction", "data"),
            xytext=(-4, 3), textcoords="offset points", ha="right", va="bottom",
            color="#c62828", fontsize=FONT, fontweight="bold",
        )  # fmt: skip
    if alert_start is not None and window.start <= alert_start <= window.end:
        axes.axvline(alert_start, color="#6a1b9a", linestyle=":", linewidth=1.5)
        # The label on the side of the line with room for it.
        right = alert_start - window.start > (window.end - window.start) / 2
        axes.annotate(
            f"alert started {alert_start.astimezone(UTC):%H:%M}", (alert_start, 1),
            xycoords=("data", "axes fraction"), xytext=(-4 if right else 4, -4),
            textcoords="offset points", ha="right" if right else "left", va="top",
            color="#6a1b9a", fontsize=FONT,
        )  # fmt: skip
    if not shape.samples:
        axes.text(
            0.5, 0.5, shape.note, transform=axes.transAxes, ha="center", va="center",
            fontsize=FONT + 4, color="#555555",
        )  # fmt: skip
    # A little room after now: a sample taken this second is a whole marker, not half of one.
    axes.set_xlim(window.start, window.end + (window.end - window.start) / 60)
    axes.set_ylim(shape.low, shape.high)
    locator = dates.AutoDateLocator(minticks=4, maxticks=8, tz=UTC)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(dates.DateFormatter("%H:%M", tz=UTC))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
    axes.tick_params(labelsize=FONT)
    axes.set_xlabel("time (UTC)", fontsize=FONT - 1)
    axes.set_ylabel(unit or "value", fontsize=FONT - 1)
    axes.grid(True, color="#e0e0e0", linewidth=0.8)
    heading = f"{title} ({shape.note})" if shape.note and shape.samples else title
    figure.text(0.01, 0.975, heading[:64], fontsize=FONT + 4, fontweight="bold", va="top")
    figure.text(0.01, 0.885, expression[:100], fontsize=FONT - 3, color="#555555", va="top")
    if len(shape.shown) > 1:
        axes.legend(fontsize=FONT - 3, loc="upper left", ncol=2, framealpha=0.85)
    buffer = io.BytesIO()
    # No software name or date in the PNG: equal plots are equal bytes.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def warm() -> None:
    """Load matplotlib and its fonts now (about 0.7 s), so the first plot of a run does not."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    draw("warm-up", "", "", [Series("x", ((now.timestamp(), 1.0),))], plot_window(now))
