"""Small built-in models, enough for examples and tests; any ``torch.nn.Module`` works."""

from __future__ import annotations

import itertools

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Two 3x3 convolutions and a max-pool (``features``), then a two-layer ``head``.

    Built for small images such as the 8x8 digits; ``features`` and ``head`` are the submodules
    a fine-tuning cycle freezes (``freeze: ["features"]``, or one layer: ``"features@0"``).
    """

    def __init__(self, num_outputs: int = 10, in_channels: int = 1, width: int = 32, dropout: float = 0.0,
                 pooled_size: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.AdaptiveMaxPool2d(pooled_size),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout),
            nn.Linear(2 * width * pooled_size * pooled_size, 128), nn.ReLU(),
            nn.Linear(128, num_outputs),
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(inputs))  # type: ignore[no-any-return]


class MLP(nn.Module):
    """A multilayer perceptron over flattened inputs: ``layers`` is a Sequential of Linear/ReLU."""

    def __init__(self, num_inputs: int, num_outputs: int, hidden: list[int] | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        sizes = [num_inputs, *(hidden if hidden is not None else [64])]
        blocks: list[nn.Module] = [nn.Flatten()]
        for size_in, size_out in itertools.pairwise(sizes):
            blocks += [nn.Linear(size_in, size_out), nn.ReLU(), nn.Dropout(dropout)]
        self.layers = nn.Sequential(*blocks, nn.Linear(sizes[-1], num_outputs))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs)  # type: ignore[no-any-return]
