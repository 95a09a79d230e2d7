"""PhysioNet/CinC Challenge 2019 stays (pipe-separated, one row per ICU hour): the format, loading and checking."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from os import PathLike
from pathlib import Path, PurePosixPath
from typing import NoReturn

import numpy as np
import pandas as pd

from vigil.errors import InvalidInput
from vigil.metrics import MetricName

VITALS = ("HR", "O2Sat", "Temp", "SBP", "MAP", "DBP", "Resp", "EtCO2")
LABS = (
    "BaseExcess", "HCO3", "FiO2", "pH", "PaCO2", "SaO2", "AST", "BUN", "Alkalinephos", "Calcium",
    "Chloride", "Creatinine", "Bilirubin_direct", "Glucose", "Lactate", "Magnesium", "Phosphate",
    "Potassium", "Bilirubin_total", "TroponinI", "Hct", "Hgb", "PTT", "WBC", "Fibrinogen", "Platelets",
)  # fmt: skip
DEMOGRAPHICS = ("Age", "Gender", "Unit1", "Unit2", "HospAdmTime", "ICULOS")
LABEL = "SepsisLabel"
REQUIRED_COLUMNS = VITALS + LABS + DEMOGRAPHICS
"""Every Challenge file has these; ``SepsisLabel`` is optional (test sets have no labels)."""
CHALLENGE_COLUMNS = REQUIRED_COLUMNS + (LABEL,)
STAY_ID = "stay_id"
HOUR = "hour"

MISSING_TOKENS = frozenset({"NaN", "nan", ""})
"""Cell texts that mean "not measured"; any other cell must be a number."""

VITAL_METRICS = {
    "HR": MetricName.HEART_RATE,
    "O2Sat": MetricName.SPO2,
    "Temp": MetricName.BODY_TEMP,
    "SBP": MetricName.SYSTOLIC_BP,
    "DBP": MetricName.DIASTOLIC_BP,
    "Resp": MetricName.RESP_RATE,
    "Glucose": MetricName.GLUCOSE,
}
"""Challenge columns that Vigil ingests, mapped to metric names (units already canonical: Cel, mg/dL, ...)."""

Progress = Callable[[int], None]
"""Called with the number of stays just read (1 at a time), e.g. ``partial(rich_progress.advance, task)``."""


class PsvFormatError(InvalidInput):
    """Data that is not in the Challenge format; the message names the file and, where known, the line and column."""

    code = "invalid_file"


@dataclass(frozen=True)
class PsvFile:
    """One stay's file, as read from a directory or an archive."""

    name: str
    data: bytes

    @property
    def stay_id(self) -> str:
        return PurePosixPath(self.name).stem


@dataclass(frozen=True)
class _SplitFile:
    """A file's header (the column names of line 1) and its data lines, normalised to one row per line."""

    source: PsvFile
    columns: tuple[str, ...]
    body: bytes

    @property
    def rows(self) -> int:
        return self.body.count(b"\n")


def read_psv(source: str | PathLike[str] | bytes, name: str | None = None) -> pd.DataFrame:
    """One stay's file as a frame shaped like ``load_stays``'s; ``name`` (e.g. "p100001.psv") is required for bytes."""
    if isinstance(source, bytes):
        if name is None:
            raise TypeError("read_psv needs a name (the file name, e.g. 'p100001.psv') when given bytes")
        return parse_stays([PsvFile(name, source)])
    path = Path(source)
    return parse_stays([PsvFile(name or path.name, path.read_bytes())])


def load_stays(
    path: str | PathLike[str], *, limit: int | None = None, progress: Progress | None = None
) -> pd.DataFrame:
    """All stays of a directory of .psv files or a tar archive (.tar.gz read in place), sorted by file name.

    Returns one long frame: ``stay_id`` (file stem), ``hour`` (0-based row within the stay), then the
    Challenge columns in their canonical order as float64 with NaN for missing (``SepsisLabel`` only when
    the files have it), ordered by stay then hour, with a fresh RangeIndex. ``limit`` keeps the first N
    stays by name. Columns not in the Challenge format are ignored. Raises ``PsvFormatError``.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    return parse_stays(read_files(Path(path), limit, progress))


def read_files(path: Path, limit: int | None = None, progress: Progress | None = None) -> list[PsvFile]:
    """The raw .psv files of a directory or tar archive, sorted by name, the first ``limit`` of them."""
    if path.is_dir():
        files = _directory_files(path, limit)
    elif path.is_file() and tarfile.is_tarfile(path):
        files = _archive_files(path, limit)
    else:
        raise PsvFormatError(f"{path}: not a directory of .psv files or a tar archive")
    read = list(_reported(files, progress))
    if not read and limit != 0:
        raise PsvFormatError(f"{path}: no .psv files")
    return sorted(read, key=lambda psv: psv.name)


def _reported(files: Iterable[PsvFile], progress: Progress | None) -> Iterator[PsvFile]:
    for psv in files:
        if progress is not None:
            progress(1)
        yield psv


def _directory_files(directory: Path, limit: int | None) -> Iterator[PsvFile]:
    for path in sorted(directory.glob("*.psv"))[:limit]:
        yield PsvFile(path.name, path.read_bytes())


def _archive_files(archive: Path, limit: int | None) -> Iterator[PsvFile]:
    """Members are read in archive order (the gzip stream is never rewound per member)."""
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".psv")]
        names = [PurePosixPath(m.name).name for m in members]
        if len(set(names)) != len(names):
            raise PsvFormatError(f"{archive}: two members have the same file name")
        wanted = set(sorted(names)[:limit])
        for member, name in zip(members, names):
            if name in wanted:
                yield PsvFile(name, tar.extractfile(member).read())  # type: ignore[union-attr]


def parse_stays(files: list[PsvFile]) -> pd.DataFrame:
    """Parse files (in the given order) into one long frame; files sharing a header are parsed in one C call."""
    if not files:
        return pd.DataFrame(columns=[STAY_ID, HOUR, *REQUIRED_COLUMNS])
    groups: dict[tuple[str, ...], list[_SplitFile]] = {}
    for psv in files:
        split = _split(psv)
        groups.setdefault(split.columns, []).append(split)
    frames = [_parse_group(group) for group in groups.values()]
    if len(frames) == 1:
        return frames[0]
    order = {psv.stay_id: rank for rank, psv in enumerate(files)}
    frame = pd.concat(frames, ignore_index=True)
    ranks = frame[STAY_ID].map(order).to_numpy()
    return frame.iloc[np.lexsort((frame[HOUR].to_numpy(), ranks))].reset_index(drop=True)


def _split(psv: PsvFile) -> _SplitFile:
    """Check the header and normalise the data lines (no CR, no blank lines, a final newline)."""
    if not psv.data.strip():
        raise PsvFormatError(f"{psv.name}: empty file")
    header, _, body = psv.data.partition(b"\n")
    columns, problem = _read_header(header)
    if problem:
        raise PsvFormatError(f"{psv.name} line 1: {problem}")
    lines = body.replace(b"\r", b"").split(b"\n")
    return _SplitFile(psv, columns, b"".join(line + b"\n" for line in lines if line.strip(b" \t")))


@lru_cache(maxsize=16)
def _read_header(header: bytes) -> tuple[tuple[str, ...], str | None]:
    """The column names of a header line and what is wrong with them, if anything (cached: files share headers)."""
    columns = tuple(name.strip() for name in header.decode("utf-8", errors="replace").split("|"))
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        return columns, f"missing required columns: {', '.join(missing)}"
    repeated = sorted({column for column in columns if columns.count(column) > 1})
    if repeated:
        return columns, f"repeated columns: {', '.join(repeated)}"
    return columns, None


def _parse_group(group: list[_SplitFile]) -> pd.DataFrame:
    """Parse files with the same header at once; on any doubt, find the first bad line of the first bad file."""
    columns = group[0].columns
    for split in group:
        if split.body.count(b"|") != (len(columns) - 1) * split.rows:
            _raise_first_error([split])
    try:
        table = _read_table(b"".join(split.body for split in group), columns)
    except ValueError as error:  # pandas' ParserError is a ValueError too
        _raise_first_error(group, error)
    rows = np.array([split.rows for split in group])
    starts = np.repeat(np.cumsum(rows) - rows, rows)
    table.insert(0, STAY_ID, np.repeat([split.source.stay_id for split in group], rows))
    table.insert(1, HOUR, np.arange(rows.sum()) - starts)
    return table


def _read_table(body: bytes, columns: tuple[str, ...]) -> pd.DataFrame:
    """The Challenge columns of header-less pipe-separated lines as float64, in canonical order."""
    known = [column for column in CHALLENGE_COLUMNS if column in columns]
    if not body:
        return pd.DataFrame({column: pd.Series(dtype=np.float64) for column in known})
    table = pd.read_csv(
        io.BytesIO(body), sep="|", header=None, names=list(columns), usecols=known, dtype=np.float64,
        na_values=sorted(MISSING_TOKENS), keep_default_na=False, engine="c",
    )  # fmt: skip
    return table[known]


def _raise_first_error(group: list[_SplitFile], cause: Exception | None = None) -> NoReturn:
    for split in group:
        message = _first_line_error(split)
        if message:
            raise PsvFormatError(message) from cause
    names = ", ".join(split.source.name for split in group[:3])
    raise PsvFormatError(f"{names}{' ...' if len(group) > 3 else ''}: not in the Challenge format ({cause})")


def _first_line_error(split: _SplitFile) -> str | None:
    """Scan the original lines (numbered as in an editor) for a wrong field count or a non-numeric cell."""
    lines = split.source.data.decode("utf-8", errors="replace").split("\n")
    for number, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")
        if not line.strip(" \t"):
            continue
        cells = line.split("|")
        if len(cells) != len(split.columns):
            return f"{split.source.name} line {number}: expected {len(split.columns)} fields, found {len(cells)}"
        for column, cell in zip(split.columns, cells):
            if column in CHALLENGE_COLUMNS and not _is_number(cell):
                return f"{split.source.name} line {number}, column {column}: {cell!r} is not a number"
    return None


def _is_number(cell: str) -> bool:
    if cell.strip() in MISSING_TOKENS:
        return True
    try:
        float(cell)
    except ValueError:
        return False
    return "_" not in cell
