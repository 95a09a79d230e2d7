"""The AGP as a report: from a patient's stored CGM or a simulated closed-loop run, its figure and its summary."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from vigil.domain import Quality, Reading
from vigil.glucose.agp import (
    HIGH,
    LOW,
    VERY_HIGH,
    VERY_LOW,
    Agp,
    AgpError,
    ambulatory_glucose_profile,
)
from vigil.metrics import MetricName

RANGE_ROWS = (  # (label, share attribute, colour), top of the bar first
    ("Very high  > 250", "very_high", "#e8833a"),
    ("High  181-250", "high", "#f6c342"),
    ("In range  70-180", "in_range", "#3aa757"),
    ("Low  54-69", "low", "#e53935"),
    ("Very low  < 54", "very_low", "#8b1a1a"),
)
TARGET_KEYS = {  # the consensus target each range is judged by
    "very_high": "above 250 < 5 %",
    "high": "above 180 < 25 %",
    "in_range": "in range > 70 %",
    "low": "below 70 < 4 %",
    "very_low": "below 54 < 1 %",
}


class GlucoseReadings(Protocol):
    """What the report needs from a store (``vigil.store.SqlStore`` is one)."""

    def query_readings(
        self, patient_id: str | None = None, metric: Any = None, start: datetime | None = None
    ) -> list[Reading]: ...


def stored_agp(
    store: GlucoseReadings, patient_id: str, days: int, tz: tzinfo | None = None, end: datetime | None = None
) -> Agp:
    """The AGP of a patient's stored CGM over the ``days`` days up to ``end`` (default: their latest reading), by
    the time of day in ``tz`` (None: the server's zone, with its daylight-saving rules); readings flagged
    implausible are left out. AgpError when there are none."""
    readings = [r for r in store.query_readings(patient_id, MetricName.GLUCOSE) if r.quality == Quality.OK]
    if not readings:
        raise AgpError(f"patient {patient_id} has no stored CGM (glucose) readings")
    end = end or readings[-1].time
    start = end - timedelta(days=days)
    chosen = [r for r in readings if start < r.time <= end]
    if not chosen:
        raise AgpError(f"patient {patient_id} has no CGM readings in the {days} days up to {end:%Y-%m-%d %H:%M}")
    times = [_wall_clock(r.time, tz) for r in chosen]
    return ambulatory_glucose_profile(
        times, [r.value for r in chosen], start=_wall_clock(start, tz), end=_wall_clock(end, tz)
    )


def _wall_clock(time: datetime, tz: tzinfo | None) -> datetime:
    """The local date and time in ``tz`` (None: the server's zone), without its offset."""
    return time.astimezone(tz).replace(tzinfo=None)


def simulated_agp(name: str, days: int, seed: int) -> Agp:
    """The AGP of a virtual patient's glucose under Vigil's closed loop (the simulator's blood glucose, every sample;
    the run starts at midnight)."""
    from vigil.glucose.body import START
    from vigil.glucose.simulation import patient_seed, simulate_patient

    run = simulate_patient(name, days, patient_seed(seed, name))
    step = timedelta(days=days) / len(run.glucose)
    times = pd.date_range(START + step, periods=len(run.glucose), freq=step)
    return ambulatory_glucose_profile(times, run.glucose, start=START, end=START + timedelta(days=days))


def agp_summary(report: Agp) -> dict[str, Any]:
    """The report's numbers as JSON: start and end in local time, shares 0-1, CV and GMI in %, glucose in mg/dL,
    and each target met or not."""
    ranges = report.ranges
    return {
        "start": report.start.isoformat(),
        "end": report.end.isoformat(),
        "days": round(report.days, 2),
        "readings": report.readings,
        "wear": round(report.wear, 4),
        "mean_glucose": round(report.mean, 1),
        "sd": round(report.sd, 1),
        "cv_percent": round(report.cv_percent, 1),
        "gmi_percent": round(report.gmi_percent, 2),
        "gri": round(report.gri, 1),
        "gri_zone": report.gri_zone,
        "ranges": {key: round(getattr(ranges, key), 4) for key in TARGET_KEYS},
        "tir": round(ranges.in_range, 4),  # the names `vigil glucose simulate --json` uses
        "tbr": round(ranges.below_70, 4),
        "tbr54": round(ranges.very_low, 4),
        "tar": round(ranges.above_180, 4),
        "targets": report.targets(),
        "notes": list(report.notes),
    }


def summary_text(report: Agp) -> str:
    """The report in a few lines, for the terminal."""
    ranges = report.ranges
    lines = [
        f"{report.days:.1f} days, CGM active {report.wear:.0%}, {report.readings} readings",
        f"mean {report.mean:.0f} mg/dL, GMI {report.gmi_percent:.1f} %, CV {report.cv_percent:.1f} %, "
        f"GRI {report.gri:.0f} (zone {report.gri_zone})",
        f"very low {ranges.very_low:.1%}, low {ranges.low:.1%}, in range {ranges.in_range:.1%}, "
        f"high {ranges.high:.1%}, very high {ranges.very_high:.1%}",
    ]
    return "\n".join(lines + [f"note: {note}" for note in report.notes])


def agp_figure(report: Agp, path: Path, title: str, source: str = "CGM") -> None:
    """The AGP page: the metrics, the percentile profile over the target range, and the stacked time-in-ranges bar;
    ``source`` names where the glucose came from. PNG, PDF or SVG by the file's suffix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 7.5))
    grid = fig.add_gridspec(2, 2, width_ratios=(4.2, 1.3), height_ratios=(0.7, 3.4), hspace=0.12, wspace=0.08)
    fig.suptitle(title, x=0.125, y=0.95, ha="left", fontsize=14, weight="bold")
    _metrics_panel(fig.add_subplot(grid[0, 0]), report, source)
    _profile_panel(fig.add_subplot(grid[1, 0]), report)
    _ranges_panel(fig.add_subplot(grid[:, 1]), report)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _metrics_panel(axis: Any, report: Agp, source: str) -> None:
    axis.axis("off")
    cv_mark = "met" if report.cv_percent <= 36 else "not met"
    last_day = report.end - timedelta(microseconds=1) if report.end > report.start else report.end
    lines = [
        (
            f"{report.start:%d %b %Y} - {last_day:%d %b %Y}  ({report.days:.1f} days)    "
            f"{source} active {report.wear:.0%} of the time ({report.readings} readings)",
            10,
            "normal",
            "black",
        ),
        (
            f"Mean glucose {report.mean:.0f} mg/dL    GMI {report.gmi_percent:.1f} %    "
            f"CV {report.cv_percent:.1f} % (target <= 36 %: {cv_mark})    "
            f"GRI {report.gri:.0f} (zone {report.gri_zone})",
            11,
            "normal",
            "black",
        ),
        *((f"note: {note}", 9, "normal", "#b23b3b") for note in report.notes),
    ]
    for row, (text, size, weight, colour) in enumerate(lines):
        offset = (0, -18 * row)
        axis.annotate(
            text, (0, 1), offset, "axes fraction", "offset points", fontsize=size, weight=weight, color=colour, va="top"
        )


def _profile_panel(axis: Any, report: Agp) -> None:
    axis.axhspan(LOW, HIGH, color="#3aa757", alpha=0.10, lw=0)
    for level, style in ((LOW, "-"), (HIGH, "-"), (VERY_LOW, ":"), (VERY_HIGH, ":")):
        axis.axhline(level, color="#3aa757" if style == "-" else "#999999", lw=1, ls=style)
    if report.profile is None:
        axis.text(12, 200, "\n".join(n for n in report.notes if "profile" in n), ha="center", va="center")
    else:
        _bands(axis, report)
    axis.set_xlim(0, 24)
    axis.set_ylim(0, max(350.0, _top(report)))
    axis.set_xticks(range(0, 25, 3), [f"{h % 24:02d}:00" for h in range(0, 25, 3)])
    axis.set_yticks([0, VERY_LOW, LOW, HIGH, VERY_HIGH, 350])
    axis.set_ylabel("glucose (mg/dL)")
    axis.set_title("Ambulatory glucose profile: all days overlaid by time of day", fontsize=11, loc="left")
    axis.grid(axis="x", alpha=0.25)


def _bands(axis: Any, report: Agp) -> None:
    assert report.profile is not None
    hours, bands = _wrapped(report.profile.minutes / 60, report.profile.bands)
    axis.fill_between(hours, bands[5], bands[95], color="#7fa7d9", alpha=0.35, lw=0, label="5-95 %")
    axis.fill_between(hours, bands[25], bands[75], color="#2f6db5", alpha=0.55, lw=0, label="25-75 %")
    axis.plot(hours, bands[50], color="#0b2e59", lw=2.2, label="median")
    axis.plot(hours, bands[5], color="#7fa7d9", lw=0.8, ls="--")
    axis.plot(hours, bands[95], color="#7fa7d9", lw=0.8, ls="--")
    axis.legend(loc="upper right", fontsize=9, ncol=3, frameon=False)


def _wrapped(hours: np.ndarray, bands: dict[int, np.ndarray]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The curves with a point at each midnight (the mean of the first and last bins), so they span 0-24 h."""
    edges = np.concatenate([[0.0], hours, [24.0]])
    return edges, {p: np.concatenate([[_midnight(c)], c, [_midnight(c)]]) for p, c in bands.items()}


def _midnight(curve: np.ndarray) -> float:
    return float(np.mean([curve[0], curve[-1]]))


def _top(report: Agp) -> float:
    if report.profile is None or np.isnan(report.profile.bands[95]).all():
        return 0.0
    return float(np.nanmax(report.profile.bands[95])) + 20


def _ranges_panel(axis: Any, report: Agp) -> None:
    bottom = 0.0
    for row, (label, key, colour) in enumerate(reversed(RANGE_ROWS)):
        share = getattr(report.ranges, key)
        axis.bar(0, share, 0.5, bottom=bottom, color=colour, edgecolor="white", lw=0.8)
        y = 0.1 + 0.2 * row
        axis.annotate("", (0.25, bottom + share / 2), (0.45, y), arrowprops={"arrowstyle": "-", "color": "#888888"})
        axis.text(0.5, y, f"{label}: {share:.1%}\n{_target_text(report, key)}", fontsize=9, va="center")
        bottom += share
    axis.set_xlim(-0.3, 2.2)
    axis.set_ylim(0, 1)
    axis.axis("off")
    axis.set_title("Time in ranges", fontsize=11, loc="left")


def _target_text(report: Agp, key: str) -> str:
    """The consensus target a range is judged by (below 70 and above 180 count two ranges together), and whether
    it is met."""
    ranges, met = report.ranges, report.targets()
    text = {
        "very_high": "target < 5 %",
        "high": f"above 180: {ranges.above_180:.1%}, target < 25 %",
        "in_range": "target > 70 %",
        "low": f"below 70: {ranges.below_70:.1%}, target < 4 %",
        "very_low": "target < 1 %",
    }[key]
    return f"({text}: {'met' if met[TARGET_KEYS[key]] else 'not met'})"
