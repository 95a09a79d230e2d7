"""Score a directory of Challenge PSV files, writing the Challenge's own output format for each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from vigil.datasets.physionet import STAY_ID, parse_stays, read_files
from vigil.models.risk import SepsisRiskModel

OUTPUT_HEADER = "PredictedProbability|PredictedLabel"


def score_directory(
    in_dir: Path, out_dir: Path, model: SepsisRiskModel, progress: Callable[[int], None] | None = None
) -> int:
    """For every .psv in ``in_dir`` a file of the same name in ``out_dir``, one row per input row; returns the count."""
    files = read_files(in_dir, progress=progress)
    frame = parse_stays(files)
    scores = model.score(frame)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows_by_stay = {stay: rows for stay, rows in frame.groupby(STAY_ID, sort=False).indices.items()}
    for psv in files:
        rows = rows_by_stay.get(psv.stay_id, np.array([], dtype=int))
        stay_scores = scores.iloc[rows]
        lines = [OUTPUT_HEADER] + [
            f"{p:.3f}|{label}" for p, label in zip(stay_scores["PredictedProbability"], stay_scores["PredictedLabel"])
        ]
        (out_dir / Path(psv.name).name).write_text("\n".join(lines) + "\n")
    return len(files)
