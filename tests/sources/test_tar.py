"""TarShards over tar files built from real JPEG frames."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from source_suite import FileSourceSuite, MakeSource

from tidal.errors import DecodeError
from tidal.sources._paths import fingerprint
from tidal.sources.base import Item, ItemFailure
from tidal.sources.images import Images
from tidal.sources.tar import TarShards


def encoded(frame: np.ndarray, image_format: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format=image_format)
    return buffer.getvalue()


def jpeg(frame: np.ndarray) -> bytes:
    return encoded(frame)


def build_tar(path: Path, members: list[tuple[str, bytes]], compression: str = "") -> Path:
    with tarfile.open(path, f"w:{compression}") as archive:  # type: ignore[call-overload]
        directory = tarfile.TarInfo("samples")
        directory.type = tarfile.DIRTYPE
        archive.addfile(directory)
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return path


@pytest.fixture
def members(bikes_frames: list[np.ndarray]) -> list[tuple[str, bytes]]:
    """Six real JPEGs, a caption, and a text file pretending to be a JPEG, WebDataset style."""
    entries = []
    for number, frame in enumerate(bikes_frames[:6]):
        entries += [
            (f"samples/{number:03d}.jpg", jpeg(frame)),
            (f"samples/{number:03d}.txt", b"hi"),
        ]
    return [*entries, ("samples/999.jpg", b"not a jpeg")]


class TestTarShards(FileSourceSuite):
    @pytest.fixture
    def media_files(self, tmp_path: Path, bikes_frames: list[np.ndarray]) -> list[Path]:
        """A plain shard of PNGs (so damage in its middle shows) and a gzipped one of JPEGs,
        each with a caption member that is not an image."""
        plain = [("samples/000.txt", b"caption"), *[(f"samples/{n:03d}.png", encoded(f, "PNG")) for n, f in
                                                     enumerate(bikes_frames[:3])]]
        gzipped = [("samples/100.txt", b"caption"), *[(f"samples/{n:03d}.jpg", encoded(f)) for n, f in
                                                       enumerate(bikes_frames[3:6])]]
        return [build_tar(tmp_path / "shard0.tar", plain), build_tar(tmp_path / "shard1.tar.gz", gzipped, "gz")]

    @pytest.fixture
    def make_source(self) -> MakeSource:
        return lambda paths: TarShards(paths, width=64)


def read_all(source: TarShards | Images) -> list[Item | ItemFailure]:
    return [item for partition in source.partitions() for item in source.read(partition)]


@pytest.mark.parametrize(("suffix", "compression"), [(".tar", ""), (".tar.gz", "gz")])
def test_reads_image_members_in_archive_order(
    tmp_path: Path, members: list[tuple[str, bytes]], suffix: str, compression: str
) -> None:
    shard = build_tar(tmp_path / f"shard{suffix}", members, compression)
    source = TarShards(str(tmp_path), width=160)
    [partition] = source.partitions()
    assert partition.size is None and partition.id == f"{shard}@{fingerprint(shard)}"
    items = list(source.read(partition))
    names = [f"samples/{number:03d}.jpg" for number in [0, 1, 2, 3, 4, 5, 999]]
    assert [item.meta for item in items] == [{"path": str(shard), "member": n} for n in names]
    assert [item.key for item in items] == [f"{partition.id}:{name}" for name in names]
    assert all(isinstance(item, Item) and item.data.shape == (68, 160, 3) for item in items[:-1])
    assert isinstance(items[-1], ItemFailure) and "not an image Pillow can read" in items[-1].error


def test_members_decode_like_image_files(tmp_path: Path, members: list[tuple[str, bytes]]) -> None:
    build_tar(tmp_path / "shard.tar", members[:1])
    (tmp_path / "000.jpg").write_bytes(members[0][1])
    [member] = read_all(TarShards(str(tmp_path / "shard.tar"), height=50, rotate=180))
    [image] = read_all(Images(str(tmp_path / "000.jpg"), height=50, rotate=180))
    assert isinstance(member, Item) and isinstance(image, Item)
    np.testing.assert_array_equal(member.data, image.data)


def test_extensions_choose_the_members(tmp_path: Path, members: list[tuple[str, bytes]]) -> None:
    build_tar(tmp_path / "shard.tar", members)
    items = read_all(TarShards(str(tmp_path / "shard.tar"), extensions=[".TXT"]))
    assert len(items) == 6 and all(isinstance(item, ItemFailure) for item in items)


def test_truncated_shard_raises_after_the_members_read(
    tmp_path: Path, members: list[tuple[str, bytes]]
) -> None:
    shard = build_tar(tmp_path / "shard.tar", members)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size * 6 // 10])
    source = TarShards(str(shard))
    [partition] = source.partitions()
    read: list[Item | ItemFailure] = []
    with pytest.raises(DecodeError, match=r"cannot read tar shard .*shard\.tar after \d+"):
        read.extend(source.read(partition))
    assert 0 < len(read) < 6 and all(isinstance(item, Item) for item in read)


def test_a_file_that_is_not_a_tar_raises(tmp_path: Path) -> None:
    fake = tmp_path / "fake.tar"
    fake.write_bytes(b"no tar here" * 100)
    source = TarShards(str(fake))
    [partition] = source.partitions()
    with pytest.raises(DecodeError, match=r"fake\.tar after 0 image members"):
        list(source.read(partition))


def test_repeated_member_names_get_keys_of_their_own(
    tmp_path: Path, members: list[tuple[str, bytes]]
) -> None:
    build_tar(tmp_path / "shard.tar", [members[0], members[0]])
    first, second = read_all(TarShards(str(tmp_path / "shard.tar")))
    assert second.key == f"{first.key}#1"


@pytest.mark.parametrize("damage", ["bad checksum", "cut before it"])
def test_a_damaged_member_header_raises_instead_of_ending_the_shard(
    tmp_path: Path, members: list[tuple[str, bytes]], damage: str
) -> None:
    shard = build_tar(tmp_path / "shard.tar", [members[0], members[2], members[4]])
    with tarfile.open(shard) as archive:
        offset = archive.getmember("samples/001.jpg").offset
    data = bytearray(shard.read_bytes())
    if damage == "bad checksum":
        data[offset : offset + 4] = b"XXXX"
    else:
        del data[offset:]
    shard.write_bytes(bytes(data))
    source = TarShards(str(shard))
    [partition] = source.partitions()
    read: list[Item | ItemFailure] = []
    expected = rf"shard\.tar after 1 image members \(no valid member header at byte {offset}"
    with pytest.raises(DecodeError, match=expected):
        read.extend(source.read(partition))
    assert [item.meta["member"] for item in read] == ["samples/000.jpg"]
