"""Clarke error grid: the clinical-risk zone (A-E) of each (reference, predicted) glucose pair, in mg/dL.

Zones follow Clarke et al., Diabetes Care 1987: A within 20 % (or both below 70), B benign, C overcorrection,
D failure to detect, E erroneous treatment. Boundaries as in the widely used reference implementation.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

ZONES = ("A", "B", "C", "D", "E")


def clarke_zones(reference: ArrayLike, predicted: ArrayLike) -> NDArray[np.str_]:
    """The zone letter of every pair; raises ValueError when the arrays differ in shape."""
    x, y = np.asarray(reference, dtype=float), np.asarray(predicted, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"reference and predicted need the same shape; got {x.shape} and {y.shape}")
    zone_a = ((x <= 70) & (y <= 70)) | ((y <= 1.2 * x) & (y >= 0.8 * x))
    zone_e = ((x >= 180) & (y <= 70)) | ((x <= 70) & (y >= 180))
    zone_c = ((x >= 70) & (x <= 290) & (y >= x + 110)) | ((x >= 130) & (x <= 180) & (y <= 7 / 5 * x - 182))
    zone_d = (
        ((x >= 240) & (y >= 70) & (y <= 180))
        | ((x <= 175 / 3) & (y >= 70) & (y <= 180))
        | ((x >= 175 / 3) & (x <= 70) & (y >= 6 / 5 * x))
    )
    return np.select([zone_a, zone_e, zone_c, zone_d], ["A", "E", "C", "D"], default="B")


def clarke_ab_share(reference: ArrayLike, predicted: ArrayLike) -> float:
    """Share of pairs in zones A or B (clinically acceptable)."""
    zones = clarke_zones(reference, predicted)
    if zones.size == 0:
        raise ValueError("reference: no pairs to grade")
    return float(np.isin(zones, ("A", "B")).mean())
