"""Submodules named in configs: ``"features"``, and ``"features@0"`` for ``features[0]``.

``@`` separates nesting levels because a config's dotted names are Python paths; a name that
does not exist is refused with the names that do (and the closest one).
"""

from __future__ import annotations

import difflib

from torch import nn

from tidal.errors import ConfigError


def submodule(model: nn.Module, name: str, where: str) -> nn.Module:
    """The submodule ``name`` (``@``-separated) of ``model``."""
    path = name.replace("@", ".")
    try:
        return model.get_submodule(path)
    except AttributeError:
        names = submodule_names(model)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"{where}: {type(model).__name__} has no submodule {name!r}; {hint}"
                          f"its submodules: {', '.join(names)}") from None


def submodule_names(model: nn.Module, depth: int = 3) -> list[str]:
    """The submodules' names in config spelling, down to ``depth`` levels."""
    return [name.replace(".", "@") for name, _ in model.named_modules()
            if name and name.count(".") < depth]


def freeze(model: nn.Module, names: list[str], where: str) -> int:
    """Make every parameter trainable, then fix those under ``names``; returns how many stay trainable."""
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    for name in names:
        for parameter in submodule(model, name, where).parameters():
            parameter.requires_grad_(False)
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
