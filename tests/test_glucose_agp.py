"""The AGP and the consensus CGM metrics on hand-computed cases."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from vigil.glucose.agp import (
    AgpError,
    RangeShares,
    ambulatory_glucose_profile,
    circular_smooth,
    coefficient_of_variation,
    consensus_targets,
    glycaemia_risk_index,
    gmi,
    gri_zone,
    profile,
    range_shares,
)

START = datetime(2026, 1, 1)
BINS = 96


def every_five_minutes(days: int, start: datetime = START) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=days * 288, freq="5min")


def known_profile(days: int = 21) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """A base curve constant within each 15-minute bin, plus a day offset of -50, -45, ..., +50 mg/dL."""
    times = every_five_minutes(days)
    base = 150 + 50 * np.sin(2 * np.pi * (np.arange(BINS) + 0.5) / BINS)
    offsets = np.linspace(-50, 50, days)
    values = base[(times.hour * 60 + times.minute) // 15] + offsets[(times - START).days]
    return times, values, base


def test_range_shares_put_each_boundary_where_the_consensus_does() -> None:
    shares = range_shares(np.array([40, 54, 69, 70, 180, 181, 250, 251, 120, 100], dtype=float))
    assert shares == RangeShares(very_low=0.1, low=0.2, in_range=0.4, high=0.2, very_high=0.1)
    assert shares.below_70 == pytest.approx(0.3) and shares.above_180 == pytest.approx(0.3)


def test_gri_is_the_weighted_sum_of_percentages() -> None:
    values = np.array([50] * 1 + [60] * 2 + [300] * 5 + [200] * 20 + [120] * 72, dtype=float)
    gri = glycaemia_risk_index(range_shares(values))
    assert gri == pytest.approx(3.0 * 1 + 2.4 * 2 + 1.6 * 5 + 0.8 * 20)  # 31.8
    assert gri_zone(gri) == "B"


def test_gri_is_capped_at_100() -> None:
    assert glycaemia_risk_index(RangeShares(0.3, 0.2, 0.5, 0.0, 0.0)) == 100.0  # 90 + 48 = 138 uncapped


@pytest.mark.parametrize(
    ("gri", "zone"),
    [(0, "A"), (20, "A"), (20.01, "B"), (40, "B"), (40.01, "C"), (60, "C"), (60.01, "D"), (80, "D"), (80.01, "E")],
)
def test_gri_zones_include_their_upper_boundary(gri: float, zone: str) -> None:
    assert gri_zone(gri) == zone


def test_cv_uses_the_sample_sd() -> None:
    assert coefficient_of_variation(np.array([90, 110, 100, 100.0])) == pytest.approx(100 * np.sqrt(200 / 3) / 100)
    assert coefficient_of_variation(np.array([100, 200.0])) == pytest.approx(100 * np.sqrt(5000) / 150)


def test_gmi_formula() -> None:
    assert gmi(154) == pytest.approx(6.99368)
    assert gmi(100) == pytest.approx(5.702)


def test_consensus_targets_are_strict_where_the_consensus_says_less_than() -> None:
    on_each_boundary = consensus_targets(RangeShares(0.01, 0.03, 0.70, 0.21, 0.05), cv_percent=36.0)
    assert on_each_boundary == {
        "in range > 70 %": False,
        "below 70 < 4 %": False,
        "below 54 < 1 %": False,
        "above 180 < 25 %": False,
        "above 250 < 5 %": False,
        "CV <= 36 %": True,
    }
    assert all(consensus_targets(RangeShares(0.005, 0.03, 0.75, 0.18, 0.035), cv_percent=30.0).values())
    assert not consensus_targets(RangeShares(0.005, 0.03, 0.75, 0.18, 0.035), cv_percent=36.01)["CV <= 36 %"]


def test_unsmoothed_percentiles_of_a_known_profile() -> None:
    times, values, base = known_profile()
    curves = profile(times, values, smoothing=(1.0,))
    assert curves is not None
    assert curves.minutes[0] == 7.5 and curves.minutes[-1] == 24 * 60 - 7.5
    for p, offset in {5: -45, 25: -25, 50: 0, 75: 25, 95: 45}.items():
        np.testing.assert_allclose(curves.bands[p], base + offset, atol=1e-9)


def test_smoothing_attenuates_a_daily_sine_by_the_weights_cosine_sum() -> None:
    times, values, base = known_profile()
    report = ambulatory_glucose_profile(times, values)
    assert report.profile is not None
    factor = (4 + 2 * 2 * np.cos(2 * np.pi / BINS) + 2 * np.cos(4 * np.pi / BINS)) / 10
    np.testing.assert_allclose(report.profile.bands[50], 150 + (base - 150) * factor, atol=1e-9)


def test_smoothing_wraps_at_midnight_and_leaves_empty_bins_empty() -> None:
    curve = np.array([10.0, np.nan, 0.0, 0.0, 0.0, 20.0])
    smoothed = circular_smooth(curve, (1.0, 2.0, 1.0))
    assert np.isnan(smoothed[1])
    assert smoothed[0] == pytest.approx((20 + 2 * 10) / 3)  # its neighbours: bin 5 (wrapped) and the empty bin 1
    assert smoothed[5] == pytest.approx((0 + 40 + 10) / 4)


def test_metrics_of_a_whole_report() -> None:
    times, values, _ = known_profile()
    report = ambulatory_glucose_profile(times, values)
    assert report.readings == 21 * 288 and report.wear == pytest.approx(1.0) and report.days == pytest.approx(21)
    assert report.mean == pytest.approx(np.mean(values))
    assert report.gmi_percent == pytest.approx(3.31 + 0.02392 * np.mean(values))
    assert report.cv_percent == pytest.approx(100 * np.std(values, ddof=1) / np.mean(values))
    assert report.notes == ()


def test_a_nightly_gap_lowers_wear_and_empties_those_bins() -> None:
    times, values, _ = known_profile()
    kept = times.hour >= 3
    report = ambulatory_glucose_profile(times[kept], values[kept], start=START, end=START + timedelta(days=21))
    assert report.wear == pytest.approx(21 / 24)
    assert report.profile is not None
    assert np.isnan(report.profile.bands[50][:12]).all() and not np.isnan(report.profile.bands[50][12:]).any()


def test_a_bin_seen_on_too_few_days_is_empty() -> None:
    times, values, _ = known_profile()
    kept = (times.hour != 12) | ((times - START).days < 4)  # noon seen on 4 days only
    report = ambulatory_glucose_profile(times[kept], values[kept])
    assert report.profile is not None
    assert np.isnan(report.profile.bands[50][48:52]).all() and not np.isnan(report.profile.bands[50][52])


def test_a_single_day_has_metrics_but_no_profile_and_says_why() -> None:
    times = every_five_minutes(1)
    report = ambulatory_glucose_profile(times, np.full(len(times), 120.0))
    assert report.profile is None and report.mean == 120 and report.ranges.in_range == 1.0 and report.cv_percent == 0
    assert any("14" in note for note in report.notes) and any("profile" in note for note in report.notes)


def test_low_wear_is_noted() -> None:
    times = every_five_minutes(14)
    worn = (times - START).days % 2 == 0  # the sensor worn every other day
    end = START + timedelta(days=14)
    report = ambulatory_glucose_profile(times[worn], np.full(worn.sum(), 120.0), start=START, end=end)
    assert report.wear == pytest.approx(0.5)
    assert any("CGM active 50%" in note for note in report.notes)


def test_time_of_day_is_the_wall_clock_of_the_given_zone() -> None:
    times = pd.date_range("2026-01-01", periods=10 * 288, freq="5min", tz="UTC")
    values = np.where(times.hour == 13, 250.0, 100.0)  # 13:00 UTC is 08:00 in New York in January
    local = ambulatory_glucose_profile(times.tz_convert("America/New_York"), values)
    assert local.profile is not None
    unsmoothed = profile(times.tz_convert("America/New_York"), values, smoothing=(1.0,))
    assert unsmoothed is not None and (unsmoothed.bands[50][32:36] == 250).all()


@pytest.mark.parametrize(
    ("times", "values", "message"),
    [
        ([], [], "no glucose readings"),
        ([START, START + timedelta(minutes=5)], [100.0], "differ in length"),
        ([START], [float("nan")], "positive number"),
        ([START], [-5.0], "positive number"),
    ],
)
def test_bad_input_is_refused_plainly(times: list, values: list, message: str) -> None:
    with pytest.raises(AgpError, match=message):
        ambulatory_glucose_profile(times, values)
