"""Image files decoded with Pillow, in partitions of ``per_partition`` files."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from tidal.errors import ConfigError, DecodeError
from tidal.settings import IMAGES_PER_PARTITION, s3_endpoint_url
from tidal.sources._paths import (
    check_geometry,
    list_media,
    prefetched,
    read_content,
    rotate_picture,
    scaled_size,
)
from tidal.sources.base import Item, ItemFailure, Partition, Source

IMAGE_EXTENSIONS = ["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff"]


class Images(Source):
    """Image files (jpg, png, bmp, webp, tif) as ``HxWx3`` uint8 RGB arrays, from disk or an
    object store (``s3://bucket/photos/*.jpg``; fetched a few ahead while decoding).

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
        self._endpoint = s3_endpoint_url()  # travels to workers with the source

    def partitions(self) -> list[Partition]:
        """The files in sorted order, ``per_partition`` to a partition."""
        files = list_media(self.paths, tuple(IMAGE_EXTENSIONS), self._endpoint)
        entries = [(file.location, file.checked_fingerprint()) for file in files]
        chunks = [
            tuple(entries[start : start + self.per_partition])
            for start in range(0, len(entries), self.per_partition)
        ]
        return [Partition(id=_partition_id(chunk), size=len(chunk), payload=chunk) for chunk in chunks]

    def read(self, partition: Partition) -> Iterator[Item | ItemFailure]:
        """Decode each file of the partition; a file that is no image yields an ItemFailure."""
        fetched = prefetched(self._fetch, partition.payload)
        for (path, expected), content in zip(partition.payload, fetched, strict=True):
            yield self._decode(path, expected, content)

    def _fetch(self, entry: tuple[str, str]) -> bytes | DecodeError:
        try:
            return read_content(*entry, self._endpoint)
        except DecodeError as error:
            return error

    def _decode(self, path: str, expected: str, content: bytes | DecodeError) -> Item | ItemFailure:
        key, meta = f"{path}@{expected}", {"path": path}
        if isinstance(content, DecodeError):
            return ItemFailure(key, str(content), meta)
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
    except Image.DecompressionBombError as error:  # whole, but too big to decode safely
        raise DecodeError(_too_large(name, str(error))) from None
    # Pillow's decoders raise many types on damaged data (OSError, SyntaxError, struct.error,
    # ValueError...): whatever they raise, the item is recorded as failed with the reason.
    except Exception as error:
        raise DecodeError(
            f"cannot decode image {name}: {type(error).__name__}: {error}; "
            "the file is truncated or corrupt, re-download or remove it"
        ) from error


def _too_large(name: str, message: str) -> str:
    """Pillow refuses an image over twice ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb
    guard): say how big it is and what to do, not that it is damaged."""
    found = re.search(r"\((\d+) pixels\)", message)
    pixels = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
    return (f"image {name} has {pixels}, more than {2 * (Image.MAX_IMAGE_PIXELS or 0):,} that are decoded "
            "(Pillow's guard against decompression bombs); scale the image down first")


def _picture(image: Image.Image, width: int | None, height: int | None, rotate: int) -> np.ndarray:
    size = scaled_size(image.width, image.height, width, height, rotate)
    if size != image.size:
        # JPEG only: decode at 1/2, 1/4 or 1/8 scale when still larger than the size wanted.
        image.draft("RGB", size)
    rgb = image.convert("RGB")
    if rgb.size != size:
        rgb = rgb.resize(size, Image.Resampling.BILINEAR)
    return rotate_picture(np.array(rgb), rotate)
