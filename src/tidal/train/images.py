"""Images a training logs: a grid of sample inputs, and the confusion matrix of the validation data."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

CELL = 24  # pixels per confusion-matrix cell


def sample_grid(inputs: Any, limit: int = 64) -> np.ndarray | None:
    """Up to ``limit`` input images side by side (HxW or HxWx3, uint8), or None when the inputs
    are not images (a batch of shape N x C x H x W with 1 or 3 channels, or N x H x W)."""
    array = np.asarray(inputs.detach().float().cpu()) if hasattr(inputs, "detach") else None
    if array is None or array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[1] not in (1, 3)):
        return None
    images = array[:limit] if array.ndim == 4 else array[:limit, None]
    images = images.transpose(0, 2, 3, 1)  # N x H x W x C
    low, high = float(images.min()), float(images.max())
    images = (images - low) / (high - low or 1.0)
    count, height, width, channels = images.shape
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.ones((rows * (height + 1) + 1, columns * (width + 1) + 1, channels), dtype=np.float32)
    for index, image in enumerate(images):
        top, left = 1 + (index // columns) * (height + 1), 1 + (index % columns) * (width + 1)
        grid[top:top + height, left:left + width] = image
    grid = np.kron(grid, np.ones((max(1, 64 // height), max(1, 64 // height), 1)))  # small images scaled up
    picture = (grid * 255).astype(np.uint8)
    return picture[..., 0] if channels == 1 else picture


def confusion_image(matrix: np.ndarray) -> np.ndarray:
    """A confusion matrix (rows: targets, columns: predictions) as an RGB heat map, each row
    normalised so that recall reads as the diagonal's darkness."""
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=np.float64), where=rows > 0)
    cells = np.kron(share, np.ones((CELL, CELL)))
    picture = np.stack([255 - 200 * cells, 255 - 120 * cells, 255 - 40 * cells], axis=-1)
    picture[::CELL, :] = 200  # grid lines
    picture[:, ::CELL] = 200
    return picture.astype(np.uint8)
