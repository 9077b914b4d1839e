"""Dominant colours of a frame: k-means on its pixels, the k centres sorted by pixel share.

Two methods give the same kind of answer:

* ``"exact"`` reproduces the original HPC script: scikit-learn's ``KMeans(n_init=5)`` on every
  pixel. It is the reference, and slow: 60 to 100 ms for a 300-pixel-wide frame on one thread.
* ``"fast"`` (the default) needs numpy only, and is as good: on frames of real videos its k-means
  inertia is on average slightly lower than exact's. Both single-threaded, it takes well under
  1/40 of exact's time with numba installed (``pip install 'tidal[fast]'``: every loop compiled;
  1/75 on the bench's frames, 1/100 on held-out ones, measured on a busy machine, where exact
  slows down more than fast) and 1/17 to 1/28 with numpy alone (bench/dominant_colors.py).
  Each is deterministic; the two may end in different, equally good minima on some frames (see
  :class:`_Kernels`), so keep one installation for the workers of one job.

How "fast" works, and why:

1. Pixels are counted into a 32x32x32 colour histogram; each occupied bin stands for its pixels
   at their mean, weighted by their count. k-means on a few thousand weighted bins costs a
   fraction of k-means on tens of thousands of pixels, and the means keep it faithful.
2. 32 k-means++ restarts run for 4 Lloyd iterations each, on 16^3 or 8^3 bins when the frame
   fills many bins (a few hundred points), ranked by the cost of their last assignment; the
   best 4 then run to convergence on the 32^3 bins and the best one is kept. One run alone
   ends in a poor local minimum (two centres on one mode, none on another) on one frame in
   five, up to 17 % worse.
3. Polish on the real pixels: a bin whose whole 8x8x8 cube lies in one centre's Voronoi cell
   sends all its pixels to that centre, so only the pixels of the bins near a boundary (10 to
   20 % of them, typically) are taken one by one. Lloyd steps on that mix are pixel-level
   Lloyd steps, run until the centres settle, and the shares are exact pixel counts.

The random generator is seeded from ``seed`` for every frame: a frame's result never depends on
the other frames, on batching, or on how frames are split across workers.

Example::

    result = dominant_colors(frame, k=5)
    result["colors"][0], result["shares"][0]   # the most dominant colour, e.g. [34, 52, 61], 0.41
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tidal.errors import ConfigError
from tidal.processors.base import Processor
from tidal.sources.base import Item

Method = Literal["fast", "exact"]
METHODS: tuple[str, ...] = get_args(Method)
MAX_K = 64

# Tuned with bench/dominant_colors.py on frames of real videos (see the module docstring).
_RESTARTS = 32  # k-means++ restarts explored (24 left one held-out frame 4 % worse than exact)
_EXPLORE_ITERATIONS = 4  # Lloyd iterations before the restarts are ranked by their last assignment's cost
_EXPLORE_TOLERANCE = 0.0  # or fewer, once no centre moves by more than this (colour units)
_FINALISTS = 4  # restarts run to convergence (3 left a held-out frame 2.9 % worse than exact, 4 0.7 %)
_TOLERANCE = 0.5  # stop Lloyd on bins when no centre moves by more than this (colour units)
_MAX_ITERATIONS = 50
_EXPLORE_POINTS = 800  # restarts run on the finest histogram (32, 16, 8 bins a side) this small
_CONVERGE_POINTS = 4096  # finalists converge on the finest histogram (32, 16 a side) this small
_POLISH_STEPS = 30  # at most this many pixel-level Lloyd steps after the bins have converged
_POLISH_TOLERANCE = 0.3  # stop them when no centre moves by more than this (colour units)
_POLISH_MARGIN = 1.0  # colour units added around a bin's cube when picking boundary pixels

_BIN_BITS = 5
_BIN_SIDE = 1 << (8 - _BIN_BITS)  # 8 colour values per bin along each channel
_BIN_COUNT = 1 << (3 * _BIN_BITS)
_CODE_WEIGHTS = np.array([1 << (2 * _BIN_BITS), 1 << _BIN_BITS, 1], dtype=np.float32)
_LANES = 4  # independent chains of sums in the compiled Lloyd step (see _loop_step)
_SEARCH_DTYPE = np.float32  # half the memory traffic; the exact steps at the end use float64
_PULL = 1e-6  # weight (in pixels) pulling a cluster to its old centre: moves an empty one nowhere

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.intp]
Counts = NDArray[Any]  # pixels per colour or centre: int or float, as numpy returns them


class DominantColors(Processor):
    """The ``k`` dominant colours of each frame and the share of pixels each one covers.

    Each result is ``{"colors": [[r, g, b], ...], "shares": [float, ...]}``: colours are ints
    0-255 (rounded k-means centres), most dominant first; shares sum to 1. A frame with fewer
    than ``k`` distinct colours gets just those colours. ``method="fast"`` (numpy; numba if
    installed) matches the quality of ``method="exact"`` (scikit-learn, the original script) at
    well under 1/40 of its time single-threaded (1/17 to 1/28 without numba).

    Example, in a job config::

        processor: {"tidal.processors.DominantColors": {k: 5}}    # method: "fast", seed: 0
    """

    batch_size = 16
    #: 2: the search ranks restarts by the cost of their last Lloyd assignment (no separate cost
    #: pass), so some frames' colours differ slightly from version 1's: old jobs start over.
    results_version = 2
    json_input = False  # served, it takes images and videos, never JSON values (a 422 from the front)

    def __init__(self, k: int = 5, method: Method = "fast", seed: int = 0) -> None:
        """Check the arguments now: a bad config fails when loaded, not inside a worker."""
        _check_arguments(k, method, seed)
        self.k = k
        self.method = method
        self.seed = seed

    def setup(self) -> None:
        """Compile the pixel kernels now (a second or so the first time, then from the disk
        cache), so that the first batch is not slower than the others."""
        warm_up_kernels()

    def process(self, batch: list[Item]) -> list[dict[str, list[Any]]]:
        """One result per frame, computed independently so batching never changes a result."""
        return [dominant_colors(item.data, self.k, self.method, self.seed) for item in batch]


def dominant_colors(
    frame: NDArray[np.uint8], k: int = 5, method: str = "fast", seed: int = 0
) -> dict[str, list[Any]]:
    """The ``k`` dominant colours of one ``HxWx3`` uint8 RGB frame, most dominant first.

    Returns ``{"colors": [[r, g, b], ...], "shares": [...]}``. Fewer than ``k`` colours come
    back when the frame has fewer than ``k`` distinct colours (each is then exact), or in the
    rare case where two centres round to the same colour (they are merged, shares added).
    """
    _check_arguments(k, method, seed)
    pixels = _as_pixels(frame)
    if method == "exact":
        return _result(*_exact_kmeans(pixels, k, seed))
    return _result(*_fast_kmeans(pixels, k, seed))


def inertia(pixels_or_frame: ArrayLike, centres: ArrayLike) -> float:
    """Sum over all pixels of the squared distance to the nearest centre, in float64.

    The k-means objective: the bench and the tests compare methods with it. Differences are
    taken before squaring (no ``|p|^2 - 2p.c + |c|^2`` shortcut) so that it stays exact.
    """
    pixels = np.asarray(pixels_or_frame).reshape(-1, 3).astype(np.float64)
    centres_array = np.asarray(centres, dtype=np.float64).reshape(-1, 3)
    nearest = np.full(len(pixels), np.inf)
    for centre in centres_array:
        difference = pixels - centre
        np.minimum(nearest, np.einsum("ij,ij->i", difference, difference), out=nearest)
    return float(nearest.sum())


def _check_arguments(k: Any, method: Any, seed: Any) -> None:
    """Raise a ConfigError naming the bad argument and the fix."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
        raise ConfigError(
            f"DominantColors: k must be an integer from 1 to {MAX_K}, got {k!r}; "
            "set k to the number of colours wanted, e.g. k: 5"
        )
    if method not in METHODS:
        raise ConfigError(
            f"DominantColors: method must be 'fast' or 'exact', got {method!r}; use 'fast' "
            "(numpy, the default) or 'exact' (scikit-learn, as the original script)"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(
            f"DominantColors: seed must be a non-negative integer, got {seed!r}; e.g. seed: 0"
        )


def _as_pixels(frame: Any) -> NDArray[np.uint8]:
    """``(N, 3)`` uint8 pixels, refusing what is not a non-empty RGB uint8 image."""
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or array.size == 0:
        raise ValueError(
            "dominant_colors expects a non-empty HxWx3 uint8 RGB array, got "
            f"shape {array.shape} and dtype {array.dtype}; decode frames as rgb24"
        )
    return np.ascontiguousarray(array).reshape(-1, 3)


def _distinct_colours(pixels: NDArray[np.uint8]) -> tuple[FloatArray, Counts]:
    """The distinct colours of the pixels and how many pixels have each.

    k-means cannot place ``k`` distinct centres on fewer distinct points (scikit-learn warns and
    duplicates centres), so a frame with at most ``k`` distinct colours gets them exactly.
    """
    colours, counts = np.unique(_pack(pixels.astype(np.int64)), return_counts=True)
    rgb = np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], axis=1)
    return rgb.astype(np.float64), counts.astype(np.float64)


def _result(centres: FloatArray, counts: Counts) -> dict[str, list[Any]]:
    """Rounded colours, merged when equal, without empty ones, most dominant first.

    Ties in share are broken by colour so that the order is deterministic. In plain Python:
    for at most 64 colours, numpy's per-call cost is most of the time.
    """
    merged: dict[int, float] = {}
    for centre, count in zip(np.asarray(centres).tolist(), np.asarray(counts, dtype=np.float64).tolist(), strict=True):
        red, green, blue = (min(max(round(value), 0), 255) for value in centre)  # half to even, as rint
        colour = red << 16 | green << 8 | blue
        merged[colour] = merged.get(colour, 0.0) + count
    total = sum(merged.values())
    order = sorted((-count, colour) for colour, count in merged.items() if count > 0)
    return {
        "colors": [[colour >> 16, (colour >> 8) & 255, colour & 255] for _, colour in order],
        "shares": [-negative / total for negative, _ in order],
    }


def _pack(colours: NDArray[np.int64]) -> NDArray[np.int64]:
    """``(n, 3)`` colours 0-255 as single ints ``0xRRGGBB``: cheap to sort and compare."""
    return (colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2]


def _exact_kmeans(pixels: NDArray[np.uint8], k: int, seed: int) -> tuple[FloatArray, Counts]:
    """scikit-learn's KMeans on every pixel, exactly as the original script ran it."""
    try:
        from sklearn.cluster import KMeans  # an optional extra: imported only when used
    except ImportError as error:
        raise ConfigError(
            "DominantColors(method='exact') needs scikit-learn: pip install 'tidal[exact]', "
            "or use method='fast' (numpy only)"
        ) from error
    colours, counts = _distinct_colours(pixels)
    if len(colours) <= k:
        return colours, counts
    model = KMeans(n_clusters=k, n_init=5, random_state=seed).fit(pixels.astype(np.float64))
    counts = np.bincount(model.labels_, minlength=k).astype(np.float64)
    return model.cluster_centers_, counts


# --- method="fast" -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bins:
    """The occupied bins of the 32x32x32 colour histogram of one frame, and its pixels.

    ``sums / counts`` is each bin's mean. The pixels are kept with the bin code of each, so
    that the pixels of chosen bins can be gathered for the exact polish.
    """

    pixels: NDArray[np.uint8]  # (N, 3) the frame's pixels
    codes: NDArray[np.uint16]  # (N,) the bin code of each pixel
    occupied: IntArray  # (n,) codes of the occupied bins, ascending
    counts: FloatArray  # (n,) pixels per bin
    sums: FloatArray  # (n, 3) sum of the pixels of each bin


@dataclass(frozen=True)
class _Points:
    """Weighted points for k-means: ``(3, n)`` float64 coordinates (C order, as the kernels
    want them) and ``(n,)`` weights."""

    coordinates: FloatArray
    weights: FloatArray

    @classmethod
    def from_sums(cls, sums: FloatArray, counts: FloatArray) -> _Points:
        """Points at ``sums / counts`` weighted by ``counts``."""
        return cls(np.ascontiguousarray((sums / counts[:, None]).T), counts)

    def with_pixels(self, kept: NDArray[np.bool_], pixels: FloatArray) -> _Points:
        """The kept points plus ``(3, m)`` pixels of weight 1, written straight into place."""
        indices = np.flatnonzero(kept)  # take() on indices: boolean masks on axis 1 are slow
        size = len(indices)
        coordinates = np.empty((3, size + pixels.shape[1]))
        self.coordinates.take(indices, axis=1, out=coordinates[:, :size])
        coordinates[:, size:] = pixels
        weights = np.ones(coordinates.shape[1])
        self.weights.take(indices, out=weights[:size])
        return _Points(coordinates, weights)


def _fast_kmeans(pixels: NDArray[np.uint8], k: int, seed: int) -> tuple[FloatArray, Counts]:
    """k-means of the pixels: search on the histogram bins, then polish on the pixels."""
    bins = _bin_pixels(pixels)
    if len(bins.occupied) <= k:
        return _kmeans_on_colours(pixels, k, seed)
    fine = _Points.from_sums(bins.sums, bins.counts)
    levels = _levels(bins, fine)
    finalists = _explore(levels[-1], k, seed, _RESTARTS)
    converge = next(level for level in levels if len(level.weights) <= _CONVERGE_POINTS)
    centres = _best(*_lloyd(converge, finalists, _MAX_ITERATIONS, _TOLERANCE))
    return _polish(bins, fine, centres)


def _levels(bins: _Bins, fine: _Points) -> list[_Points]:
    """The histogram at 32, then 16, then 8 bins per side, until small enough to explore on.

    Noisy frames fill most of the 32768 fine bins; coarser levels keep the search's cost
    bounded while the polish on the pixels restores the precision.
    """
    levels = [fine]
    bits = _BIN_BITS
    while len(levels[-1].weights) > _EXPLORE_POINTS and bits > 3:
        bits -= 1
        levels.append(_Points.from_sums(*_pixel_kernels().merge(bins.occupied, bins.counts, bins.sums, bits)))
    return levels


def _kmeans_on_colours(pixels: NDArray[np.uint8], k: int, seed: int) -> tuple[FloatArray, Counts]:
    """k-means on the distinct colours, for frames with at most ``k`` histogram bins.

    Such frames (flat, synthetic) have few colours, so the exact colours are cheap points and
    no polish is needed; with at most ``k`` of them they are the answer.
    """
    colours, counts = _distinct_colours(pixels)
    if len(colours) <= k:
        return colours, counts
    points = _Points.from_sums(colours * counts[:, None], counts)
    restarts = max(1, min(_RESTARTS, _RESTARTS * _EXPLORE_POINTS // len(colours)))  # bound memory
    centres = _best(*_lloyd(points, _explore(points, k, seed, restarts), _MAX_ITERATIONS, _TOLERANCE))
    labels = _labels(centres, points.coordinates)
    return centres, np.bincount(labels, weights=counts, minlength=k)


def _bin_pixels(pixels: NDArray[np.uint8]) -> _Bins:
    """Count pixels into 32x32x32 bins: how many per bin and the sum of their values.

    Counts and sums are integers, exact whichever kernel adds them up (see
    :func:`_pixel_kernels`), so the bins and everything computed from them are identical.
    The 1 MB table is this thread's, reused: only its occupied rows are read and zeroed again,
    where a fresh table per frame cost more than the counting (page faults, zeroing, a scan).
    """
    codes = np.empty(len(pixels), dtype=np.uint16)
    totals, occupied = _histogram_tables()
    kernels = _pixel_kernels()
    found = kernels.histogram(pixels, codes, totals, occupied)
    return _Bins(pixels, codes, *kernels.collect(totals, occupied, found))


_TABLES = threading.local()  # per thread: kernels run without the GIL, in threads too


def _histogram_tables() -> tuple[NDArray[np.int64], IntArray]:
    """This thread's zeroed ``(_BIN_COUNT, 4)`` totals and ``(_BIN_COUNT,)`` occupied codes."""
    tables = getattr(_TABLES, "tables", None)
    if tables is None:
        tables = _TABLES.tables = (np.zeros((_BIN_COUNT, 4), dtype=np.int64), np.empty(_BIN_COUNT, dtype=np.intp))
    return tables


def _bin_corners(occupied: IntArray) -> IntArray:
    """``(3, n)`` lowest colour value of each bin along each channel."""
    mask = (1 << _BIN_BITS) - 1
    shifts = (2 * _BIN_BITS, _BIN_BITS, 0)
    return np.stack([((occupied >> shift) & mask) * _BIN_SIDE for shift in shifts])


# --- the search: many k-means++ restarts on weighted points, the best few run to the end -----


def _explore(points: _Points, k: int, seed: int, restarts: int) -> FloatArray:
    """``(_FINALISTS, k, 3)`` the most promising of many short k-means runs.

    A few Lloyd iterations already separate the runs heading for a good minimum from those
    stuck with two centres on one mode, so only the best few are run to convergence. Runs are
    ranked by the cost of their last assignment: no separate pass over the points.
    """
    trials = _seed_trials(k)
    uniforms = _uniforms(seed, k, restarts * trials)
    seeds: FloatArray = np.empty((restarts, k, 3))
    _pixel_kernels().seeds(points.coordinates, points.weights, uniforms, trials, seeds)
    centres, costs = _lloyd(points, seeds, _EXPLORE_ITERATIONS, _EXPLORE_TOLERANCE)
    return centres[np.argsort(costs, kind="stable")[:_FINALISTS]]


@functools.lru_cache(maxsize=64)
def _uniforms(seed: int, rows: int, columns: int) -> FloatArray:
    """The first ``(rows, columns)`` uniform draws of a generator seeded with ``seed``.

    Every frame starts from the same seed, so every frame draws the same numbers: drawn once
    and kept (read-only), where seeding a generator per frame cost tens of microseconds.
    """
    uniforms = np.random.default_rng(seed).random((rows, columns))
    uniforms.setflags(write=False)
    return uniforms


def _seed_trials(k: int) -> int:
    """Candidates per k-means++ step: 1 up to k = 7, then ~log k (scikit-learn: 2 + log k).

    Greedy trials matter when many centres must share the colour space; for a handful they
    cost more than the extra restarts that buy the same quality.
    """
    return max(1, int(np.log(k)))


def _lloyd(
    points: _Points, centres: FloatArray, iterations: int, tolerance: float
) -> tuple[FloatArray, FloatArray]:
    """``(runs, k, 3)`` centres after weighted Lloyd iterations, each run until no centre
    moves by more than ``tolerance``, an empty cluster keeping its centre; and ``(runs,)`` the
    weighted cost of each run's last assignment (of its centres before their last move)."""
    moved = np.ascontiguousarray(centres, dtype=np.float64).copy()
    costs = np.empty(len(moved))
    _pixel_kernels().lloyd(points.coordinates, points.weights, moved, iterations, tolerance, costs)
    return moved, costs


def _best(centres: FloatArray, costs: FloatArray) -> FloatArray:
    """``(k, 3)`` the centre set of lowest cost."""
    return centres[int(np.argmin(costs))]


def _labels(centres: FloatArray, coordinates: FloatArray) -> IntArray:
    """The nearest centre of each of the ``(3, m)`` float64 points (the highest on exact ties)."""
    labels = np.empty(coordinates.shape[1], dtype=np.intp)
    _pixel_kernels().nearest(coordinates, np.ascontiguousarray(centres), labels)
    return labels


# --- the polish: exact pixel-level Lloyd steps at the cost of the boundary pixels ------------


def _polish(bins: _Bins, fine: _Points, centres: FloatArray) -> tuple[FloatArray, Counts]:
    """A few exact Lloyd steps on the pixels, then exact pixel counts per centre.

    Bins whose cube (widened by a margin, as centres still move) lies inside one Voronoi cell
    stand for all their pixels; the pixels of the other bins are taken one by one (see
    :func:`_numpy_polish`).
    """
    polished = np.array(centres, dtype=np.float64)
    counts = np.zeros(len(centres))
    _pixel_kernels().polish(bins.pixels, bins.codes, bins.occupied, fine.coordinates, fine.weights, polished, counts)
    return polished, counts


# --- the kernels: compiled with numba when installed, numpy otherwise ------------------------


@dataclass(frozen=True)
class _Kernels:
    """The loops of method="fast", as functions writing into given arrays (or returning new ones).

    Two implementations: plain loops that numba compiles (``pip install 'tidal[fast]'``), few
    passes over the points and few allocations, and numpy's vectorised equivalents (many passes
    and temporaries: slower). The histogram, its collection and merging and the gather only
    move and add integers, so both give identical bins; the k-means steps compute in floating
    point in different orders, so the two may end a search in different local minima on rare
    frames, each of equal quality and each deterministic: a given installation always gives
    the same result.
    """

    histogram: Callable[[NDArray[np.uint8], NDArray[np.uint16], NDArray[np.int64], IntArray], int]
    collect: Callable[[NDArray[np.int64], IntArray, int], tuple[IntArray, FloatArray, FloatArray]]
    merge: Callable[[IntArray, FloatArray, FloatArray, int], tuple[FloatArray, Counts]]
    seeds: Callable[[FloatArray, FloatArray, FloatArray, int, FloatArray], None]
    lloyd: Callable[[FloatArray, FloatArray, FloatArray, int, float, FloatArray], None]
    nearest: Callable[[FloatArray, FloatArray, IntArray], None]
    polish: Callable[
        [NDArray[np.uint8], NDArray[np.uint16], IntArray, FloatArray, FloatArray, FloatArray, FloatArray], None
    ]


# numpy: -----------------------------------------------------------------------------------


def _numpy_histogram(
    pixels: NDArray[np.uint8], codes: NDArray[np.uint16], totals: NDArray[np.int64], occupied: IntArray
) -> int:
    """Write each pixel's bin code ``r'<<10 | g'<<5 | b'`` (top 5 bits of each channel) into
    ``codes``, add each bin's pixel count and r, g, b sums into the rows of the zeroed
    ``totals``, write the codes of the bins now occupied into ``occupied`` (in any order) and
    return how many there are.

    The codes as a float32 matrix product (exact below 2**24): one BLAS call, not six passes.
    """
    top_bits = (pixels >> (8 - _BIN_BITS)).astype(np.float32)
    codes[:] = top_bits @ _CODE_WEIGHTS
    wide = codes.astype(np.intp)  # what bincount works on: convert once, not 4 times
    counts = np.bincount(wide, minlength=len(totals))
    totals[:, 0] += counts
    for channel in range(3):
        totals[:, 1 + channel] += np.bincount(wide, pixels[:, channel], minlength=len(totals)).astype(np.int64)
    found = np.flatnonzero(counts)
    occupied[: len(found)] = found
    return len(found)


def _numpy_collect(
    totals: NDArray[np.int64], occupied: IntArray, found: int
) -> tuple[IntArray, FloatArray, FloatArray]:
    """The ``found`` occupied bins of the histogram ``totals`` in ascending code order: their
    codes, pixel counts and ``(n, 3)`` sums; their rows of ``totals`` zeroed again."""
    codes = np.sort(occupied[:found])
    rows = totals.take(codes, axis=0)
    totals[codes] = 0
    counts = np.ascontiguousarray(rows.T, dtype=np.float64)  # rows contiguous, as kernels want
    return codes, counts[0], np.ascontiguousarray(counts[1:].T)


def _numpy_merge(occupied: IntArray, counts: FloatArray, sums: FloatArray, bits: int) -> tuple[FloatArray, Counts]:
    """``(n, 3)`` sums and ``(n,)`` counts of coarser bins (``bits`` per channel, ascending
    code order), merged from the fine bins."""
    code = np.zeros_like(occupied)
    for corner in _bin_corners(occupied):
        code = (code << bits) | (corner >> (8 - bits))
    size = 1 << (3 * bits)
    merged = np.bincount(code, weights=counts, minlength=size)
    kept = np.flatnonzero(merged)
    columns = [np.bincount(code, weights=column, minlength=size)[kept] for column in sums.T]
    return np.stack(columns, axis=1), merged[kept]


def _numpy_polish(
    pixels: NDArray[np.uint8],
    codes: NDArray[np.uint16],
    occupied: IntArray,
    coordinates: FloatArray,
    weights: FloatArray,
    centres: FloatArray,
    counts: FloatArray,
) -> None:
    """Polish the ``(k, 3)`` centres in place on the pixels and write their exact pixel counts.

    The bins (codes ``occupied``, means ``coordinates``, pixel counts ``weights``) whose cube
    lies inside one Voronoi cell, widened by a margin, stand for their pixels; the pixels of
    the others are gathered. Lloyd steps on that mix are pixel-level Lloyd steps. If a centre
    moved past the margin the straddling bins are gathered too before the final count.
    """
    half_side = (_BIN_SIDE - 1) / 2
    cubes = _bin_corners(occupied) + half_side
    boundary = _numpy_bins(centres, cubes, half_side + _POLISH_MARGIN)[1]
    gathered = _numpy_gather(pixels, codes, occupied[boundary])
    mixed = _Points(coordinates, weights).with_pixels(~boundary, gathered)
    moved = centres[None].copy()
    _numpy_lloyd(mixed.coordinates, mixed.weights, moved, _POLISH_STEPS, _POLISH_TOLERANCE, np.empty(1))
    centres[:] = moved[0]
    labels, straddling = _numpy_bins(centres, cubes, half_side)
    if (straddling & ~boundary).any():  # a centre moved past the margin: widen the set
        boundary |= straddling
        gathered = _numpy_gather(pixels, codes, occupied[boundary])
    nearest = np.empty(gathered.shape[1], dtype=np.intp)
    _numpy_nearest(gathered, centres, nearest)
    k = len(centres)
    counts[:] = np.bincount(labels[~boundary], weights=weights[~boundary], minlength=k)
    counts += np.bincount(nearest, minlength=k)


def _numpy_gather(pixels: NDArray[np.uint8], codes: NDArray[np.uint16], chosen: IntArray) -> FloatArray:
    """``(3, m)`` the pixels whose bin code is ``chosen``, in frame order, as float64."""
    wanted = np.zeros(_BIN_COUNT, dtype=np.bool_)
    wanted[chosen] = True
    return pixels.take(np.flatnonzero(wanted.take(codes)), axis=0).T.astype(np.float64)


def _numpy_seeds(
    coordinates: FloatArray, weights: FloatArray, uniforms: FloatArray, trials: int, out: FloatArray
) -> None:
    """Write ``(restarts, k, 3)`` greedy weighted k-means++ seeds into ``out``, all restarts
    drawn at once: each seed is the best (lowest total cost) of ``trials`` candidates drawn
    with probability ~ weight x squared distance to the nearest seed so far, as scikit-learn
    does. ``uniforms`` is ``(k, restarts * trials)``; the first row's first ``restarts`` pick
    the first seeds."""
    restarts = len(out)
    augmented, weights32 = _augmented(coordinates), weights.astype(_SEARCH_DTYPE)
    as_centres = _augment(coordinates.T)  # seeds are points: their rows, ready
    cumulative = np.cumsum(weights)
    first = np.searchsorted(cumulative, uniforms[0, :restarts] * cumulative[-1], side="right")
    picked = [np.minimum(first, len(cumulative) - 1)]
    closest = np.maximum(as_centres[picked[0]] @ augmented, 1e-3)
    for draw in uniforms[1:]:
        if trials > 1:
            closest = np.repeat(closest, trials, axis=0)
        candidates = _draw(closest, weights32, draw)
        distances = np.maximum(as_centres[candidates] @ augmented, 1e-3)
        np.minimum(distances, closest, out=distances)
        best = np.argmin((distances @ weights32).reshape(restarts, trials), axis=1)
        best += np.arange(0, restarts * trials, trials)
        picked.append(candidates[best])
        closest = distances[best]
    out[:] = coordinates.T[np.stack(picked, axis=1)]


def _draw(closest: FloatArray, weights: FloatArray, uniforms: NDArray[np.float64]) -> IntArray:
    """One point index per row of ``closest``, with probability ~ weight x ``closest``.

    One cumulative sum over all rows (numpy's per-row cumsum is slow on short rows) is one
    sorted array in which row ``r`` owns the interval between the totals of rows ``r-1`` and
    ``r``. Distances are floored above zero, so every point has a chance.
    """
    restarts, count = closest.shape
    cumulative = np.cumsum(closest * weights, dtype=np.float64)
    bounds = np.concatenate([[0.0], cumulative[count - 1 :: count]])
    starts, ends = bounds[:-1], bounds[1:]
    picked = np.searchsorted(cumulative, starts + uniforms * (ends - starts), side="right")
    return np.minimum(picked - np.arange(0, restarts * count, count), count - 1)


def _numpy_lloyd(
    coordinates: FloatArray,
    weights: FloatArray,
    centres: FloatArray,
    iterations: int,
    tolerance: float,
    costs: FloatArray,
) -> None:
    """Weighted Lloyd iterations on the ``(runs, k, 3)`` centres, in place, until none moves
    by more than ``tolerance``; the cost of each run's last assignment into ``costs``.

    The assignment is a one-hot matrix (a point equidistant from two centres counts for both,
    harmless here) so that the update is one matrix product, not a slow argmin. A tiny pull
    towards the old centre keeps an empty cluster where it was instead of dividing by zero.
    """
    runs, k, _ = centres.shape
    augmented = _augmented(coordinates)
    weighted = np.empty((4, len(weights)), dtype=_SEARCH_DTYPE)
    weighted[0], weighted[1:] = weights, coordinates * weights
    flat = centres.reshape(runs * k, 3).astype(_SEARCH_DTYPE)
    weights32 = weights.astype(_SEARCH_DTYPE)
    for _ in range(iterations):
        distances = (_augment(flat) @ augmented).reshape(runs, k, -1)
        closest = np.minimum.reduce(distances, axis=1, keepdims=True)
        costs[:] = closest.reshape(runs, -1) @ weights32
        nearest = (distances == closest).reshape(runs * k, -1)
        totals = nearest.astype(_SEARCH_DTYPE) @ weighted.T
        moved = (totals[:, 1:] + _PULL * flat) / (totals[:, :1] + _PULL)
        shift = np.maximum.reduce(np.abs(moved - flat), axis=None)
        flat = moved
        if shift <= tolerance:
            break
    centres[:] = flat.reshape(runs, k, 3)


def _numpy_nearest(coordinates: FloatArray, centres: FloatArray, labels: IntArray) -> None:
    """Write the nearest centre of each ``(3, m)`` point into ``labels``, the highest on ties.

    Through the column minimum: numpy's argmin along a short axis is ~10x slower.
    """
    distances = _distances(centres, coordinates)
    best = np.minimum.reduce(distances, axis=0)
    rows = np.arange(len(distances), dtype=np.int8)[:, None]  # k <= 64: small temporaries
    labels[:] = np.maximum.reduce((distances == best) * rows, axis=0)


def _numpy_bins(centres: FloatArray, cubes: FloatArray, half_side: float) -> tuple[IntArray, NDArray[np.bool_]]:
    """Each bin's nearest centre, and whether its cube may straddle a Voronoi boundary.

    Over a cube of centre ``o`` and half side ``h``, ``|p - c_j|^2 - |p - c_l|^2`` is at least
    ``D_j - D_l - 2h |c_j - c_l|_1`` (``D`` the squared distances from ``o``): when that is
    positive for every other centre ``j``, every pixel of the bin goes to ``l``.
    """
    labels = np.empty(cubes.shape[1], dtype=np.intp)
    _numpy_nearest(cubes, centres, labels)
    distances = _distances(centres, cubes)
    distances -= distances[labels, np.arange(len(labels))]
    manhattan = np.abs(centres[:, None, :] - centres[None, :, :]).sum(2)
    distances -= (2 * half_side) * manhattan[:, labels]
    return labels, (distances <= 0).sum(0) > 1  # the own centre always counts once


def _augmented(coordinates: FloatArray) -> FloatArray:
    """``(5, n)`` rows x, y, z, x^2 + y^2 + z^2, 1: the squared distances of ``(3, n)``
    points to centres ``c`` are then one product ``_augment(c) @ _augmented(points)``.

    In float32: half the memory traffic of float64, plenty for ranking centres.
    """
    augmented = np.empty((5, coordinates.shape[1]), dtype=_SEARCH_DTYPE)
    augmented[:3] = coordinates
    augmented[3] = np.einsum("ij,ij->j", augmented[:3], augmented[:3])
    augmented[4] = 1
    return augmented


def _augment(centres: FloatArray) -> FloatArray:
    """``(m, 5)`` rows ``-2c, 1, |c|^2``: times ``_augmented(points)``, squared distances.

    Here and in the loops above, ufunc methods (``np.add.reduce``) rather than array methods
    (``.sum``): these run many times per frame on small arrays, where call cost counts.
    """
    rows = np.empty((len(centres), 5), dtype=_SEARCH_DTYPE)
    np.multiply(centres, -2, out=rows[:, :3])
    rows[:, 3] = 1
    rows[:, 4] = np.add.reduce(centres * centres, axis=1)
    return rows


def _distances(centres: FloatArray, coordinates: NDArray[Any]) -> FloatArray:
    """``(k, n)`` squared distances up to a per-point constant, enough to compare centres."""
    distances = (-2 * centres) @ coordinates
    distances += (centres * centres).sum(1)[:, None]
    return distances


# loops for numba: ---------------------------------------------------------------------------
#
# The inner loops run centre by centre over all the points (``_loop_assign``), not point by
# point over the centres: with the points' coordinates in rows, the compiler turns such a loop
# into vector instructions, several points at a time, several times faster. Every sum is taken in
# the order written (no fast-math reassociation), so a result never depends on the vector width.


def _loop_histogram(
    pixels: NDArray[np.uint8], codes: NDArray[np.uint16], totals: NDArray[np.int64], occupied: IntArray
) -> int:
    """:func:`_numpy_histogram` as one loop over the pixels."""
    found = 0
    for index in range(pixels.shape[0]):
        red, green, blue = pixels[index, 0], pixels[index, 1], pixels[index, 2]
        code = ((red >> 3) << 10) | ((green >> 3) << 5) | (blue >> 3)
        codes[index] = code
        if totals[code, 0] == 0:
            occupied[found] = code
            found += 1
        totals[code, 0] += 1
        totals[code, 1] += red
        totals[code, 2] += green
        totals[code, 3] += blue
    return found


def _loop_collect(
    totals: NDArray[np.int64], occupied: IntArray, found: int
) -> tuple[IntArray, FloatArray, FloatArray]:
    """:func:`_numpy_collect` as loops."""
    codes = np.sort(occupied[:found])
    counts, sums = np.empty(found), np.empty((found, 3))
    for index in range(found):
        code = codes[index]
        counts[index] = totals[code, 0]
        for channel in range(3):
            sums[index, channel] = totals[code, 1 + channel]
        totals[code, :] = 0
    return codes, counts, sums


def _loop_merge(occupied: IntArray, counts: FloatArray, sums: FloatArray, bits: int) -> tuple[FloatArray, FloatArray]:
    """:func:`_numpy_merge` as loops: added up in a table of the coarse bins, read in order."""
    table = np.zeros((1 << (3 * bits), 4))
    drop, mask = _BIN_BITS - bits, (1 << _BIN_BITS) - 1
    for index in range(len(occupied)):
        fine = occupied[index]
        code = 0
        for channel in range(3):
            code = (code << bits) | (((fine >> (_BIN_BITS * (2 - channel))) & mask) >> drop)
        table[code, 0] += counts[index]
        for channel in range(3):
            table[code, 1 + channel] += sums[index, channel]
    size = 0
    for code in range(len(table)):
        size += table[code, 0] > 0
    merged, merged_sums = np.empty(size), np.empty((size, 3))
    taken = 0
    for code in range(len(table)):
        if table[code, 0] > 0:
            merged[taken] = table[code, 0]
            for channel in range(3):
                merged_sums[taken, channel] = table[code, 1 + channel]
            taken += 1
    return merged_sums, merged


def _loop_seeds(
    coordinates: FloatArray, weights: FloatArray, uniforms: FloatArray, trials: int, out: FloatArray
) -> None:
    """:func:`_numpy_seeds` as loops, one restart after the other.

    Per candidate: one pass draws it (stopping where the running sum passes the target), one
    takes the distances to it and the new minimum, one adds up the cost the next draw needs.
    """
    count = len(weights)
    closest, trial, chosen = np.empty(count), np.empty(count), np.empty(count)
    cumulative = np.cumsum(weights)
    for run in range(out.shape[0]):
        first = min(np.searchsorted(cumulative, uniforms[0, run] * cumulative[-1], side="right"), count - 1)
        out[run, 0] = coordinates[:, first]
        _loop_distances_to(coordinates, out[run, 0], closest)
        total = _loop_weighted_sum(weights, closest)
        for seed in range(1, out.shape[1]):
            best_cost = np.inf
            for attempt in range(trials):
                candidate = _loop_draw(closest, weights, uniforms[seed, run * trials + attempt] * total)
                _loop_distances_to(coordinates, coordinates[:, candidate], trial)
                _loop_minimum(trial, closest)
                cost = _loop_weighted_sum(weights, trial)
                if cost < best_cost:
                    best_cost = cost
                    out[run, seed] = coordinates[:, candidate]
                    trial, chosen = chosen, trial
            closest, chosen = chosen, closest
            total = best_cost


def _loop_distances_to(coordinates: FloatArray, centre: FloatArray, out: FloatArray) -> None:
    """Squared distances of the ``(3, n)`` points to one centre, floored above zero so that
    every point keeps a chance to be drawn."""
    x, y, z = centre[0], centre[1], centre[2]
    for index in range(coordinates.shape[1]):
        red = coordinates[0, index] - x
        green = coordinates[1, index] - y
        blue = coordinates[2, index] - z
        out[index] = max(red * red + green * green + blue * blue, 1e-3)


def _loop_minimum(values: FloatArray, others: FloatArray) -> None:
    """``values = minimum(values, others)``, in place."""
    for index in range(len(values)):
        values[index] = min(values[index], others[index])


def _loop_weighted_sum(weights: FloatArray, values: FloatArray) -> float:
    """``sum(weights * values)``, point ``4i + lane`` into partial sum ``lane``: four chains of
    additions at once (see :func:`_loop_step`)."""
    partial = np.zeros(_LANES)
    count = len(weights)
    for start in range(0, count - count % _LANES, _LANES):
        for lane in range(_LANES):
            partial[lane] += weights[start + lane] * values[start + lane]
    for index in range(count - count % _LANES, count):
        partial[0] += weights[index] * values[index]
    return (partial[0] + partial[1]) + (partial[2] + partial[3])


def _loop_draw(closest: FloatArray, weights: FloatArray, target: float) -> int:
    """The first point index where the running sum of weight x ``closest`` passes ``target``
    (a uniform fraction of the total): a point drawn with probability ~ weight x ``closest``."""
    running = 0.0
    for index in range(len(weights)):
        running += weights[index] * closest[index]
        if running > target:
            return index
    return len(weights) - 1


def _loop_lloyd(
    coordinates: FloatArray,
    weights: FloatArray,
    centres: FloatArray,
    iterations: int,
    tolerance: float,
    costs: FloatArray,
) -> None:
    """:func:`_numpy_lloyd` as loops, one run after the other, each stopping on its own."""
    count, k = coordinates.shape[1], centres.shape[1]
    nearest, labels, totals = np.empty(count), np.empty(count, dtype=np.intp), np.empty((_LANES, k, 4))
    for run in range(centres.shape[0]):
        centre = centres[run]  # a view made once: one per point costs reference counting
        for _ in range(iterations):
            costs[run] = _loop_step(coordinates, weights, centre, nearest, labels, totals)
            if _loop_move(centre, totals[0]) <= tolerance:
                break


def _loop_step(
    coordinates: NDArray[Any],
    weights: FloatArray,
    centres: FloatArray,
    nearest: FloatArray,
    labels: IntArray,
    totals: FloatArray,
) -> float:
    """The assignment half of a weighted Lloyd step: each point's weight and weighted
    coordinates added to the totals of its nearest centre, ``totals[0]`` (``(k, 4)``) at the
    end; returns the cost.

    Points ``4i + lane`` add into ``totals[lane]``, summed at the end: four independent chains
    of additions, where one chain waited on each addition before the next (same result on
    every machine: the order is the one written).
    """
    _loop_assign(coordinates, centres, nearest, labels)
    totals[:] = 0.0
    costs = np.zeros(_LANES)
    count = len(weights)
    for start in range(0, count - count % _LANES, _LANES):
        for lane in range(_LANES):
            _loop_add(coordinates, weights, nearest, labels, start + lane, totals[lane], costs, lane)
    for index in range(count - count % _LANES, count):
        _loop_add(coordinates, weights, nearest, labels, index, totals[0], costs, 0)
    for label in range(totals.shape[1]):
        for column in range(4):
            totals[0, label, column] = (totals[0, label, column] + totals[1, label, column]) + (
                totals[2, label, column] + totals[3, label, column]
            )
    return (costs[0] + costs[1]) + (costs[2] + costs[3])


def _loop_add(
    coordinates: NDArray[Any],
    weights: FloatArray,
    nearest: FloatArray,
    labels: IntArray,
    index: int,
    totals: FloatArray,
    costs: FloatArray,
    lane: int,
) -> None:
    """Add point ``index`` to the ``(k, 4)`` totals of its centre and its cost to ``costs[lane]``."""
    weight, label = weights[index], labels[index]
    totals[label, 0] += weight
    totals[label, 1] += weight * coordinates[0, index]
    totals[label, 2] += weight * coordinates[1, index]
    totals[label, 3] += weight * coordinates[2, index]
    costs[lane] += weight * nearest[index]


def _loop_assign(coordinates: NDArray[Any], centres: FloatArray, nearest: FloatArray, labels: IntArray) -> None:
    """The nearest centre of each ``(3, n)`` point (float or bytes) into ``labels`` (the highest
    on exact ties, as numpy's), its squared distance into ``nearest``: centre by centre."""
    count = coordinates.shape[1]
    for index in range(count):
        nearest[index] = np.inf
    for label in range(centres.shape[0]):
        x, y, z = centres[label, 0], centres[label, 1], centres[label, 2]
        for index in range(count):
            red = coordinates[0, index] - x
            green = coordinates[1, index] - y
            blue = coordinates[2, index] - z
            distance = red * red + green * green + blue * blue
            closer = distance <= nearest[index]
            nearest[index] = distance if closer else nearest[index]
            labels[index] = label if closer else labels[index]


def _loop_move(centres: FloatArray, totals: FloatArray) -> float:
    """Move each centre to the mean of its points (an empty one stays); return the largest
    move along any channel: the update half of a Lloyd step."""
    shift = 0.0
    for label in range(len(centres)):
        if totals[label, 0] > 0:
            for channel in range(3):
                moved = totals[label, 1 + channel] / totals[label, 0]
                shift = max(shift, abs(moved - centres[label, channel]))
                centres[label, channel] = moved
    return shift


def _loop_nearest(coordinates: FloatArray, centres: FloatArray, labels: IntArray) -> None:
    """:func:`_numpy_nearest` as loops."""
    _loop_assign(coordinates, centres, np.empty(coordinates.shape[1]), labels)


def _loop_polish(
    pixels: NDArray[np.uint8],
    codes: NDArray[np.uint16],
    occupied: IntArray,
    coordinates: FloatArray,
    weights: FloatArray,
    centres: FloatArray,
    counts: FloatArray,
) -> None:
    """:func:`_numpy_polish` as loops: the kept bins and the boundary pixels in one set of
    weighted points, pixel-level Lloyd steps on it, then exact counts."""
    count, k = len(occupied), len(centres)
    half_side = (_BIN_SIDE - 1) / 2
    cubes = np.empty((3, count))  # the centre of each bin's cube, as _bin_corners
    for channel in range(3):
        shift = _BIN_BITS * (2 - channel)
        for index in range(count):
            cubes[channel, index] = ((occupied[index] >> shift) & ((1 << _BIN_BITS) - 1)) * _BIN_SIDE + half_side
    labels, boundary, scratch = np.empty(count, dtype=np.intp), np.empty(count, dtype=np.bool_), np.empty(count)
    _loop_bins(centres, cubes, half_side + _POLISH_MARGIN, scratch, labels, boundary)
    mixed, mixed_weights, kept = _loop_mixed(pixels, codes, occupied, coordinates, weights, boundary)
    size = len(mixed_weights)
    nearest, mixed_labels, totals = np.empty(size), np.empty(size, dtype=np.intp), np.empty((_LANES, k, 4))
    for _ in range(_POLISH_STEPS):
        _loop_step(mixed, mixed_weights, centres, nearest, mixed_labels, totals)
        if _loop_move(centres, totals[0]) <= _POLISH_TOLERANCE:
            break
    straddling = np.empty(count, dtype=np.bool_)
    _loop_bins(centres, cubes, half_side, scratch, labels, straddling)
    widened = False
    for index in range(count):
        widened |= straddling[index] and not boundary[index]
        straddling[index] |= boundary[index]
    if widened:  # a centre moved past the margin: gather the straddling bins' pixels too
        mixed, mixed_weights, kept = _loop_mixed(pixels, codes, occupied, coordinates, weights, straddling)
    counts[:] = 0.0
    for index in range(count):
        if not straddling[index]:
            counts[labels[index]] += weights[index]
    final_labels = np.empty(len(mixed_weights), dtype=np.intp)
    _loop_assign(mixed, centres, np.empty(len(mixed_weights)), final_labels)
    for index in range(kept, len(mixed_weights) - 1):  # the pixels, not the weightless slot
        counts[final_labels[index]] += 1


def _loop_mixed(
    pixels: NDArray[np.uint8],
    codes: NDArray[np.uint16],
    occupied: IntArray,
    coordinates: FloatArray,
    weights: FloatArray,
    chosen: NDArray[np.bool_],
) -> tuple[FloatArray, FloatArray, int]:
    """``(3, n)`` points, their ``(n,)`` weights, and ``kept``: columns ``[0, kept)`` are the
    bins not chosen, then come the pixels of the chosen bins one by one (weight 1, in frame
    order), then one slot of weight 0.

    Every pixel is written to the next free column, which only advances past a wanted one:
    no branch to mispredict. The last pixels not wanted land in the weightless slot.
    """
    kept = size = 0
    for index in range(len(occupied)):
        if chosen[index]:
            size += int(weights[index])
        else:
            kept += 1
    mixed = np.empty((3, kept + size + 1))
    mixed_weights = np.ones(kept + size + 1)
    mixed_weights[kept + size] = 0.0
    wanted = np.zeros(_BIN_COUNT, dtype=np.uint8)  # 32 kB: cheap to clear, stays in cache
    taken = 0
    for index in range(len(occupied)):
        if chosen[index]:
            wanted[occupied[index]] = 1
        else:
            for channel in range(3):
                mixed[channel, taken] = coordinates[channel, index]
            mixed_weights[taken] = weights[index]
            taken += 1
    for index in range(pixels.shape[0]):
        for channel in range(3):
            mixed[channel, taken] = pixels[index, channel]
        taken += wanted[codes[index]]
    return mixed, mixed_weights, kept


def _loop_bins(
    centres: FloatArray,
    cubes: FloatArray,
    half_side: float,
    nearest: FloatArray,
    labels: IntArray,
    straddling: NDArray[np.bool_],
) -> None:
    """:func:`_numpy_bins` as loops, centre by centre over the cubes."""
    k = centres.shape[0]
    manhattan = np.zeros((k, k))
    for one in range(k):
        for other in range(k):
            for channel in range(3):
                manhattan[one, other] += abs(centres[one, channel] - centres[other, channel])
    _loop_assign(cubes, centres, nearest, labels)
    straddling[:] = False
    for candidate in range(k):
        x, y, z = centres[candidate, 0], centres[candidate, 1], centres[candidate, 2]
        for index in range(cubes.shape[1]):
            red = cubes[0, index] - x
            green = cubes[1, index] - y
            blue = cubes[2, index] - z
            gap = red * red + green * green + blue * blue - nearest[index]
            gap -= 2 * half_side * manhattan[candidate, labels[index]]
            straddling[index] |= (candidate != labels[index]) & (gap <= 0)


NUMPY_KERNELS = _Kernels(
    _numpy_histogram, _numpy_collect, _numpy_merge, _numpy_seeds, _numpy_lloyd, _numpy_nearest, _numpy_polish
)
_LOOPS = (_loop_histogram, _loop_collect, _loop_merge, _loop_seeds, _loop_lloyd, _loop_nearest, _loop_polish)


def warm_up_kernels() -> None:
    """Run every kernel once on a tiny frame: numba compiles a function on its first call.

    One process at a time on this machine: the workers of a job start together, and numba's
    on-disk cache (index and data written as separate files) is not made for several processes
    compiling and writing the same functions at once. The first compiles and writes; the others
    then load what it wrote.
    """
    frame = np.zeros((4, 4, 3), dtype=np.uint8)
    frame[:2] = 255
    frame[0, 0] = (0, 128, 0)
    frame[3] = (40, 80, 200)
    with _one_process_at_a_time():
        _fast_kmeans(frame.reshape(-1, 3), 2, 0)
        _kmeans_on_colours(frame.reshape(-1, 3), 2, 0)


@contextlib.contextmanager
def _one_process_at_a_time() -> Iterator[None]:
    """An exclusive lock on a file in the temp folder (POSIX; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path = os.path.join(tempfile.gettempdir(), f"tidal-dominant-colors-compile-{os.getuid()}.lock")
    try:
        lock = open(path, "a")  # noqa: SIM115 - held across the yield
    except OSError:  # a temp folder this user cannot write: compile unguarded, as before
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@functools.cache
def _pixel_kernels() -> _Kernels:
    """The compiled kernels when numba is installed (compiled once, cached on disk), else numpy."""
    try:
        import numba  # an optional extra: imported only when a frame is processed
    except ImportError:
        return NUMPY_KERNELS
    compile_ = numba.njit(cache=True, nogil=True)
    module = globals()
    kernels = {loop.__name__ for loop in _LOOPS}
    helpers = [name for name in module if name.startswith("_loop_") and name not in kernels]
    for name in helpers:  # the kernels call them through their globals: compiled, and inlined
        module[name] = numba.njit(inline="always", cache=True, nogil=True)(module[name])
    compiled: list[Any] = [compile_(loop) for loop in _LOOPS]
    return _Kernels(*compiled)
