"""What the sepsis-risk benchmarks share: the command line (DATA, --out), the development set and its folds, saving a figure."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vigil.datasets.physionet import load_stays
from vigil.models.evaluation import Dataset, patient_folds

FOLDS = 5
SEED = 0
"""The folds of ``vigil risk evaluate``'s default run (5 patient-level folds, seed 0)."""


def development_set(description: str, default_figure: str) -> tuple[argparse.Namespace, Dataset, np.ndarray]:
    """Parse ``DATA [--out FIGURE]``; the stays' features and labels, and each row's fold."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, default=Path(default_figure))
    args = parser.parse_args()
    data = Dataset.from_frame(load_stays(args.data))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    return args, data, patient_folds(data, FOLDS, SEED)


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
