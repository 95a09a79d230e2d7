"""A GRU glucose forecaster trained across patients and fine-tuned on each patient's own days (needs PyTorch).

The network reads the last ``SEQUENCE_STEPS`` CGM steps of glucose, its change, insulin and carbs on board and
their recent action (all in mg/dL, scaled), then adds the insulin and carb action already known to come over each
horizon, and predicts the glucose change at 30 and 60 minutes together. Training is Adam on mean squared error;
the epoch kept is the one with the lowest loss on the last ``VALIDATION_SHARE`` of each patient's training days,
so fine-tuning keeps the population network when training on the patient does not help there.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vigil.glucose.forecast import HORIZONS, DaysWindow, PatientSeries, check_horizon

SEQUENCE_STEPS = 36
"""Three hours of 5-minute steps."""
VALIDATION_SHARE = 0.2
GLUCOSE_CENTRE, GLUCOSE_SCALE, CHANGE_SCALE, EFFECT_SCALE = 140.0, 50.0, 10.0, 50.0
STEP_EFFECTS = ("insulin_on_board", "carbs_on_board", "insulin_recent", "carbs_recent")
KNOWN_AHEAD = tuple(f"{kind}_next_{h}" for h in HORIZONS for kind in ("insulin", "carbs"))


def _torch() -> Any:
    import torch

    return torch


def _sequences(series: PatientSeries, now_minutes: ArrayLike) -> tuple[NDArray, NDArray]:
    """Per forecast time: the scaled step inputs (time, steps, inputs) and the known-ahead effects (time, 4)."""
    index = series.index_of(now_minutes)
    steps = np.clip(index[:, None] + np.arange(1 - SEQUENCE_STEPS, 1), 0, None)
    glucose = series.glucose
    change = np.diff(glucose, prepend=glucose[0])
    per_step = np.stack(
        [
            (glucose - GLUCOSE_CENTRE) / GLUCOSE_SCALE,
            change / CHANGE_SCALE,
            *(series.effects[name] / EFFECT_SCALE for name in STEP_EFFECTS),
        ],
        axis=1,
    )
    ahead = np.column_stack([series.effects[name][index] / EFFECT_SCALE for name in KNOWN_AHEAD])
    return per_step[steps].astype(np.float32), ahead.astype(np.float32)


def _examples(windows: Sequence[DaysWindow]) -> tuple[NDArray, NDArray, NDArray]:
    """Inputs and the scaled glucose change at every horizon, for every forecast time of ``windows``."""
    longest = max(HORIZONS)
    parts = []
    for window in windows:
        now = window.origins(longest)
        steps, ahead = _sequences(window.series, now)
        glucose = window.series.glucose_at(now)
        change = np.column_stack([window.series.glucose_at(now + h) - glucose for h in HORIZONS]) / GLUCOSE_SCALE
        parts.append((steps, ahead, change.astype(np.float32)))
    return tuple(np.concatenate(part) for part in zip(*parts))  # type: ignore[return-value]


def _split(windows: Sequence[DaysWindow]) -> tuple[list[DaysWindow], list[DaysWindow]]:
    """Each window's first part for training, its last ``VALIDATION_SHARE`` for choosing the epoch."""
    cuts = [w.end - VALIDATION_SHARE * (w.end - w.start) for w in windows]
    return (
        [DaysWindow(w.series, w.start, cut) for w, cut in zip(windows, cuts)],
        [DaysWindow(w.series, cut, w.end) for w, cut in zip(windows, cuts)],
    )


def _network(hidden_size: int) -> Any:
    torch = _torch()
    nn = torch.nn

    class GlucoseGru(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = nn.GRU(2 + len(STEP_EFFECTS), hidden_size, batch_first=True)
            self.head = nn.Sequential(
                nn.Linear(hidden_size + len(KNOWN_AHEAD), hidden_size), nn.ReLU(), nn.Linear(hidden_size, len(HORIZONS))
            )

        def forward(self, steps: Any, ahead: Any) -> Any:
            _, last = self.gru(steps)
            return self.head(torch.cat([last[-1], ahead], dim=1))

    return GlucoseGru()


@dataclass
class GruForecaster:
    """``fit`` trains across patients; ``personalised`` fine-tunes a copy on one patient's training days."""

    hidden_size: int = 32
    epochs: int = 20
    fine_tune_epochs: int = 10
    learning_rate: float = 3e-3
    fine_tune_learning_rate: float = 5e-4
    batch_size: int = 256
    seed: int = 0
    threads: int = 1
    network: Any = field(default=None, repr=False)

    def fit(self, windows: Sequence[DaysWindow]) -> Self:
        if not windows:
            raise ValueError("windows: no training days to fit on")
        from vigil.models.recurrent import _torch_settings

        with _torch_settings(self.threads, self.seed):
            self.network = _network(self.hidden_size)
            self._train(windows, self.epochs, self.learning_rate)
        return self

    def personalised(self, window: DaysWindow) -> GruForecaster:
        if self.network is None:
            raise RuntimeError("GruForecaster is not fitted: call fit first")
        from vigil.models.recurrent import _torch_settings

        tuned = copy.deepcopy(self)
        with _torch_settings(self.threads, self.seed):
            tuned._train([window], self.fine_tune_epochs, self.fine_tune_learning_rate)
        return tuned

    def predict(self, series: PatientSeries, now_minutes: ArrayLike, horizon_minutes: int) -> NDArray[np.float64]:
        check_horizon(horizon_minutes)
        if self.network is None:
            raise RuntimeError("GruForecaster is not fitted: call fit first")
        from vigil.models.recurrent import _torch_settings

        torch = _torch()
        steps, ahead = _sequences(series, now_minutes)
        self.network.eval()
        with _torch_settings(self.threads, self.seed), torch.no_grad():
            change = self.network(torch.from_numpy(steps), torch.from_numpy(ahead)).numpy()
        return series.glucose_at(now_minutes) + GLUCOSE_SCALE * change[:, HORIZONS.index(horizon_minutes)]

    def _train(self, windows: Sequence[DaysWindow], epochs: int, learning_rate: float) -> None:
        """Adam for ``epochs``; the network ends with the weights (initial ones included) of least validation loss."""
        torch = _torch()
        training, validation = (tuple(torch.from_numpy(a) for a in _examples(part)) for part in _split(windows))
        optimiser = torch.optim.Adam(self.network.parameters(), lr=learning_rate)
        best_loss, best_state = self._loss(validation), copy.deepcopy(self.network.state_dict())
        for _ in range(epochs):
            self.network.train()
            for batch in torch.randperm(len(training[0])).split(self.batch_size):
                optimiser.zero_grad()
                loss = torch.nn.functional.mse_loss(
                    self.network(training[0][batch], training[1][batch]), training[2][batch]
                )
                loss.backward()
                optimiser.step()
            loss = self._loss(validation)
            if loss < best_loss:
                best_loss, best_state = loss, copy.deepcopy(self.network.state_dict())
        self.network.load_state_dict(best_state)

    def _loss(self, examples: tuple[Any, Any, Any]) -> float:
        torch = _torch()
        self.network.eval()
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(self.network(examples[0], examples[1]), examples[2]))
