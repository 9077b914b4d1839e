"""A step's identity: what went into it, hashed. Same identity, same results: the step is reused.

The identity of a step hashes

- its canonical config (defaults filled, keys sorted: the same as ``tidal map``'s job id),
- the code it runs: the module of its processor (or reducer) **and every module of the user's own
  packages that module imports, directly or through helpers**, found by reading their ``import``
  statements (so a helper two imports away counts, and a module merely present does not); a
  class may instead declare ``version = "2"``, and only that counts. For tidal's built-ins the
  module's own source and tidal's version count;
- its environment's resolved versions (``pip freeze``), when it has one;
- the identities of the steps it reads.

It is the step's job id, so the ledger of that job holds the step's cached items: an unchanged
step resumes (everything is settled, nothing runs), a changed one is a new job.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tidal.config.spec import import_dotted, import_paths

DIGEST_LENGTH = 12


def digest(value: Any) -> str:
    """12 hex digits of the sha256 of ``value``'s canonical JSON."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_LENGTH]


def code_identity(target: str, own_packages: Iterable[str], paths: Iterable[str] = ()) -> dict[str, str]:
    """``{module: digest of its source}`` for the code ``target`` (a dotted name) runs, or
    ``{"version": v}`` when the class declares ``version``.

    ``own_packages``: the top-level packages whose modules count (the config's ``imports``).

    Example::

        code_identity("bodies.Measure", ["bodies"])   # {"bodies": "…", "bodies.geometry": "…"}
    """
    with import_paths(list(paths)):
        obj = import_dotted(target, target)
        declared = getattr(obj, "version", None)
        if isinstance(declared, (str, int)) and not isinstance(declared, bool):
            return {"version": str(declared)}
        module = getattr(obj, "__module__", None) or target.rsplit(".", 1)[0]
        if module == "tidal" or module.startswith("tidal."):
            from tidal import __version__

            return {module: _file_digest(_module_file(module)), "tidal": __version__}
        roots = {name.split(".")[0] for name in own_packages} | {module.split(".")[0]}
        return _walk(module, roots)


def _walk(first: str, roots: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    pending = [first]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        path = _module_file(name)
        if path is None:
            continue
        found[name] = _file_digest(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        pending.extend(imported for imported in _imports(path, package) if imported.split(".")[0] in roots)
        if "." in name:  # a package's __init__ runs before its modules
            pending.append(name.rpartition(".")[0])
    return dict(sorted(found.items()))


def _imports(path: Path, package: str) -> list[str]:
    """Module names the file imports (a ``from m import x`` also tries ``m.x``, maybe a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module or "", node.level, package)
            if base:
                names.append(base)
                names.extend(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _absolute(module: str, level: int, package: str) -> str:
    if level == 0:
        return module
    parts = package.split(".")
    base = parts[: len(parts) - (level - 1)] if level > 1 else parts
    return ".".join([*base, module] if module else base)


def _module_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _file_digest(path: Path | None) -> str:
    if path is None:
        return "missing"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:DIGEST_LENGTH]


def changed_parts(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs between two identity records, in words: ``code of bodies.geometry``..."""
    reasons = []
    for part in ("config", "code", "environment", "inputs"):
        old, new = before.get(part), after.get(part)
        if old == new:
            continue
        if part == "code" and isinstance(old, dict) and isinstance(new, dict):
            modules = sorted(name for name in {*old, *new} if old.get(name) != new.get(name))
            reasons.append(f"code of {', '.join(modules)} changed")
        elif part == "inputs":
            reasons.append("an earlier step changed")
        else:
            reasons.append(f"its {part} changed")
    return reasons
