"""The recurrent sepsis-risk model: a GRU reads each ICU stay hour by hour, so an hour's score uses only its past.

``GruRisk`` follows the interface of ``vigil.models.zoo``. Its rows are the causal hourly features; the rows of a
stay must be contiguous and in hour order (contiguity is checked, hour order is trusted). Missing values are
imputed with the training median and every feature is mapped to the normal score of its training quantile
(``preprocessing.normal_scores``, kept in ``preprocessing``); missingness itself is already among the features. The
network is input -> linear -> ReLU -> dropout -> one-layer unidirectional GRU -> dropout -> linear, one logit
per hour, trained with binary cross-entropy (septic hours weighted by the square root of the class ratio)
and weight decay on mini-batches of stays, and stopped early on a patient-level validation split. Needs
PyTorch (the ``[deep]`` extra).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from sklearn.pipeline import Pipeline
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from vigil.models.preprocessing import Matrix, normal_scores, stay_holdout


@dataclass(frozen=True)
class StaySegments:
    """Where each stay's rows start and end in a matrix whose stays are contiguous blocks of rows."""

    starts: NDArray[np.int64]
    ends: NDArray[np.int64]

    @classmethod
    def of(cls, stays: NDArray) -> StaySegments:
        """Raises ValueError when a stay's rows are split into more than one block."""
        stays = np.asarray(stays)
        if stays.ndim != 1 or len(stays) == 0:
            raise ValueError("stays must be a non-empty 1-d array with one stay id per row")
        starts = np.flatnonzero(np.r_[True, stays[1:] != stays[:-1]])
        ids, runs = np.unique(stays[starts], return_counts=True)
        if (runs > 1).any():
            split = ", ".join(map(str, ids[runs > 1][:5]))
            raise ValueError(
                f"the rows of each stay must be contiguous and in hour order; {int((runs > 1).sum())} stays are "
                f"split into several blocks of rows (e.g. {split}): sort the rows by stay, then hour"
            )
        return cls(starts.astype(np.int64), np.r_[starts[1:], len(stays)].astype(np.int64))

    @property
    def lengths(self) -> NDArray[np.int64]:
        return self.ends - self.starts

    def subset(self, chosen: NDArray) -> StaySegments:
        return StaySegments(self.starts[chosen], self.ends[chosen])

    def batches(self, stays_per_batch: int, order: NDArray[np.int64]) -> list[StaySegments]:
        """The stays in ``order``, ``stays_per_batch`` at a time."""
        return [self.subset(chunk) for chunk in np.array_split(order, max(1, -(-len(order) // stays_per_batch)))]

    def rows(self) -> NDArray[np.int64]:
        """The stays' row numbers, stay after stay: the order of ``padded(...)[hours()]``."""
        return np.concatenate([np.arange(start, end) for start, end in zip(self.starts, self.ends)])

    def padded(self, rows: torch.Tensor) -> torch.Tensor:
        """The stays' rows as (stays, longest stay, ...), zeros after each stay's end."""
        return pad_sequence([rows[start:end] for start, end in zip(self.starts, self.ends)], batch_first=True)

    def hours(self) -> torch.Tensor:
        """The (stays, longest stay) mask of the real hours in ``padded``."""
        lengths = torch.from_numpy(self.lengths)
        return torch.arange(int(lengths.max()))[None, :] < lengths[:, None]


class GruNetwork(nn.Module):
    """Features per hour -> one risk logit per hour; unidirectional, so hour t sees only hours <= t."""

    def __init__(self, features: int, hidden_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.embed = nn.Linear(features, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(hidden_size, hidden_size, num_layers=1, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, hours: torch.Tensor) -> torch.Tensor:
        """(stays, hours, features) -> (stays, hours) logits; the padding after a stay's end never reaches it."""
        states, _ = self.gru(self.dropout(torch.relu(self.embed(hours))))
        return self.head(self.dropout(states)).squeeze(-1)


class GruRisk:
    """A GRU over each stay's hourly features; ``score`` gives P(sepsis) per row (class-weighted, so uncalibrated)."""

    name = "gru"
    fits_every_row = True
    cross_fitted = False

    def __init__(
        self,
        seed: int = 0,
        *,
        hidden_size: int = 32,
        dropout: float = 0.3,
        weight_decay: float = 1e-4,
        max_epochs: int = 8,
        patience: int = 2,
        stays_per_batch: int = 64,
        learning_rate: float = 1e-3,
        validation_fraction: float = 0.1,
        threads: int = 2,
    ) -> None:
        self.seed = seed
        self.hidden_size = hidden_size
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.stays_per_batch = stays_per_batch
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.threads = threads
        self.preprocessing: Pipeline | None = None
        self.network: GruNetwork | None = None
        self.positive_weight: float | None = None
        self._curve: dict[str, list[float]] = {"train_bce": [], "validation_bce": []}

    def fit(self, X: Matrix, y: NDArray[np.int8], stays: NDArray) -> GruRisk:
        """Train on all stays but a seeded 10 % held out for early stopping; the best epoch's weights are kept."""
        segments = StaySegments.of(stays)
        if not len(X) == len(y) == len(stays):
            raise ValueError(f"X, y and stays need one entry per row; got {len(X)}, {len(y)} and {len(stays)}")
        if len(segments.starts) < 2:
            raise ValueError("fit needs at least 2 stays (a share of them is held out for early stopping)")
        validation_rows = stay_holdout(np.asarray(stays), fraction=self.validation_fraction, seed=self.seed)
        validation = validation_rows[segments.starts]
        training_labels = np.asarray(y)[~validation_rows]
        positives = int(training_labels.sum())
        self.positive_weight = np.sqrt((len(training_labels) - positives) / positives) if positives else 1.0
        self.preprocessing = normal_scores(self.seed).fit(X[~validation_rows])
        features = self._features(X)
        labels = torch.from_numpy(np.asarray(y, dtype=np.float32))
        with _torch_settings(self.threads, self.seed):
            self.network = GruNetwork(features.shape[1], self.hidden_size, self.dropout)
            self._curve = self._train(features, labels, segments.subset(~validation), segments.subset(validation))
        return self

    def score(self, X: Matrix, stays: NDArray) -> NDArray[np.float64]:
        """P(sepsis) per row, in the input's order; a row's score depends only on its stay's rows up to it."""
        if self.network is None:
            raise RuntimeError("GruRisk is not fitted: call fit first")
        segments = StaySegments.of(stays)
        if len(X) != len(stays):
            raise ValueError(f"X and stays need one entry per row; got {len(X)} and {len(stays)}")
        features = self._features(X)
        scores = np.empty(len(X), dtype=np.float64)
        self.network.eval()
        with _torch_settings(self.threads, self.seed), torch.no_grad():
            for batch in self._evaluation_batches(segments):
                scores[batch.rows()] = torch.sigmoid(self.network(batch.padded(features))[batch.hours()]).numpy()
        return scores

    def loss_curve(self) -> dict[str, list[float]]:
        """Per epoch: the mean class-weighted BCE per hour on the training stays and on the held-out stays."""
        return {name: list(values) for name, values in self._curve.items()}

    def _features(self, X: Matrix) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.preprocessing.transform(X), dtype=np.float32))

    def _evaluation_batches(self, segments: StaySegments) -> list[StaySegments]:
        """Larger batches of stays of similar length (little padding) when no gradient is kept."""
        return segments.batches(8 * self.stays_per_batch, np.argsort(segments.lengths, kind="stable"))

    def _train(
        self, features: torch.Tensor, labels: torch.Tensor, training: StaySegments, validation: StaySegments
    ) -> dict[str, list[float]]:
        """Adam on batches of randomly drawn stays; keeps the weights of the epoch with the lowest validation loss.

        Training batches are not grouped by length (which would pad less): septic hours come late in long stays,
        so length-sorted batches put nearly all positives in a few batches and training swings between them.
        """
        assert self.network is not None
        optimiser = torch.optim.Adam(self.network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        shuffle = np.random.default_rng(self.seed)
        curve: dict[str, list[float]] = {"train_bce": [], "validation_bce": []}
        best_loss, best_state, epochs_without_gain = np.inf, copy.deepcopy(self.network.state_dict()), 0
        for _ in range(self.max_epochs):
            self.network.train()
            loss_sum, hours = 0.0, 0
            for batch in training.batches(self.stays_per_batch, shuffle.permutation(len(training.starts))):
                loss, batch_hours = self._batch_loss(features, labels, batch)
                optimiser.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.network.parameters(), max_norm=1.0)
                optimiser.step()
                loss_sum, hours = loss_sum + loss.item() * batch_hours, hours + batch_hours
            curve["train_bce"].append(loss_sum / hours)
            curve["validation_bce"].append(self._mean_loss(features, labels, validation))
            if curve["validation_bce"][-1] < best_loss:
                best_loss, epochs_without_gain = curve["validation_bce"][-1], 0
                best_state = copy.deepcopy(self.network.state_dict())
            else:
                epochs_without_gain += 1
                if epochs_without_gain >= self.patience:
                    break
        self.network.load_state_dict(best_state)
        return curve

    def _mean_loss(self, features: torch.Tensor, labels: torch.Tensor, segments: StaySegments) -> float:
        assert self.network is not None
        self.network.eval()
        loss_sum, hours = 0.0, 0
        with torch.no_grad():
            for batch in self._evaluation_batches(segments):
                loss, batch_hours = self._batch_loss(features, labels, batch)
                loss_sum, hours = loss_sum + loss.item() * batch_hours, hours + batch_hours
        return loss_sum / hours

    def _batch_loss(
        self, features: torch.Tensor, labels: torch.Tensor, batch: StaySegments
    ) -> tuple[torch.Tensor, int]:
        """The mean class-weighted BCE over the batch's real (unpadded) hours, and how many hours that is."""
        assert self.network is not None
        targets = labels[torch.from_numpy(batch.rows())]
        logits = self.network(batch.padded(features))[batch.hours()]
        loss = nn.functional.binary_cross_entropy_with_logits(
            logits, targets, pos_weight=torch.tensor(self.positive_weight)
        )
        return loss, len(targets)


@contextmanager
def _torch_settings(threads: int, seed: int) -> Iterator[None]:
    """Seeded, deterministic torch on ``threads`` CPU threads; the caller's settings and RNG are restored after."""
    previous_threads, previous_deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic)
