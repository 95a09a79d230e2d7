"""Reproducible randomness: every random stream in the simulated ward derives from named seed parts."""

from __future__ import annotations

import numpy as np


def _entropy(parts: tuple[int | str, ...]) -> list[int]:
    """Each part as (type tag, length, content) so that different part lists never collide."""
    words: list[int] = []
    for part in parts:
        content = list(part.encode()) if isinstance(part, str) else [int(part)]
        words += [int(isinstance(part, str)), len(content), *content]
    return words


def rng_for(*parts: int | str) -> np.random.Generator:
    """A numpy Generator determined by its parts: rng_for(seed, 'p01', 'wearable') is always the same stream."""
    return np.random.default_rng(np.random.SeedSequence(_entropy(parts)))


def seed_for(*parts: int | str) -> int:
    """A 32-bit integer seed determined by its parts, for libraries that take a plain seed."""
    return int(np.random.SeedSequence(_entropy(parts)).generate_state(1)[0])
