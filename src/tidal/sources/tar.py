"""Images inside tar shards (WebDataset style), streamed from the archive, never extracted."""

from __future__ import annotations

import lzma
import tarfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from typing import IO, Literal

from tidal.errors import DecodeError
from tidal.settings import s3_endpoint_url
from tidal.sources._paths import Readable, check_geometry, list_media, opened
from tidal.sources.base import Item, ItemFailure, Partition, Source
from tidal.sources.images import IMAGE_EXTENSIONS, decode_image

TAR_EXTENSIONS = ("tar", "tar.gz", "tgz", "tar.bz2", "tbz2", "tar.xz", "txz")
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)
# The all-zero block that ends an archive; not in typeshed's tarfile.
_END_OF_ARCHIVE: type[Exception] = tarfile.EOFHeaderError  # type: ignore[attr-defined]


class _DamagedShard(tarfile.TarError):
    """A member header that is damaged or missing where the archive has not ended."""


class _CheckedHeader(tarfile.TarInfo):
    """A member header that never passes for the end of the archive.

    After the first member, tarfile takes a damaged header (bad checksum) or data that stops
    where the next header should be for the end of the archive, so the shard's remaining
    members would be lost without a word. Here only the end-of-archive block ends a shard.
    """

    @classmethod
    def fromtarfile(cls, archive: tarfile.TarFile) -> _CheckedHeader:
        try:
            return super().fromtarfile(archive)
        except _END_OF_ARCHIVE:
            raise
        except tarfile.HeaderError as error:
            raise _DamagedShard(
                f"no valid member header at byte {archive.offset} ({error}), before the archive's end"
            ) from error


class TarShards(Source):
    """Image members of tar files (``.tar``, ``.tar.gz``, ``.tar.bz2``, ``.tar.xz``), one
    partition per shard. Members whose name ends in one of ``extensions`` are decoded like
    :class:`~tidal.sources.images.Images`; the others are skipped. Shards in an object store
    (``s3://bucket/shards/*.tar``) are streamed from it the same way.

    Example::

        TarShards(paths="shards/*.tar", width=256)
    """

    def __init__(
        self,
        paths: str | list[str],
        width: int | None = None,
        height: int | None = None,
        rotate: Literal[0, 90, 180, 270] = 0,
        extensions: list[str] = IMAGE_EXTENSIONS,
    ) -> None:
        check_geometry(width, height, rotate)
        self.paths = paths
        self.width = width
        self.height = height
        self.rotate = rotate
        self.extensions = [extension.lower().lstrip(".") for extension in extensions]
        self._endpoint = s3_endpoint_url()  # travels to workers with the source

    def partitions(self) -> list[Partition]:
        """One partition per shard; its size is unknown until it is read."""
        shards = list_media(self.paths, TAR_EXTENSIONS, self._endpoint)
        return [
            Partition(id=f"{shard.location}@{digest}", size=None, payload=(shard.location, digest))
            for shard, digest in ((shard, shard.checked_fingerprint()) for shard in shards)
        ]

    def read(self, partition: Partition) -> Iterator[Item | ItemFailure]:
        """Stream the shard's members in archive order, decoding the images among them."""
        shard, digest = partition.payload
        seen: Counter[str] = Counter()
        try:
            with opened(shard, digest, self._endpoint) as readable, _archive(readable) as archive:
                for name, content in _image_members(archive, self._wanted):
                    # A name repeated in one archive still gets a key of its own.
                    suffix = f"#{seen[name]}" if seen[name] else ""
                    seen[name] += 1
                    yield self._item(f"{shard}@{digest}:{name}{suffix}", shard, name, content)
        except _ARCHIVE_ERRORS as error:
            raise DecodeError(
                f"cannot read tar shard {shard} after {seen.total()} image members ({error}): "
                "it is truncated, corrupt or not a tar; re-download or rebuild it"
            ) from error

    def _wanted(self, name: str) -> bool:
        return name.lower().rpartition(".")[2] in self.extensions

    def _item(self, key: str, shard: str, name: str, content: bytes) -> Item | ItemFailure:
        meta = {"path": shard, "member": name}
        try:
            picture = decode_image(content, f"{shard}:{name}", self.width, self.height, self.rotate)
        except DecodeError as error:
            return ItemFailure(key, str(error), meta)
        return Item(key, picture, meta)


def _archive(readable: Readable) -> tarfile.TarFile:
    """The shard as a stream of members: a local path, or an object read through once."""
    if isinstance(readable, str):
        return tarfile.open(readable, mode="r|*", tarinfo=_CheckedHeader)
    return tarfile.open(fileobj=readable, mode="r|*", tarinfo=_CheckedHeader)


def _image_members(
    archive: tarfile.TarFile, wanted: Callable[[str], bool]
) -> Iterator[tuple[str, bytes]]:
    """``(name, content)`` of the regular members whose name ``wanted`` accepts, in order."""
    for member in archive:
        if not member.isfile() or not wanted(member.name):
            continue
        file: IO[bytes] | None = archive.extractfile(member)
        if file is not None:
            yield member.name, file.read()
