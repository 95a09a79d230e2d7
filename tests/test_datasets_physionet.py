"""The Challenge 2019 loader on 20 real stays (a directory and a tar.gz) and on malformed files."""

from __future__ import annotations

import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vigil.datasets.physionet import (
    CHALLENGE_COLUMNS,
    LABEL,
    REQUIRED_COLUMNS,
    VITAL_METRICS,
    PsvFormatError,
    load_stays,
    read_psv,
)
from vigil.devices.replay import stay_readings
from vigil.domain import Device
from vigil.ingest.validation import validate_batch
from vigil.metrics import METRICS

FIXTURE = Path(__file__).parent / "fixtures" / "physionet2019"
STAYS = sorted(path.stem for path in FIXTURE.glob("*.psv"))
SEPTIC = {"p101327", "p102535", "p102830", "p103150", "p103577", "p104354"}
START = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def stays() -> pd.DataFrame:
    return load_stays(FIXTURE)


def reference(path: Path) -> pd.DataFrame:
    """A file read the obvious way, in the loader's layout."""
    table = pd.read_csv(path, sep="|").astype(np.float64)
    table.insert(0, "stay_id", path.stem)
    table.insert(1, "hour", np.arange(len(table)))
    return table


def header_and_rows(path: Path) -> tuple[str, list[str]]:
    header, *rows = path.read_text().splitlines()
    return header, rows


def with_field(row: str, index: int, text: str) -> str:
    fields = row.split("|")
    fields[index] = text
    return "|".join(fields)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_directory_loads_every_stay_in_order_with_float_columns(stays: pd.DataFrame) -> None:
    assert list(stays.columns) == ["stay_id", "hour", *CHALLENGE_COLUMNS]
    assert list(stays["stay_id"].unique()) == STAYS
    assert stays.index.equals(pd.RangeIndex(len(stays)))
    assert (stays[list(CHALLENGE_COLUMNS)].dtypes == np.float64).all()
    expected = pd.concat([reference(FIXTURE / f"{stay}.psv") for stay in STAYS], ignore_index=True)
    pd.testing.assert_frame_equal(stays, expected, check_dtype=False)


def test_septic_stays_and_hours(stays: pd.DataFrame) -> None:
    by_stay = stays.groupby("stay_id")
    assert set(by_stay[LABEL].max().loc[lambda septic: septic == 1].index) == SEPTIC
    assert (by_stay["hour"].apply(lambda hours: list(hours) == list(range(len(hours))))).all()


def test_tar_gz_is_read_in_place_like_the_directory(stays: pd.DataFrame, tmp_path: Path) -> None:
    archive = tmp_path / "set.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for stay in reversed(STAYS):
            tar.add(FIXTURE / f"{stay}.psv", arcname=f"training_setB/{stay}.psv")
        tar.add(FIXTURE / "README.md", arcname="training_setB/README.md")
    pd.testing.assert_frame_equal(load_stays(archive), stays)
    assert list(load_stays(archive, limit=3)["stay_id"].unique()) == STAYS[:3]


def test_limit_and_progress() -> None:
    advanced: list[int] = []
    first = load_stays(FIXTURE, limit=4, progress=advanced.append)
    assert list(first["stay_id"].unique()) == STAYS[:4]
    assert advanced == [1, 1, 1, 1]


def test_read_psv_from_a_path_or_bytes(stays: pd.DataFrame) -> None:
    path = FIXTURE / "p103577.psv"
    expected = stays[stays["stay_id"] == "p103577"].reset_index(drop=True)
    pd.testing.assert_frame_equal(read_psv(path), expected)
    pd.testing.assert_frame_equal(read_psv(path.read_bytes(), "p103577.psv"), expected)
    with pytest.raises(TypeError, match="name"):
        read_psv(path.read_bytes())


def test_unlabelled_reordered_crlf_and_extra_columns(tmp_path: Path) -> None:
    table = pd.read_csv(FIXTURE / "p102535.psv", sep="|").drop(columns=[LABEL])
    table = table[list(reversed(table.columns))].assign(Comment="x")
    text = table.to_csv(sep="|", index=False, na_rep="NaN", lineterminator="\r\n")
    stay = read_psv(write(tmp_path, "p102535.psv", text.replace("\r\n", "\r\n\r\n", 2)))
    assert list(stay.columns) == ["stay_id", "hour", *REQUIRED_COLUMNS]
    expected = reference(FIXTURE / "p102535.psv").drop(columns=[LABEL])
    pd.testing.assert_frame_equal(stay, expected, check_dtype=False)


def test_files_with_different_headers_keep_stay_order(tmp_path: Path) -> None:
    for stay in STAYS[:3]:
        write(tmp_path, f"{stay}.psv", (FIXTURE / f"{stay}.psv").read_text())
    reordered = pd.read_csv(FIXTURE / f"{STAYS[1]}.psv", sep="|")
    reordered[list(reversed(reordered.columns))].to_csv(tmp_path / f"{STAYS[1]}.psv", sep="|", index=False)
    pd.testing.assert_frame_equal(load_stays(tmp_path), load_stays(FIXTURE, limit=3))


def test_header_only_file_is_a_stay_without_hours(tmp_path: Path) -> None:
    header, _ = header_and_rows(FIXTURE / "p102535.psv")
    assert read_psv(write(tmp_path, "p1.psv", header + "\n")).empty


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda header, rows: "", r"^p9\.psv: empty file$"),
        (lambda header, rows: " \n\n", r"^p9\.psv: empty file$"),
        (
            lambda header, rows: "\n".join([header.replace("HR|", "").replace("|Lactate", ""), *rows]),
            r"^p9\.psv line 1: missing required columns: HR, Lactate$",
        ),
        (
            lambda header, rows: "\n".join([header, *rows[:3], with_field(rows[3], 3, "n/a"), *rows[4:]]),
            r"^p9\.psv line 5, column SBP: 'n/a' is not a number$",
        ),
        (
            lambda header, rows: "\n".join([header, rows[0], rows[1] + "|1", *rows[2:]]),
            r"^p9\.psv line 3: expected 41 fields, found 42$",
        ),
        (
            lambda header, rows: "\n".join([header, *rows[:6], rows[6].rsplit("|", 1)[0], *rows[7:]]),
            r"^p9\.psv line 8: expected 41 fields, found 40$",
        ),
        (
            lambda header, rows: "\n".join([header, rows[0], "", rows[1] + "|1|2", *rows[2:]]),
            r"^p9\.psv line 4: expected 41 fields, found 43$",
        ),
    ],
    ids=["empty", "blank", "missing-columns", "non-numeric", "extra-field", "missing-field", "after-blank-line"],
)
def test_malformed_files_name_the_file_and_line(tmp_path: Path, edit, message: str) -> None:
    header, rows = header_and_rows(FIXTURE / "p103150.psv")
    with pytest.raises(PsvFormatError, match=message):
        read_psv(write(tmp_path, "p9.psv", edit(header, rows)))


def test_a_bad_file_among_good_ones_is_named(tmp_path: Path) -> None:
    for stay in STAYS[:5]:
        write(tmp_path, f"{stay}.psv", (FIXTURE / f"{stay}.psv").read_text())
    header, rows = header_and_rows(FIXTURE / f"{STAYS[3]}.psv")
    rows[5] = with_field(rows[5], 1, "12,5")
    write(tmp_path, f"{STAYS[3]}.psv", "\n".join([header, *rows]) + "\n")
    with pytest.raises(PsvFormatError, match=rf"^{STAYS[3]}\.psv line 7, column O2Sat: '12,5' is not a number$"):
        load_stays(tmp_path)


def test_not_a_stay_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no \.psv files"):
        load_stays(tmp_path)
    with pytest.raises(ValueError, match="not a directory"):
        load_stays(write(tmp_path, "notes.txt", "hello"))


def test_stay_readings_replay_every_measured_vital(stays: pd.DataFrame) -> None:
    stay = stays[stays["stay_id"] == "p103577"]
    readings = stay_readings(stay, START)
    measured = stay[list(VITAL_METRICS)].notna()
    assert len(readings) == measured.to_numpy().sum()
    first_hour = stay[measured.any(axis=1)].iloc[0]
    first_column = next(column for column in VITAL_METRICS if not np.isnan(first_hour[column]))
    metric = VITAL_METRICS[first_column]
    first_time = START + timedelta(hours=int(first_hour["hour"]))
    assert readings[0] == {
        "metric": metric,
        "value": first_hour[first_column],
        "unit": METRICS[metric].unit,
        "time": first_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seq": readings[0]["seq"],
    }
    assert readings[-1]["time"] == (START + timedelta(hours=int(stay["hour"].max()))).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len({(reading["metric"], reading["seq"]) for reading in readings}) == len(readings)
    accepted, rejected, _ = validate_batch(readings, Device("d1", "p1", "icu"), now=START + timedelta(days=3))
    assert (len(accepted), rejected) == (len(readings), [])


def test_stay_readings_needs_one_stay_and_an_aware_start(stays: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="one stay"):
        stay_readings(stays, START)
    with pytest.raises(ValueError, match="timezone"):
        stay_readings(stays[stays["stay_id"] == STAYS[0]], START.replace(tzinfo=None))
