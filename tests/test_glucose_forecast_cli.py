"""The `vigil glucose forecast-eval` command and the forecast report: JSON on stdout, table, figure, clear errors."""

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from vigil.cli import app
from vigil.glucose.forecast_report import markdown_table


def test_unknown_patient_names_the_option():
    result = CliRunner().invoke(app, ["glucose", "forecast-eval", "--patients", "adult#001,adult#099", "--json"])
    assert result.exit_code == 2
    assert "--patients" in result.output and "adult#099" in result.output


@pytest.mark.slow
def test_forecast_eval_json_on_two_patients(tmp_path):
    saved = tmp_path / "forecast.json"
    result = CliRunner().invoke(
        app,
        [
            "glucose",
            "forecast-eval",
            "--patients",
            "adult#001,child#002",
            "--train-days",
            "1",
            "--test-days",
            "1",
            "--json",
            "--save",
            str(saved),
            "--save-band",
            str(tmp_path / "band.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    value = orjson.loads(result.stdout)
    assert value == orjson.loads(saved.read_bytes())
    assert value["patients"] == ["adult#001", "child#002"]
    persistence = value["models"]["persistence"]["overall"]["30"]
    assert persistence["rmse_ratio_to_persistence"] == 1.0 and persistence["n"] > 400
    assert set(value["models"]["persistence"]["groups"]) == {"adult", "child"}
    band = orjson.loads((tmp_path / "band.json").read_bytes())
    effects = value["models"]["effects (chart settings)"]["overall"]
    assert band["horizons_min"] == [30, 60] and band["rmse_mg_dl"][0] == round(effects["30"]["rmse"], 2)


def synthetic_result() -> dict:
    """An evaluation of persistence and ARX on two synthetic patients, shaped as `forecast-eval` saves it."""
    from tests.test_glucose_forecast import series_of
    from vigil.glucose.forecast_eval import evaluate_forecasts, model_specs

    cohort = [
        series_of(lambda t, p=p: 140 + 50 * np.sin(2 * np.pi * t / 200 + p), days=2.0, name=name)
        for name, p in (("adult#001", 0.0), ("child#003", 2.0))
    ]
    specs = {name: spec for name, spec in model_specs().items() if name in ("persistence", "ARX (per patient)")}
    models = evaluate_forecasts(cohort, 1, specs)
    return {
        "patients": ["adult#001", "child#003"],
        "train_days": 1,
        "test_days": 1,
        "seed": 0,
        "horizons": [30, 60],
        "reference": "CGM",
        "models": models,
    }


def test_evaluation_table_and_figure(tmp_path):
    result = synthetic_result()
    arx = result["models"]["ARX (per patient)"]
    assert arx["overall"]["30"]["rmse_ratio_to_persistence"] < 0.01
    assert arx["groups"]["child"]["60"]["rmse"] == arx["patients"]["child#003"]["60"]["rmse"]
    table = markdown_table(result).splitlines()
    assert table[0].startswith("| model | RMSE 30 min | RMSE 60 min |") and len(table) == 4
    assert table[2].startswith("| persistence |") and table[2].endswith("| 1.00 | 1.00 |")
    saved = tmp_path / "forecast.json"
    saved.write_bytes(orjson.dumps(result))
    figures = CliRunner().invoke(app, ["report", "figures", "--out", str(tmp_path), "--glucose-forecast", str(saved)])
    assert figures.exit_code == 0, figures.output
    assert (tmp_path / "glucose-forecast.png").stat().st_size > 10_000


def test_figures_of_a_missing_run_name_the_option(tmp_path):
    result = CliRunner().invoke(
        app, ["report", "figures", "--out", str(tmp_path), "--glucose-forecast", str(tmp_path / "none.json")]
    )
    assert result.exit_code == 2 and "--glucose-forecast" in result.output
