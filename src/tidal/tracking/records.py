"""What a run logs, checked and made storable in the caller.

Everything a store could refuse later (a step past 64 bits, a key over 250 characters, a value
that is not a number, a CHW image, an artifact name with ``..``, a file deleted before the
writer copies it) is either a :class:`~tidal.errors.UsageError` here, at the call, where the user
can fix it, or normalised here (CHW → HWC, NUL → U+FFFD, a snapshot of mutable input). The writer
thread then never holds a record that no store will take.

Example::

    step = check_step("loss", 3)                      # 3; 2**63 raises UsageError
    picture = image_snapshot("frame", np.zeros((3, 32, 32), np.uint8))   # a 32x32x3 copy
"""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from tidal.errors import ArtifactNameError, UsageError
from tidal.tracking.artifacts import normalize_name

MAX_KEY_LENGTH = 250  # the stores' key columns: varchar(250)
MIN_STEP, MAX_STEP = -(2**63), 2**63 - 1  # steps are 64-bit in every store
MAX_STREAM_LENGTH = 8  # the logs' stream column: varchar(8)
MAX_LOG_CHUNK = 256 * 1024  # a longer console chunk is sent as several rows (a request stays small)
MAX_VALUE_BYTES = 1024 * 1024  # a param, tag set or stats bigger than this belongs in an artifact
CHANNELS = (1, 3, 4)


def check_key(key: Any, what: str) -> str:
    """``key`` if a store can keep it as the name of a ``what`` (a metric, a param...)."""
    if not isinstance(key, str) or not key:
        raise UsageError(f"{what} key {key!r}: a key is a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise UsageError(f"{what} key {key[:40]!r}... is {len(key)} characters long; "
                         f"stores keep at most {MAX_KEY_LENGTH}: use a shorter name")
    if "\x00" in key or not _encodable(key):
        raise UsageError(f"{what} key {key!r} holds a NUL character or a lone surrogate; "
                         "use plain text")
    return key


def check_step(key: str, step: Any) -> int | None:
    """The step as an int in the 64-bit range every store keeps (None: no step)."""
    if step is None or (type(step) is int and MIN_STEP <= step <= MAX_STEP):
        return step
    whole = isinstance(step, float) and step.is_integer()
    if whole or (isinstance(step, numbers.Integral) and not isinstance(step, bool)):
        step = int(step)
    else:
        raise UsageError(f"metric {key!r}: step {step!r} is not a whole number; pass an int (or None)")
    if not MIN_STEP <= step <= MAX_STEP:
        raise UsageError(f"metric {key!r}: step {step} does not fit in 64 bits "
                         f"({MIN_STEP}..{MAX_STEP}); use a smaller step")
    return step


def metric_value(key: str, value: Any) -> float:
    """``value`` as a float (NaN and infinities are kept); anything else is refused here."""
    if type(value) is float:
        return value
    if isinstance(value, str | bytes) or not (isinstance(value, numbers.Real) or hasattr(value, "__float__")):
        raise UsageError(f"metric {key!r}: {value!r} is not a number; log numbers, or use log_params")
    try:
        return float(value)
    except OverflowError:
        raise UsageError(f"metric {key!r}: {value!r} is too large for a 64-bit float") from None
    except (TypeError, ValueError) as error:  # an array of several numbers, a tensor on a GPU...
        raise UsageError(f"metric {key!r}: {type(value).__name__} is not one number ({error}); "
                         "log a single number, e.g. value.item()") from None


def json_snapshot(values: dict[str, Any], what: str) -> dict[str, Any]:
    """A JSON copy of ``values`` (the caller may change its dict later), keys checked; what is not
    JSON is kept as its text, as the stores do."""
    for key in values:
        check_key(key, what)
    try:
        text = json.dumps(values, default=str)
    except (TypeError, ValueError, RecursionError) as error:
        raise UsageError(f"{what}s {list(values)[:5]}: cannot be written as JSON ({error}); "
                         "log plain numbers, strings, lists and dicts") from None
    if len(text) > MAX_VALUE_BYTES:
        raise UsageError(f"{what}s {list(values)[:5]} are {len(text)} bytes as JSON, more than "
                         f"{MAX_VALUE_BYTES}; save big values with log_artifact instead")
    return json.loads(text.replace("\\u0000", "\\ufffd"))  # type: ignore[no-any-return]


def tag_values(tags: dict[Any, Any] | list[Any]) -> dict[str, str]:
    """Tags as ``{key: text}`` (a list of names: empty values)."""
    mapping = dict(tags) if isinstance(tags, dict) else {str(tag): "" for tag in tags}
    return {check_key(key, "tag"): clean_text(str(value)) for key, value in mapping.items()}


def clean_text(text: str) -> str:
    """Text every store keeps: NUL becomes U+FFFD (PostgreSQL has no NUL), lone surrogates '?'."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text if _encodable(text) else text.encode("utf-8", "replace").decode("utf-8")


def log_chunks(text: Any, stream: Any) -> list[str]:
    """Console text as rows a request can carry (long text is cut into several)."""
    if not isinstance(stream, str) or not 1 <= len(stream) <= MAX_STREAM_LENGTH:
        raise UsageError(f"log stream {stream!r}: use a name of 1 to {MAX_STREAM_LENGTH} characters, "
                         "like 'stdout' or 'stderr'")
    if not isinstance(text, str):
        raise UsageError(f"log text must be a str, not {type(text).__name__}")
    text = clean_text(text)
    return [text[start:start + MAX_LOG_CHUNK] for start in range(0, len(text), MAX_LOG_CHUNK)]


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- images ---------------------------------------------------------------------------------


def image_snapshot(key: str, image: Any) -> Any:
    """A copy of ``image`` the writer can encode later whatever the caller does with the original:
    an HxW or HxWxC uint8 array (CHW is turned to HWC), or a PIL image loaded in memory."""
    if isinstance(image, str | Path):
        return _image_file(key, Path(image))
    if hasattr(image, "save") and hasattr(image, "copy"):
        return image.copy()
    if not (hasattr(image, "__array_interface__") or hasattr(image, "__array__")):
        raise UsageError(f"image {key!r}: {type(image).__name__} is not an image; "
                         "pass a NumPy array, a PIL image or a file path")
    return _image_array(key, image)


def _image_file(key: str, path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise UsageError(f"image {key!r}: no file {str(path)!r}")
    try:
        with Image.open(path) as picture:
            picture.load()
            return picture.copy()
    except (OSError, UnidentifiedImageError) as error:
        raise UsageError(f"image {key!r}: cannot read {str(path)!r} as an image ({error})") from None


def _image_array(key: str, image: Any) -> Any:
    import numpy as np

    try:
        array = np.asarray(image)
    except Exception as error:  # a tensor on a GPU, say: the library's own message explains
        raise UsageError(f"image {key!r}: cannot read it as an array ({error}); pass a NumPy array") from None
    array = _channels_last(key, array)
    if array.dtype.kind not in "buif":
        raise UsageError(f"image {key!r}: an array of {array.dtype} is not an image; "
                         "use numbers (uint8 0-255, or floats 0-1)")
    return _as_uint8(array)


def _channels_last(key: str, array: Any) -> Any:
    """HxW, HxWxC, or CxHxW (turned to HxWxC) with C in 1, 3, 4; a single channel becomes HxW."""
    if array.ndim == 3 and array.shape[-1] not in CHANNELS and array.shape[0] in CHANNELS:
        array = array.transpose(1, 2, 0)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in CHANNELS) or array.size == 0:
        raise UsageError(f"image {key!r}: an array of shape {array.shape} is not an image; "
                         "use HxW, HxWxC or CxHxW with 1, 3 or 4 channels")
    return array


def _as_uint8(array: Any) -> Any:
    import numpy as np

    if array.dtype == np.uint8:
        return np.array(array, copy=True, order="C")
    if array.dtype.kind == "b":
        return array.astype(np.uint8) * 255
    values = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
    scale = 255.0 if array.dtype.kind == "f" and values.max() <= 1.0 else 1.0
    return np.clip(values * scale, 0, 255).astype(np.uint8)


# -- artifacts ------------------------------------------------------------------------------


@dataclass
class ArtifactFile:
    """A file to store as artifact ``name``, opened at the call: the open file survives the
    path being deleted (a ``NamedTemporaryFile``) before the writer copies it."""

    name: str
    path: Path
    file: BinaryIO


def artifact_file(path: str | Path, name: str | None) -> ArtifactFile:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"artifact {str(path)!r} does not exist (or is not a file); check the path")
    try:
        stored_name = normalize_name(name if name is not None else path.name)
    except ArtifactNameError as error:
        raise ArtifactNameError(f"cannot log {str(path)!r} as an artifact: {error}") from None
    try:
        return ArtifactFile(stored_name, path, path.open("rb"))
    except OSError as error:
        raise UsageError(f"cannot read artifact {str(path)!r}: {error.strerror or error}; check its "
                         "permissions") from None

