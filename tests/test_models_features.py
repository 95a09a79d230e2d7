"""Causal features: hand-made stays, a plain pandas reading of the same definitions, and causality on real stays."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.care.news2 import news2_score
from vigil.datasets.physionet import LABEL, VITALS, load_stays
from vigil.models.features import (
    FEATURE_NAMES,
    NEVER_MEASURED_HOURS,
    VARIABLES,
    causal_features,
    feature_matrix,
    news2_total,
    qsofa_total,
)
from vigil.news2_chart import news2_component_points

FIXTURE = Path(__file__).parent / "fixtures" / "physionet2019"
NAN = np.nan


@pytest.fixture(scope="module")
def real_stays() -> pd.DataFrame:
    return load_stays(FIXTURE).drop(columns=[LABEL])


@pytest.fixture(scope="module")
def real_features(real_stays: pd.DataFrame) -> pd.DataFrame:
    return causal_features(real_stays)


def stay(stay_id: str, **columns: list[float]) -> pd.DataFrame:
    length = len(next(iter(columns.values())))
    return pd.DataFrame({"stay_id": stay_id, "hour": np.arange(length), **columns})


def assert_same(actual: pd.DataFrame | np.ndarray, expected: pd.DataFrame | np.ndarray) -> None:
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64), rtol=1e-5, atol=1e-6
    )


def test_one_float32_row_per_input_row(real_stays: pd.DataFrame, real_features: pd.DataFrame) -> None:
    assert list(real_features.columns) == FEATURE_NAMES
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES))
    assert (real_features.dtypes == np.float32).all()
    assert real_features.index.equals(real_stays.index)
    matrix = feature_matrix(real_stays)
    assert matrix.shape == (len(real_stays), len(FEATURE_NAMES)) and matrix.dtype == np.float32


def test_rows_in_any_order_keep_their_index(real_stays: pd.DataFrame, real_features: pd.DataFrame) -> None:
    shuffled = real_stays.sample(frac=1, random_state=7)
    relabelled = shuffled.set_axis([f"row{label}" for label in shuffled.index])
    features = causal_features(relabelled)
    assert features.index.equals(relabelled.index)
    assert_same(features, real_features.loc[shuffled.index])


def test_last_value_hours_since_missing_and_count() -> None:
    first = stay("a", HR=[NAN, 80, NAN, NAN, 90, NAN], Lactate=[NAN, NAN, 2.0, NAN, NAN, 4.0])
    second = stay("b", HR=[NAN, 70], Lactate=[NAN, NAN])
    features = causal_features(pd.concat([first, second], ignore_index=True))
    assert_same(features["HR_last"], [NAN, 80, 80, 80, 90, 90, NAN, 70])
    never = NEVER_MEASURED_HOURS
    assert_same(features["HR_hours_since"], [never, 0, 1, 2, 0, 1, never, 0])
    assert_same(features["HR_missing"], [1, 0, 1, 1, 0, 1, 1, 0])
    assert_same(features["Lactate_last"], [NAN, NAN, 2, 2, 2, 4, NAN, NAN])
    assert_same(features["Lactate_count"], [0, 0, 1, 1, 1, 2, 0, 0])
    assert_same(features["Temp_hours_since"], [never] * 8)


def test_hours_since_is_capped_at_48() -> None:
    features = causal_features(stay("a", Glucose=[110.0] + [NAN] * 59))
    assert features["Glucose_hours_since"].iloc[[47, 48, 59]].tolist() == [47, 48, 48]
    assert features["Glucose_last"].iloc[-1] == 110


def test_windows_trend_and_baseline_on_a_hand_made_stay() -> None:
    features = causal_features(stay("a", HR=[NAN, 80, NAN, NAN, 90, NAN])).iloc[-1]
    assert features[["HR_mean_6h", "HR_min_6h", "HR_max_6h"]].tolist() == [84, 80, 90]
    assert features["HR_std_6h"] == pytest.approx(np.std([80, 80, 80, 90, 90], ddof=1))
    assert features["HR_slope_6h"] == pytest.approx(3.0)  # least squares through hours 1..5
    assert features["HR_minus_baseline"] == pytest.approx(90 - 85)  # median of the measurements 80 and 90


def test_windows_look_back_6_12_and_24_hours() -> None:
    features = causal_features(stay("a", HR=list(np.arange(30.0)))).iloc[-1]
    assert [features[f"HR_mean_{hours}h"] for hours in (6, 12, 24)] == [26.5, 23.5, 17.5]
    assert [features[f"HR_min_{hours}h"] for hours in (6, 12, 24)] == [24, 18, 6]
    assert features["HR_slope_6h"] == pytest.approx(1.0)
    assert features["HR_minus_baseline"] == pytest.approx(29 - 14.5)


def test_the_same_definitions_read_plainly_with_pandas(real_stays: pd.DataFrame, real_features) -> None:
    by_stay = real_stays.groupby("stay_id", sort=False)
    last = by_stay[list(VITALS)].ffill()
    assert_same(real_features[[f"{vital}_last" for vital in VITALS]], last)
    for hours in (6, 12, 24):
        rolling = last.groupby(real_stays["stay_id"], sort=False).rolling(hours, min_periods=1)
        for statistic in ("mean", "min", "max", "std"):
            expected = getattr(rolling, statistic)().reset_index(level=0, drop=True).sort_index()
            assert_same(real_features[[f"{vital}_{statistic}_{hours}h" for vital in VITALS]], expected)
    baseline = by_stay[list(VITALS)].expanding().median().reset_index(level=0, drop=True).sort_index()
    assert_same(real_features[[f"{vital}_minus_baseline" for vital in VITALS]], last - baseline)


def test_trend_is_the_least_squares_slope(real_stays: pd.DataFrame, real_features: pd.DataFrame) -> None:
    last_hr = real_stays.groupby("stay_id", sort=False)["HR"].ffill().to_numpy()
    for row in np.flatnonzero(real_stays["hour"].to_numpy() >= 5)[::7]:
        window = last_hr[row - 5 : row + 1]
        hours = np.arange(6.0)[~np.isnan(window)]
        expected = np.polyfit(hours, window[~np.isnan(window)], 1)[0] if len(hours) >= 2 else NAN
        assert_same(real_features["HR_slope_6h"].iloc[row], expected)


SICK = {"Resp": 25, "O2Sat": 93, "SBP": 95, "HR": 115, "Temp": 38.5}
WELL = {"Resp": 16, "O2Sat": 98, "SBP": 120, "HR": 70, "Temp": 37.0}
BORDER = {"Resp": 22, "O2Sat": 96, "SBP": 100, "HR": 90.5, "Temp": 35.05}


def test_news2_qsofa_and_shock_index_on_hand_made_rows() -> None:
    rows = pd.DataFrame([SICK, WELL, BORDER, {"HR": 60}]).assign(stay_id="a", hour=range(4))
    features = causal_features(rows)
    components = ["news2_resp_rate", "news2_spo2", "news2_systolic_bp", "news2_heart_rate", "news2_body_temp"]
    assert features[components].to_numpy().tolist() == [
        [3, 2, 2, 2, 1],
        [0, 0, 0, 0, 0],
        [2, 0, 2, 1, 1],
        [2, 0, 2, 0, 1],
    ]
    assert features["news2_total"].tolist() == [10, 0, 6, 5]  # the last row carries all but HR forward
    assert features[["qsofa_resp_rate", "qsofa_systolic_bp", "qsofa_total"]].to_numpy().tolist() == [
        [1, 1, 2], [0, 0, 0], [1, 1, 2], [1, 1, 2],
    ]  # fmt: skip
    assert_same(features["shock_index"], [115 / 95, 70 / 120, 90.5 / 100, 60 / 100])
    assert news2_total(rows).tolist() == [10, 0, 6, 5]
    assert qsofa_total(rows).tolist() == [2, 0, 2, 2]
    assert news2_total(rows).index.equals(rows.index)
    scalar = news2_score(resp_rate=22, spo2=96, systolic_bp=100, heart_rate=90.5, body_temp=35.05)
    assert scalar.total == 6


def test_nothing_measured_scores_nothing() -> None:
    features = causal_features(stay("a", HR=[NAN, NAN]))
    assert features[["news2_total", "qsofa_total"]].to_numpy().tolist() == [[0, 0], [0, 0]]
    assert features["shock_index"].isna().all()


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["resp_rate", "spo2", "systolic_bp", "heart_rate", "body_temp"]),
    st.lists(st.integers(0, 25_000).map(lambda hundredths: hundredths / 100), min_size=1, max_size=20),
)
def test_vectorised_news2_points_match_the_chart(parameter: str, values: list[float]) -> None:
    points = news2_component_points(parameter, np.array(values + [NAN]))
    expected = [news2_score(**{parameter: value}).components[parameter] for value in values]
    assert points.tolist() == expected + [0]


def test_absent_columns_are_never_measured(real_stays: pd.DataFrame, real_features: pd.DataFrame) -> None:
    live = real_stays[["stay_id", "hour", "HR", "SBP", "Resp", "O2Sat", "Temp"]]
    features = causal_features(live)
    expected = causal_features(
        real_stays.assign(**{column: NAN for column in real_stays.columns[2:] if column not in live})
    )
    assert_same(features, expected)
    assert_same(
        features[["HR_mean_6h", "news2_total", "shock_index"]],
        real_features[["HR_mean_6h", "news2_total", "shock_index"]],
    )
    assert (features["Lactate_hours_since"] == NEVER_MEASURED_HOURS).all()
    assert features[["Lactate_last", "Age", "ICULOS"]].isna().all().all()
    assert (features["Lactate_missing"] == 1).all()


def test_needs_stay_and_hour() -> None:
    with pytest.raises(ValueError, match="hour"):
        causal_features(pd.DataFrame({"stay_id": ["a"], "HR": [80.0]}))


def test_no_rows_no_features() -> None:
    assert list(causal_features(pd.DataFrame({"stay_id": [], "hour": []})).columns) == FEATURE_NAMES


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_later_hours_never_change_earlier_features(real_stays: pd.DataFrame, real_features, data) -> None:
    stay_ids = real_stays["stay_id"].unique()
    stay_id = data.draw(st.sampled_from(list(stay_ids)), label="stay")
    rows = np.flatnonzero(real_stays["stay_id"] == stay_id)
    cut = data.draw(st.integers(0, len(rows) - 1), label="hour")
    later = rows[cut + 1 :]
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    changed = real_stays.copy()
    noise = np.random.default_rng(seed).normal(100, 50, size=(len(later), len(VARIABLES)))
    changed.loc[later, list(VARIABLES)] = np.where(noise > 80, noise, NAN)
    kept = np.setdiff1d(np.arange(len(real_stays)), later)
    np.testing.assert_array_equal(causal_features(changed).iloc[kept], real_features.iloc[kept])
    prefix = causal_features(real_stays.iloc[rows[: cut + 1]])
    np.testing.assert_array_equal(prefix, real_features.iloc[rows[: cut + 1]])


DEVELOPMENT_SET = Path(os.environ.get("VIGIL_PHYSIONET_2019", "/work/shared/data/physionet2019/setB_dev.tar.gz"))


@pytest.mark.slow
def test_the_whole_development_set_loads_and_featurises_quickly() -> None:
    """Measures what the issue reports: ``pytest -m slow -s tests/test_models_features.py``."""
    if not DEVELOPMENT_SET.exists():
        pytest.skip(f"{DEVELOPMENT_SET} is not here (set VIGIL_PHYSIONET_2019)")
    started = time.perf_counter()
    stays = load_stays(DEVELOPMENT_SET)
    loaded = time.perf_counter()
    features = causal_features(stays)
    featurised = time.perf_counter()
    septic = int(stays.groupby("stay_id")[LABEL].max().sum())
    print(
        f"\n{stays['stay_id'].nunique()} stays, {len(stays)} rows, {septic} septic, {features.shape[1]} features;"
        f" loaded in {loaded - started:.1f} s, features in {featurised - loaded:.1f} s"
    )
    assert (stays["stay_id"].nunique(), len(stays), septic) == (6181, 232_783, 331)
    assert loaded - started < 30 and featurised - loaded < 60
