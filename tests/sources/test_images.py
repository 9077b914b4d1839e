"""Images over real video frames saved as JPEG and PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from source_suite import FileSourceSuite, MakeSource

from tidal.errors import ConfigError, SourceError
from tidal.sources._paths import fingerprint
from tidal.sources.base import Item, ItemFailure
from tidal.sources.images import Images


class TestImages(FileSourceSuite):
    @pytest.fixture
    def media_files(self, tmp_path: Path, bikes_frames: list[np.ndarray]) -> list[Path]:
        """Four real frames, as PNG (zlib-checked, so damage shows) and JPEG: two partitions of two."""
        folder = tmp_path / "images"
        folder.mkdir()
        files = [folder / name for name in ("a.png", "b.jpg", "c.png", "d.png")]
        for frame, path in zip(bikes_frames, files, strict=False):
            Image.fromarray(frame).save(path)
        return files

    @pytest.fixture
    def make_source(self) -> MakeSource:
        return lambda paths: Images(paths, width=64, per_partition=2)


def read_all(source: Images) -> list[Item | ItemFailure]:
    return [item for partition in source.partitions() for item in source.read(partition)]


def by_name(items: list[Item | ItemFailure]) -> dict[str, Item | ItemFailure]:
    return {Path(item.meta["path"]).name: item for item in items}


def picture(item: Item | ItemFailure) -> np.ndarray:
    assert isinstance(item, Item), item
    return item.data  # type: ignore[no-any-return]


def test_reads_every_image_in_sorted_order(image_folder: Path) -> None:
    items = read_all(Images(str(image_folder)))
    names = [item.meta["path"] for item in items]
    assert names == sorted(names) and len(names) == 7  # notes.txt is not listed
    decoded = [item for item in items if isinstance(item, Item)]
    assert len(decoded) == 6
    for item in decoded:
        assert item.data.shape == (272, 640, 3) and item.data.dtype == np.uint8
        assert item.key == f"{item.meta['path']}@{fingerprint(item.meta['path'])}"


def test_pixels_are_pillows(image_folder: Path, bikes_frames: list[np.ndarray]) -> None:
    items = by_name(read_all(Images(str(image_folder))))
    np.testing.assert_array_equal(picture(items["frame4.png"]), bikes_frames[4])
    with Image.open(image_folder / "frame0.jpg") as image:
        expected = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(picture(items["frame0.jpg"]), expected)


def test_a_file_that_is_not_an_image_is_an_item_failure(image_folder: Path) -> None:
    failure = by_name(read_all(Images(str(image_folder))))["fake.jpg"]
    assert isinstance(failure, ItemFailure)
    assert failure.error.startswith("not an image Pillow can read:")
    assert "fake.jpg" in failure.error and "fix the glob" in failure.error


def test_a_truncated_image_is_an_item_failure(image_folder: Path) -> None:
    jpeg = image_folder / "frame1.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[:2000])
    failure = by_name(read_all(Images(str(jpeg))))["frame1.jpg"]
    assert isinstance(failure, ItemFailure) and "cannot decode image" in failure.error


def test_an_image_too_large_to_decode_is_a_failure_saying_so_not_damage(tmp_path: Path) -> None:
    """A whole 40,000 px square PNG (1-bit, 190 kB on disk, 1.6 gigapixels) is over Pillow's
    decompression-bomb limit: the item fails with its size and the fix, the next image still reads."""
    Image.new("1", (40_000, 40_000)).save(tmp_path / "a-huge.png")
    Image.new("RGB", (20, 10), (200, 10, 10)).save(tmp_path / "b-small.png")
    items = by_name(read_all(Images(str(tmp_path / "*.png"))))
    failure = items["a-huge.png"]
    assert isinstance(failure, ItemFailure)
    assert "1,600,000,000 pixels" in failure.error and "scale the image down" in failure.error
    assert "corrupt" not in failure.error
    assert picture(items["b-small.png"]).shape == (10, 20, 3)


@pytest.mark.parametrize(
    ("size", "shape"),
    [
        ({"width": 160}, (68, 160, 3)),  # a JPEG decoded at 1/4 scale by draft
        ({"width": 300}, (128, 300, 3)),
        ({"height": 100}, (100, 235, 3)),
        ({"width": 30, "height": 20}, (20, 30, 3)),
        ({"width": 100, "rotate": 90}, (235, 100, 3)),
    ],
)
def test_size_keeps_the_aspect_ratio(
    image_folder: Path, size: dict[str, int], shape: tuple[int, int, int]
) -> None:
    items = read_all(Images(f"{image_folder}/*.*g", **size))  # type: ignore[arg-type]
    decoded = [item for item in items if isinstance(item, Item)]
    assert len(decoded) == 5 and {item.data.shape for item in decoded} == {shape}


def test_rotate_turns_clockwise(image_folder: Path) -> None:
    png = str(image_folder / "frame4.png")
    [upright] = read_all(Images(png))
    [turned] = read_all(Images(png, rotate=270))
    np.testing.assert_array_equal(picture(turned), np.rot90(picture(upright), k=1))
    assert picture(turned).flags.c_contiguous and picture(turned).flags.writeable


def test_partitions_hold_per_partition_files(image_folder: Path) -> None:
    source = Images([f"{image_folder}/**/*.png", str(image_folder)], per_partition=3)
    partitions = source.partitions()
    assert [partition.size for partition in partitions] == [3, 3, 1]
    listed = [path for partition in partitions for path, _ in partition.payload]
    assert listed == sorted(set(listed))  # a file named twice is listed once


def test_missing_inputs_are_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"photos/\*\*/\*\.jpg matched no file"):
        Images(str(tmp_path / "photos" / "**" / "*.jpg")).partitions()
    with pytest.raises(SourceError, match=r"holds no file ending in \.jpg, \.jpeg"):
        Images(str(tmp_path)).partitions()
    with pytest.raises(SourceError, match="paths is empty"):
        Images([]).partitions()


@pytest.mark.parametrize("options", [{"per_partition": 0}, {"height": 0}, {"rotate": 30}])
def test_bad_options_are_config_errors(options: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        Images("photos", **options)  # type: ignore[arg-type]
