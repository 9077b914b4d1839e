"""What can be checked in a training config before torch is imported: names and argument names.

Importing torch takes seconds; a misspelled class or argument should fail at once, with the
closest name. So, before anything is imported, each dotted name is looked up in the *source* of
its module: the module file is found on disk (its packages are not executed), parsed, and its
top-level names read. A class defined there (or imported there by name) also gives the argument
names of its ``__init__``.

The check only refuses what it is sure of. A module with a ``from x import *``, a module
``__getattr__`` without a literal ``__all__``, a class inheriting its ``__init__``, a
``**kwargs``: the name or argument is left to the full check, which imports.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tidal.config.spec import ObjectSpec
from tidal.errors import ConfigError

MAX_HOPS = 4  # `from .adam import Adam` chains followed to the class's definition


@dataclass(frozen=True)
class _Module:
    """The names a module's source defines at top level, and what we need of each."""

    name: str
    path: Path
    names: frozenset[str]  # every top-level name (classes, functions, assignments, imports)
    complete: bool  # False: a star import or a __getattr__ may define more
    nodes: dict[str, ast.AST]  # name -> its class or function definition
    imported: dict[str, str]  # name -> the dotted name it is imported from
    public: frozenset[str]  # what ``from module import *`` gives: ``__all__``, else names without _


def check_spec(spec: ObjectSpec, skip_first: bool = False) -> None:
    """Refuse ``spec`` (and its nested specs) when its source says a name or argument is wrong."""
    _check_target(spec, skip_first)
    for value in spec.kwargs.values():
        for nested in value if isinstance(value, list) else [value]:
            if isinstance(nested, ObjectSpec):
                check_spec(nested)


def _check_target(spec: ObjectSpec, skip_first: bool) -> None:
    if "." not in spec.target:
        return  # a registered name: its module is the user's, already imported
    located = _locate_attribute(spec.target)
    if located is None:
        return
    module, attribute = located
    if attribute not in module.names:
        if module.complete and not _is_submodule(module, attribute):
            _unknown_name(spec, module, attribute)
        return
    parameters = _parameters(module, attribute, MAX_HOPS)
    if parameters is not None:
        _check_arguments(spec, parameters[1 if skip_first else 0:])


def _unknown_name(spec: ObjectSpec, module: _Module, attribute: str) -> None:
    public = sorted(name for name in module.names if not name.startswith("_"))
    same_letters = [name for name in public if name.lower() == attribute.lower()]  # Adamw: AdamW, not Adam
    close = same_letters or difflib.get_close_matches(attribute, public, n=1)
    hint = f"; did you mean '{module.name}.{close[0]}'?" if close else ""
    raise ConfigError(f"{spec.where}: {spec.target!r} not found: {module.name!r} has no {attribute!r}{hint}")


def _check_arguments(spec: ObjectSpec, parameters: list[str]) -> None:
    for key in spec.kwargs:
        if key not in parameters:
            close = difflib.get_close_matches(key, parameters, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"{spec.where}.{key}: {spec.target} has no argument {key!r}; {hint}"
                              f"accepted: {', '.join(parameters) or 'none'}")


def _locate_attribute(target: str) -> tuple[_Module, str] | None:
    """The longest module prefix of ``target`` found on disk, and the attribute after it (only a
    plain ``module.Name``; ``module.Class.method`` is left to the full check)."""
    parts = target.split(".")
    module_name = ".".join(parts[:-1])
    module = _read_module(module_name)
    return None if module is None else (module, parts[-1])


@lru_cache(maxsize=256)
def _read_module(name: str) -> _Module | None:
    path = _module_file(name)
    if path is None:
        return None
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    return _summarise(name, path, tree)


def _module_file(name: str) -> Path | None:
    """The source file of module ``name``, found without executing any package's __init__."""
    top, *rest = name.split(".")
    if top in sys.builtin_module_names:
        return None
    spec = importlib.util.find_spec(top) if top not in sys.modules else sys.modules[top].__spec__
    if spec is None:
        return None
    folders = list(spec.submodule_search_locations or [])
    path = Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    for part in rest:
        path = _child(folders, part)
        if path is None:
            return None
        folders = [str(path.parent)] if path.name == "__init__.py" else []
    return path


def _child(folders: list[str], part: str) -> Path | None:
    for folder in folders:
        for candidate in (Path(folder) / part / "__init__.py", Path(folder) / f"{part}.py"):
            if candidate.is_file():
                return candidate
    return None


def _summarise(name: str, path: Path, tree: ast.Module) -> _Module:
    names: set[str] = set()
    nodes: dict[str, ast.AST] = {}
    imported: dict[str, str] = {}
    complete = True
    exported: list[str] | None = None
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _statements(tree.body):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
            nodes[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
            exported = _literal_all(node) if exported is None else exported
        elif isinstance(node, ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, package)
            for alias in node.names:
                if alias.name == "*":
                    complete = _star_import(source, names, imported) and complete
                    continue
                names.add(alias.asname or alias.name)
                imported[alias.asname or alias.name] = f"{source}.{alias.name}"
    if "__getattr__" in names:
        complete = complete and exported is not None
        names.update(exported or [])
    public = frozenset(exported if exported is not None else [n for n in names if not n.startswith("_")])
    return _Module(name, path, frozenset(names), complete, nodes, imported, public)


def _star_import(source: str, names: set[str], imported: dict[str, str]) -> bool:
    """Add what ``from source import *`` defines; False when that cannot be known."""
    module = _read_module(source)
    if module is None or not module.complete:
        return False
    names.update(module.public)
    imported.update({name: f"{source}.{name}" for name in module.public})
    return True


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Top-level statements, including those inside ``if``/``try``/``with`` blocks (an optional
    import defines its name there)."""
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.With, ast.For, ast.While)):
            yield from _statements([*node.body, *node.orelse] if not isinstance(node, ast.With) else node.body)
        elif isinstance(node, ast.Try):
            handlers = [statement for handler in node.handlers for statement in handler.body]
            yield from _statements([*node.body, *handlers, *node.orelse, *node.finalbody])


def _literal_all(node: ast.Assign | ast.AnnAssign) -> list[str] | None:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    if not any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
        return None
    try:
        value = ast.literal_eval(node.value) if node.value is not None else None
    except ValueError:
        return None
    return [str(item) for item in value] if isinstance(value, (list, tuple)) else None


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def _is_submodule(module: _Module, attribute: str) -> bool:
    return module.path.name == "__init__.py" and _child([str(module.path.parent)], attribute) is not None


def _parameters(module: _Module, attribute: str, hops: int) -> list[str] | None:
    """The keyword names a class's own ``__init__`` (or a function) accepts; None when unsure."""
    if attribute in module.imported and hops > 0:
        source = module.imported[attribute]
        located = _locate_attribute(source)
        if located is None or located[1] not in located[0].names:
            return None
        return _parameters(located[0], located[1], hops - 1)
    node = module.nodes.get(attribute)
    if isinstance(node, ast.ClassDef):
        init = next((item for item in node.body if isinstance(item, ast.FunctionDef) and item.name == "__init__"),
                    None)
        return None if init is None or node.decorator_list else _arguments(init, skip_self=True)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.decorator_list:
        return _arguments(node, skip_self=False)
    return None


def _arguments(function: ast.FunctionDef | ast.AsyncFunctionDef, skip_self: bool) -> list[str] | None:
    arguments = function.args
    if arguments.kwarg is not None:
        return None
    positional = [arg.arg for arg in [*arguments.posonlyargs, *arguments.args]]
    return positional[1 if skip_self else 0:] + [arg.arg for arg in arguments.kwonlyargs]
