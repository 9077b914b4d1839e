"""Sources: where items come from. Imported lazily so ``import tidal`` stays light."""

from __future__ import annotations

import importlib
from typing import Any

from tidal.sources.base import Item, ItemFailure, Partition, Source

_LAZY = {
    "VideoFrames": "tidal.sources.video",
    "Images": "tidal.sources.images",
    "TarShards": "tidal.sources.tar",
    "Range": "tidal.sources.range",
    "VideoClips": "tidal.sources.clips",
}

__all__ = ["Item", "ItemFailure", "Partition", "Source", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tidal.sources' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
