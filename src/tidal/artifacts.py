"""``tidal.artifacts.get``: model weights and datasets from object stores, cached locally by version.

Example::

    weights = tidal.artifacts.get("s3://models/detectron2/model_final.pth")   # a local file
    images = tidal.artifacts.get("s3://datasets/balloon/train/")              # a local folder

The cache (``$TIDAL_HOME/cache``, or ``cache=``) is keyed by the URL and its objects' ETags (or the
store's own content hash): a second call with nothing changed reads only the listing; an object
replaced in the bucket is fetched again, into a new version folder. Downloads go to a temporary name
renamed when complete, so an interrupted download is never taken for a cached one. The endpoint
(MinIO) and credentials are the sources' (``TIDAL_S3_ENDPOINT_URL``, ``AWS_*``). A local path is
returned as it is.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from tidal import settings
from tidal.errors import UsageError

__all__ = ["get"]


def get(url: str, *, cache: Path | None = None) -> Path:
    """A local copy of ``url`` (one object, or every object under a prefix ending in ``/``)."""
    # imported here: ``import tidal`` stays light (the sources' helpers bring NumPy)
    from tidal.sources._objects import filesystem, is_url, listing_errors

    if not is_url(url):
        path = Path(url).expanduser()
        if not path.exists():
            raise UsageError(f"{url}: no such file or folder; check the path, or give an s3:// URL")
        return path
    fs = filesystem(url, None)
    with listing_errors(url, None):
        objects = _objects(fs, url)
    version = hashlib.sha256(repr((url, sorted((name, print_) for name, _, print_ in objects))).encode())
    folder = (cache or settings.home() / "cache") / _readable(url) / version.hexdigest()[:16]
    if not folder.exists():
        _download(fs, url, objects, folder)
    single = not url.endswith("/") and len(objects) == 1 and objects[0][0] == ""
    return folder / _basename(url) if single else folder


def _objects(fs: Any, url: str) -> list[tuple[str, str, str]]:
    """(name under the URL, the object's path, its fingerprint) of one object or a prefix's objects."""
    from tidal.sources._objects import object_fingerprint
    from tidal.sources._paths import fingerprint_file

    info = None if url.endswith("/") else _info(fs, url)
    if info is not None and info.get("type") == "file":
        return [("", info["name"], object_fingerprint(fs, info, fingerprint_file))]
    found = fs.find(url, detail=True)
    root = fs._strip_protocol(url).rstrip("/") + "/"
    files = [(name[len(root):], name, object_fingerprint(fs, details, fingerprint_file))
             for name, details in sorted(found.items()) if details.get("type") == "file"]
    if not files:
        raise UsageError(f"{url} names no object (nor a prefix holding any); check the bucket and the key")
    return files


def _info(fs: Any, url: str) -> dict[str, Any] | None:
    try:
        return dict(fs.info(url))
    except FileNotFoundError:
        return None


def _download(fs: Any, url: str, objects: list[tuple[str, str, str]], folder: Path) -> None:
    """Into a temporary folder beside the version's, renamed to it once every object is there."""
    from tidal.sources._objects import listing_errors

    partial = folder.with_name(f".{folder.name}-{uuid.uuid4().hex[:8]}.partial")
    try:
        for name, path, _ in objects:
            target = partial / (name or _basename(url))
            if ".." in Path(name).parts:
                raise UsageError(f"{url}: the object {path!r} would leave the cache folder; refusing it")
            target.parent.mkdir(parents=True, exist_ok=True)
            with listing_errors(url, None):
                fs.get_file(path, str(target))
        try:
            os.replace(partial, folder)
        except OSError:  # another process finished the same version first: theirs is as good
            if not folder.exists():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _basename(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1] or "object"


def _readable(url: str) -> str:
    """The URL as a folder name a person recognises (the version folder below it is exact)."""
    text = url.split("://", 1)[1].rstrip("/")
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:120] or "object"
