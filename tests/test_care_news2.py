"""Tests for NEWS2: every band edge of the RCP chart, both SpO2 scales, rounding, risk bands, missing data."""

import pytest

from vigil.care import explain, news2_score, round_half_up

NORMAL = {"resp_rate": 16, "spo2": 97, "systolic_bp": 120, "heart_rate": 70, "body_temp": 37.0}


def component(parameter: str, value: float, **context) -> int:
    return news2_score(**{parameter: value}, **context).components[parameter]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (4, 3), (40, 3)],
)
def test_respiration_rate_bands(value, expected):
    assert component("resp_rate", value) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(85, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]
)
def test_spo2_scale_1_bands(value, expected):
    assert component("spo2", value) == expected
    assert component("spo2", value, supplemental_oxygen=True) == expected  # scale 1 ignores oxygen


@pytest.mark.parametrize(
    ("value", "expected"),
    [(83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0), (93, 0), (96, 0), (100, 0)],
)
def test_spo2_scale_2_bands_on_air(value, expected):
    assert component("spo2", value, spo2_scale=2, supplemental_oxygen=False) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0), (93, 1), (94, 1), (95, 2), (96, 2), (97, 3)],
)
def test_spo2_scale_2_bands_on_oxygen(value, expected):
    assert component("spo2", value, spo2_scale=2, supplemental_oxygen=True) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(70, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3)]
)
def test_systolic_bp_bands(value, expected):
    assert component("systolic_bp", value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(30, 3), (40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2), (130, 2), (131, 3)],
)
def test_pulse_bands(value, expected):
    assert component("heart_rate", value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(34.0, 3), (35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1), (39.0, 1), (39.1, 2), (41.0, 2)],
)
def test_temperature_bands(value, expected):
    assert component("body_temp", value) == expected


def test_supplemental_oxygen_scores_two():
    assert news2_score(supplemental_oxygen=True).components["supplemental_oxygen"] == 2
    assert news2_score(supplemental_oxygen=False).components["supplemental_oxygen"] == 0


@pytest.mark.parametrize(
    ("level", "expected"), [("alert", 0), ("confusion", 3), ("voice", 3), ("pain", 3), ("unresponsive", 3)]
)
def test_consciousness_acvpu(level, expected):
    assert news2_score(consciousness=level).components["consciousness"] == expected


def test_unknown_consciousness_or_scale_is_rejected():
    with pytest.raises(ValueError, match="consciousness"):
        news2_score(consciousness="drowsy")
    with pytest.raises(ValueError, match="spo2_scale"):
        news2_score(spo2_scale=3)


@pytest.mark.parametrize(
    ("parameter", "value", "rounded", "expected"),
    [
        ("body_temp", 38.05, 38.1, 1),
        ("body_temp", 38.04, 38.0, 0),
        ("body_temp", 36.05, 36.1, 0),
        ("body_temp", 35.05, 35.1, 1),
        ("heart_rate", 90.5, 91.0, 1),
        ("heart_rate", 90.49, 90.0, 0),
        ("spo2", 95.5, 96.0, 0),
        ("resp_rate", 20.5, 21.0, 2),
        ("systolic_bp", 110.4, 110.0, 1),
    ],
)
def test_inputs_are_rounded_half_up_to_the_chart_resolution(parameter, value, rounded, expected):
    score = news2_score(**{parameter: value})
    assert score.values[parameter] == rounded
    assert score.components[parameter] == expected


def test_round_half_up_is_not_bankers_rounding():
    assert round_half_up(0.5) == 1.0 and round_half_up(2.5) == 3.0 and round_half_up(2.675, 2) == 2.68


def test_normal_vitals_score_zero_low_risk_with_routine_monitoring():
    score = news2_score(**NORMAL)
    assert score.total == 0 and score.band == "low" and score.complete
    assert score.response.monitoring == "Minimum 12-hourly"


@pytest.mark.parametrize(
    ("vitals", "total", "band"),
    [
        ({"resp_rate": 22, "heart_rate": 95}, 3, "low"),  # 2 + 1, no single 3
        ({"resp_rate": 22, "heart_rate": 95, "body_temp": 38.5}, 4, "low"),
        ({"heart_rate": 135}, 3, "low-medium"),  # a single red parameter
        ({"heart_rate": 135, "body_temp": 38.5}, 4, "low-medium"),
        ({"resp_rate": 22, "heart_rate": 115, "body_temp": 38.5}, 5, "medium"),
        ({"heart_rate": 135, "spo2": 93}, 5, "medium"),  # a red parameter at 5 is medium
        ({"resp_rate": 22, "heart_rate": 115, "spo2": 93}, 6, "medium"),
        ({"resp_rate": 25, "heart_rate": 115, "spo2": 93}, 7, "high"),
        ({"resp_rate": 25, "heart_rate": 135, "spo2": 91, "systolic_bp": 85, "body_temp": 34.0}, 15, "high"),
    ],
)
def test_risk_bands(vitals, total, band):
    score = news2_score(**{**NORMAL, **vitals})
    assert (score.total, score.band) == (total, band)


def test_oxygen_and_consciousness_count_towards_the_total():
    score = news2_score(**NORMAL, supplemental_oxygen=True, consciousness="confusion")
    assert score.total == 5 and score.band == "medium" and score.red_parameters == ("consciousness",)
    assert score.assumed == ()


def test_responses_follow_the_rcp_thresholds():
    assert news2_score(**{**NORMAL, "heart_rate": 95}).response.monitoring == "Minimum 4-6-hourly"
    assert news2_score(**{**NORMAL, "heart_rate": 135}).response.monitoring == "Minimum 1-hourly"
    medium = news2_score(**{**NORMAL, "heart_rate": 135, "spo2": 93}).response
    assert medium.monitoring == "Minimum 1-hourly" and "urgent" in medium.action
    high = news2_score(**{**NORMAL, "resp_rate": 25, "heart_rate": 115, "spo2": 93}).response
    assert high.monitoring == "Continuous monitoring of vital signs" and "critical-care" in high.action


def test_missing_parameters_contribute_nothing_and_are_listed():
    score = news2_score(heart_rate=135, spo2=97)
    assert score.total == 3
    assert score.missing == ("resp_rate", "systolic_bp", "body_temp")
    assert not score.complete
    assert "resp_rate" not in score.components and "resp_rate" not in score.values


def test_oxygen_and_consciousness_default_to_air_and_alert_and_say_so():
    score = news2_score(**NORMAL)
    assert score.values["supplemental_oxygen"] is False and score.values["consciousness"] == "alert"
    assert score.assumed == ("supplemental_oxygen", "consciousness")


def test_details_are_json_ready_and_explain_names_scoring_and_missing_parameters():
    score = news2_score(resp_rate=23, spo2=93, heart_rate=112)
    details = score.details()
    assert details["components"]["resp_rate"] == 2 and details["values"]["spo2"] == 93.0
    assert details["band"] == "medium" and details["missing"] == ["systolic_bp", "body_temp"]
    assert details["complete"] is False and details["monitoring"] == "Minimum 1-hourly"
    assert (details["measured_count"], details["parameter_count"]) == (3, 5)
    text = explain(score)
    assert text.startswith("NEWS2 is at least 6 (partial: 3 of 5 measured, medium clinical risk on those)")
    assert "Respiration rate 23/min scores 2" in text and "Pulse 112/min scores 2" in text
    assert "Not measured: Systolic BP, Temperature" in text
    assert "Assumed, not recorded: on air, Alert" in text


def test_a_complete_score_with_recorded_inputs_reads_as_complete_and_assumes_nothing():
    score = news2_score(
        resp_rate=16,
        spo2=97,
        systolic_bp=120,
        heart_rate=70,
        body_temp=37.0,
        supplemental_oxygen=False,
        consciousness="alert",
    )
    text = explain(score)
    assert text.startswith("NEWS2 is 0 (low clinical risk)") and "partial" not in text and "Assumed" not in text
