"""The shipped sepsis model: scoring in the Challenge format, causality, explanations, save/load, bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vigil import __version__
from vigil.datasets.physionet import load_stays
from vigil.models.evaluation import Dataset, fit_calibrated, train_shipped_model
from vigil.models.features import VITALS_FEATURE_NAMES
from vigil.models.risk import SepsisRiskModel, default_model, default_vitals_model, export_lightgbm
from vigil.models.scoring import OUTPUT_HEADER

FIXTURE = Path(__file__).parent / "fixtures" / "physionet2019"


def _cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "vigil", *args], capture_output=True, text=True, timeout=300)
    assert (result.returncode == 0) == ok, result.stderr
    return result


def test_score_writes_one_challenge_file_per_input(tmp_path):
    _cli("risk", "score", str(FIXTURE), str(tmp_path / "out"))
    inputs = sorted(FIXTURE.glob("*.psv"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [p.name for p in inputs]
    for psv in inputs:
        lines = (tmp_path / "out" / psv.name).read_text().splitlines()
        assert lines[0] == OUTPUT_HEADER
        assert len(lines) - 1 == len(psv.read_text().splitlines()) - 1
        probabilities, labels = zip(*(line.split("|") for line in lines[1:]))
        assert all(0.0 <= float(p) <= 1.0 for p in probabilities) and set(labels) <= {"0", "1"}


def test_an_hour_is_scored_from_rows_up_to_that_hour_only(tmp_path):
    stay = load_stays(FIXTURE, limit=1)
    cut = len(stay) // 2
    full = default_model().score(stay)
    prefix = default_model().score(stay.iloc[:cut])
    changed = stay.copy()
    changed.loc[cut:, ["HR", "Temp", "Resp", "SBP"]] = [180.0, 41.0, 40.0, 60.0]
    assert np.array_equal(prefix["PredictedProbability"], full["PredictedProbability"].iloc[:cut])
    assert np.array_equal(
        default_model().score(changed)["PredictedProbability"].iloc[:cut], full["PredictedProbability"].iloc[:cut]
    )


def test_reasons_share_out_the_tree_shap_contributions_by_input():
    frame = load_stays(FIXTURE, limit=3)
    model = default_model()
    X = model.features(frame)[:4]
    explained = model.reasons(X, X, [0] * 4, top=len(model.inputs))
    contributions = model._booster.predict(X, pred_contrib=True)
    for row, full in zip(explained, contributions):
        assert sum(reason.contribution for reason in row) == pytest.approx(full[:-1].sum(), abs=1e-3)
        assert [abs(r.contribution) for r in row] == sorted((abs(r.contribution) for r in row), reverse=True)
        assert all(reason.text for reason in row)


def test_model_save_load_round_trip(tmp_path):
    data = Dataset.from_frame(load_stays(FIXTURE))
    fitted = fit_calibrated("lightgbm", data, seed=1)
    model = export_lightgbm(fitted, {"trained_on": "fixture"})
    model.save(tmp_path / "model.json")
    loaded = SepsisRiskModel.load(tmp_path / "model.json")
    assert loaded.threshold == model.threshold and loaded.metadata == {"trained_on": "fixture"}
    assert np.array_equal(loaded.probability_from_features(data.X), model.probability_from_features(data.X))
    assert np.allclose(model.probability_from_features(data.X), fitted.probability(data.X, data.stays))


def test_the_trained_model_records_what_it_learnt_from():
    stays = load_stays(FIXTURE)
    model = train_shipped_model(stays, "fixture", seed=1)
    assert model.metadata == {
        "trained_on": "fixture",
        "stays": stays["stay_id"].nunique(),
        "hours": len(stays),
        "seed": 1,
        "date": model.metadata["date"],
        "vigil": __version__,
    }
    assert 0 < model.threshold < 1


def test_the_vitals_model_trains_on_the_vitals_features_and_round_trips(tmp_path):
    stays = load_stays(FIXTURE)
    model = train_shipped_model(stays, "fixture", seed=1, feature_set="vitals")
    assert model.feature_set == "vitals" and model.feature_names == VITALS_FEATURE_NAMES
    model.save(tmp_path / "vitals.json")
    loaded = SepsisRiskModel.load(tmp_path / "vitals.json")
    assert loaded.feature_set == "vitals" and "vitals only" in loaded.name
    changed = stays.copy()
    changed[["ICULOS", "HospAdmTime", "Unit1", "Lactate", "WBC", "EtCO2"]] = [1.0, -100.0, 1.0, 9.0, 30.0, 50.0]
    assert np.array_equal(loaded.score(changed)["PredictedProbability"], model.score(stays)["PredictedProbability"])


def test_a_file_that_is_not_a_model_is_refused(tmp_path):
    (tmp_path / "model.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a Vigil sepsis-risk model"):
        SepsisRiskModel.load(tmp_path / "model.json")
    assert (
        "--model"
        in _cli(
            "risk", "score", str(FIXTURE), str(tmp_path / "o"), "--model", str(tmp_path / "model.json"), ok=False
        ).stderr
    )


def test_malformed_psv_is_reported_with_file_and_line(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    good = sorted(FIXTURE.glob("*.psv"))[0]
    shutil.copy(good, source / good.name)
    lines = good.read_text().splitlines()
    cells = lines[3].split("|")
    cells[0] = "fast"
    (source / "p999999.psv").write_text("\n".join([lines[0], lines[1], lines[2], "|".join(cells)]) + "\n")
    error = _cli("risk", "score", str(source), str(tmp_path / "out"), ok=False).stderr
    assert "p999999.psv line 4" in error and "'fast'" in error
    missing = tmp_path / "missing"
    missing.mkdir()
    (missing / "p1.psv").write_text("HR|O2Sat\n80|97\n")
    assert "missing required columns" in _cli("risk", "score", str(missing), str(tmp_path / "o2"), ok=False).stderr


def test_shipped_model_matches_this_versions_features():
    model = default_model()
    assert model.metadata["stays"] == 6181 and 0 < model.threshold < 1
    assert (
        os.path.getsize(Path(__import__("vigil").__file__).parent / "models" / "default" / "sepsis_lightgbm.json") < 5e6
    )
    assert model.feature_set == "full" and "ICULOS" in model.inputs


def test_shipped_vitals_model_is_small_and_trained_on_the_development_set():
    model = default_vitals_model()
    assert model.metadata["stays"] == 6181 and model.feature_set == "vitals" and 0 < model.threshold < 1
    path = Path(__import__("vigil").__file__).parent / "models" / "default_vitals" / "sepsis_lightgbm.json"
    assert os.path.getsize(path) < 2e6


def test_a_booster_of_other_features_than_its_feature_set_is_refused():
    vitals = default_vitals_model()
    with pytest.raises(ValueError, match="131 features"):
        SepsisRiskModel(vitals.booster_text, vitals.calibration_x, vitals.calibration_y, vitals.threshold)
