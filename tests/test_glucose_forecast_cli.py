"""The `vigil glucose forecast-eval` command: JSON on stdout, clear errors for bad options."""

import orjson
import pytest
from typer.testing import CliRunner

from vigil.cli import app


def test_unknown_patient_names_the_option():
    result = CliRunner().invoke(app, ["glucose", "forecast-eval", "--patients", "adult#001,adult#099", "--json"])
    assert result.exit_code == 2
    assert "--patients" in result.output and "adult#099" in result.output


@pytest.mark.slow
def test_forecast_eval_json_on_two_patients(tmp_path):
    saved = tmp_path / "forecast.json"
    result = CliRunner().invoke(app, ["glucose", "forecast-eval", "--patients", "adult#001,child#002", "--train-days",
                                      "1", "--test-days", "1", "--json", "--save", str(saved)])
    assert result.exit_code == 0, result.output
    value = orjson.loads(result.stdout)
    assert value == orjson.loads(saved.read_bytes())
    assert value["patients"] == ["adult#001", "child#002"]
    persistence = value["models"]["persistence"]["overall"]["30"]
    assert persistence["rmse_ratio_to_persistence"] == 1.0 and persistence["n"] > 400
    assert set(value["models"]["persistence"]["groups"]) == {"adult", "child"}
