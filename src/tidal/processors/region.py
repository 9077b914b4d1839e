"""Where in the frame something repeats: the window a repetition counter should look at.

A person exercising may fill a sixth of the frame while a street goes by behind, or someone
walks past beside them. Compared whole, such frames never come back to where they were, though
the person does. The search cuts the frame into square cells and tries every window of 2x2,
3x3 and 4x4 cells, and the whole frame; in each it measures how clearly the video repeats (the
mean depth of each frame's match one period later, zero for frames without one). The largest
window nearly as repetitive as the best is kept, and only when it repeats at least twice as
clearly as the whole frame: a video that repeats as a whole is counted exactly as before.

Windows where nothing moves are skipped: normalising a still patch would make its noise look
like motion.

Example::

    region, best_score = repeating_region(clip.frames, whole_frame_score, depths_of)
    frames = region.crop(clip.frames) if region else clip.frames
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]
Matcher = Callable[[FloatArray], FloatArray]  # (T, D) features -> per-frame match depths (0: none)

_CELLS = 6  # cells across the shorter side of the frame
_BLOCKS = 3  # blocks per cell side: a window's features are its blocks' mean greys
_WINDOW_CELLS = (2, 3, 4)
_MIN_MOTION = 2.0  # grey levels (0-255): a window whose pixels move less than this on average is still
_MIN_SCORE = 0.3  # a window repeating less clearly than this is a chance likeness (a few strides)
_WHOLE_FRAME_SHARE = 0.5  # the whole frame is kept unless a window repeats twice as clearly
_NEARLY_AS_GOOD = 0.85  # the largest window scoring this share of the best is kept
_PART_OF_IT = 0.6  # ... and widened to the overlapping windows scoring this share of the best


@dataclass(frozen=True, slots=True)
class Region:
    """A window of the frame in pixels (``top``, ``left`` inclusive, ``bottom``, ``right``
    exclusive) and how clearly the video repeats there (``score``, 0-1)."""

    top: int
    left: int
    bottom: int
    right: int
    score: float

    def crop(self, frames: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """The window of every frame of a ``(T, H, W, 3)`` array."""
        return frames[:, self.top : self.bottom, self.left : self.right]

    def standing_box(self, height: int, width: int, aspect: float) -> Region:
        """A window as tall as the frame and ``aspect`` times as wide (at least as wide as this
        one, within the frame), centred on this one: where a standing person whose moving part
        is here would fit, whole."""
        box_width = min(width, max(self.right - self.left, round(aspect * height)))
        left = min(max(0, (self.left + self.right - box_width) // 2), width - box_width)
        return Region(0, left, height, left + box_width, self.score)

    def overlaps(self, other: Region) -> bool:
        across = self.left < other.right and other.left < self.right
        return across and self.top < other.bottom and other.top < self.bottom

    def area(self) -> int:
        return (self.bottom - self.top) * (self.right - self.left)


def repeating_region(
    frames: NDArray[np.uint8], whole_frame_score: float, depths_of: Matcher
) -> tuple[Region | None, float]:
    """The window of ``frames`` to count in (None when the whole frame is the best choice),
    and the best score of any window or of the whole frame.

    ``whole_frame_score`` is the whole frame's score; ``depths_of`` turns ``(T, D)`` window
    features into per-frame match depths (the counter's own matching, so that the search and
    the count agree on what repeating means). The best score is evidence too when no window
    is chosen: a part of the frame that nearly repeats makes a count of 0 less sure.
    """
    if whole_frame_score >= _WHOLE_FRAME_SHARE:  # no window can do much better: spare the search
        return None, whole_frame_score
    blocks, block = _block_greys(frames)
    if blocks is None:
        return None, whole_frame_score
    candidates = [
        Region(row * block, column * block, (row + size) * block, (column + size) * block, score)
        for size, row, column, score in _window_scores(blocks, depths_of)
    ]
    best = max([whole_frame_score, *(candidate.score for candidate in candidates)])
    if best < _MIN_SCORE or whole_frame_score >= _WHOLE_FRAME_SHARE * best:
        return None, best
    good = [candidate for candidate in candidates if candidate.score >= _NEARLY_AS_GOOD * best]
    chosen = max(good, key=lambda region: (region.area(), region.score))
    return _spread(chosen, [candidate for candidate in candidates if candidate.score >= _PART_OF_IT * best]), best


def _spread(chosen: Region, repeating: list[Region]) -> Region:
    """``chosen`` widened to the box of the repeating windows that overlap it, step by step.

    The best window is often a part of the thing that repeats (the legs of a person whose
    arms swing too); the windows around it that repeat nearly as clearly are the rest of it.
    """
    grown = chosen
    for _ in range(3):
        touching = [region for region in repeating if region.overlaps(grown)]
        grown = Region(
            min(region.top for region in [grown, *touching]), min(region.left for region in [grown, *touching]),
            max(region.bottom for region in [grown, *touching]), max(region.right for region in [grown, *touching]),
            chosen.score,
        )
    return grown


def _block_greys(frames: NDArray[np.uint8]) -> tuple[FloatArray | None, int]:
    """``(T, rows, columns)`` mean grey of square blocks, and a block's side in pixels."""
    total, height, width = frames.shape[:3]
    block = min(height, width) // (_CELLS * _BLOCKS)
    if block < 1 or total < 4:
        return None, 0
    rows, columns = height // block, width // block
    grey = frames[:, : rows * block, : columns * block].astype(np.float32) @ np.array(
        [0.299, 0.587, 0.114], dtype=np.float32
    )
    return grey.reshape(total, rows, block, columns, block).mean(axis=(2, 4)), block


def _window_scores(blocks: FloatArray, depths_of: Matcher) -> list[tuple[int, int, int, float]]:
    """``(size in cells, top block, left block, score)`` of every window where something moves."""
    rows, columns = blocks.shape[1:]
    motion = np.abs(np.diff(blocks, axis=0)).mean(axis=0)
    scores = []
    for cells in _WINDOW_CELLS:
        size = cells * _BLOCKS
        for top in range(0, rows - size + 1, _BLOCKS):
            for left in range(0, columns - size + 1, _BLOCKS):
                if motion[top : top + size, left : left + size].mean() < _MIN_MOTION:
                    continue
                window = blocks[:, top : top + size, left : left + size]
                scores.append((size, top, left, float(depths_of(_normalised(window)).mean())))
    return scores


def _normalised(window: FloatArray) -> FloatArray:
    """Each frame's window flattened, with zero mean and unit norm (as the counter's pixel features)."""
    flat = window.reshape(len(window), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    return (flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-6)).astype(np.float32)
