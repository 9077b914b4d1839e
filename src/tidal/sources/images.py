"""Image files decoded with Pillow, in partitions of ``per_partition`` files."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from tidal.errors import ConfigError, DecodeError
from tidal.settings import IMAGES_PER_PARTITION
from tidal.sources._paths import (
    check_geometry,
    expand_paths,
    fingerprint,
    fingerprint_bytes,
    map_files,
    rotate_picture,
    scaled_size,
)
from tidal.sources.base import Item, ItemFailure, Partition, Source

IMAGE_EXTENSIONS = ["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff"]


class Images(Source):
    """Image files (jpg, png, bmp, webp, tif) as ``HxWx3`` uint8 RGB arrays.

    ``width``/``height`` scale each image (one of them alone keeps the aspect ratio; JPEGs
    are decoded at a reduced size first when that is enough), ``rotate`` turns it clockwise.

    Example::

        Images(paths="photos/**/*.jpg", width=224)
    """

    def __init__(
        self,
        paths: str | list[str],
        width: int | None = None,
        height: int | None = None,
        rotate: Literal[0, 90, 180, 270] = 0,
        per_partition: int = IMAGES_PER_PARTITION,
    ) -> None:
        check_geometry(width, height, rotate)
        if per_partition < 1:
            raise ConfigError(f"per_partition must be at least 1, not {per_partition}")
        self.paths = paths
        self.width = width
        self.height = height
        self.rotate = rotate
        self.per_partition = per_partition

    def partitions(self) -> list[Partition]:
        """The files in sorted order, ``per_partition`` to a partition."""
        files = expand_paths(self.paths, tuple(IMAGE_EXTENSIONS))
        entries = list(zip(map(str, files), map_files(fingerprint, files), strict=True))
        chunks = [
            tuple(entries[start : start + self.per_partition])
            for start in range(0, len(entries), self.per_partition)
        ]
        return [Partition(id=_partition_id(chunk), size=len(chunk), payload=chunk) for chunk in chunks]

    def read(self, partition: Partition) -> Iterator[Item | ItemFailure]:
        """Decode each file of the partition; a file that is no image yields an ItemFailure."""
        for path, expected in partition.payload:
            yield self._read_file(path, expected)

    def _read_file(self, path: str, expected: str) -> Item | ItemFailure:
        key, meta = f"{path}@{expected}", {"path": path}
        try:
            content = Path(path).read_bytes()
        except OSError as error:
            return ItemFailure(key, f"cannot read {path}: {error.strerror or error}", meta)
        if fingerprint_bytes(content) != expected:
            reason = f"{path} changed since the job listed it; run the job again to list it anew"
            return ItemFailure(key, reason, meta)
        try:
            picture = decode_image(content, path, self.width, self.height, self.rotate)
        except DecodeError as error:
            return ItemFailure(key, str(error), meta)
        return Item(key, picture, meta)


def _partition_id(chunk: tuple[tuple[str, str], ...]) -> str:
    """``<first path>@<digest of every file's fingerprint>+<files after the first>``.

    Every fingerprint, not only the first file's: a resumed job skips a finished partition by
    its id, so a change to any of its files must give it a new id, or the change goes unread.
    """
    hasher = hashlib.sha256()
    for path, digest in chunk:
        hasher.update(f"{path}@{digest}\n".encode())
    return f"{chunk[0][0]}@{hasher.hexdigest()[:12]}+{len(chunk) - 1}"


def decode_image(
    content: bytes, name: str, width: int | None, height: int | None, rotate: int
) -> np.ndarray:
    """Decode an encoded image to an ``HxWx3`` uint8 RGB array, scaled and rotated.

    Raise DecodeError naming ``name`` when Pillow cannot read it.
    """
    try:
        with Image.open(io.BytesIO(content)) as image:
            return _picture(image, width, height, rotate)
    except UnidentifiedImageError as error:
        raise DecodeError(
            f"not an image Pillow can read: {name}; remove it or fix the glob"
        ) from error
    # Pillow's decoders raise many types on damaged data (OSError, SyntaxError, struct.error,
    # ValueError...): whatever they raise, the item is recorded as failed with the reason.
    except Exception as error:
        raise DecodeError(
            f"cannot decode image {name}: {type(error).__name__}: {error}; "
            "the file is truncated or corrupt, re-download or remove it"
        ) from error


def _picture(image: Image.Image, width: int | None, height: int | None, rotate: int) -> np.ndarray:
    size = scaled_size(image.width, image.height, width, height, rotate)
    if size != image.size:
        # JPEG only: decode at 1/2, 1/4 or 1/8 scale when still larger than the size wanted.
        image.draft("RGB", size)
    rgb = image.convert("RGB")
    if rgb.size != size:
        rgb = rgb.resize(size, Image.Resampling.BILINEAR)
    return rotate_picture(np.array(rgb), rotate)
