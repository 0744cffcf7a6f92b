"""The code version of a stage: the package version and a hash of the source of the stage's modules
and of every `quality_assets` module they import (found statically, so the version does not depend
on what else the process happened to import; a sub-package counts with all its modules, since a
registry may import them at run time).

A stored graph, score run or cleaned split is reused only when its version, which includes this
hash, is already stored: editing any module a stage runs makes the next run redo that stage.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from quality_assets.store import load_sql

PACKAGE = "quality_assets"
_PACKAGE_DIR = Path(__file__).resolve().parent


def _module_file(name: str) -> Path | None:
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    parts = name.split(".")[1:]
    base = _PACKAGE_DIR.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _statements(body: list[ast.stmt]):
    """Every statement of a body and of the bodies nested in it (functions, classes, if, with, try,
    loops, match cases). An import is a statement: the expressions, most of a module's nodes, need no
    visit (`ast.walk` over them took most of the 1.1 s a process spent on code versions)."""
    for node in body:
        yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, field, None)
            if isinstance(children, list):   # a lambda's or a conditional expression's body is one expression
                yield from _statements(children)


@lru_cache(maxsize=None)
def _imported_modules(path: Path) -> frozenset[str]:
    """Package modules a file imports anywhere (function-level imports included). Read once a process:
    every stage's version walks the same shared modules."""
    names: set[str] = set()
    for node in _statements(ast.parse(path.read_text(), filename=str(path)).body):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from quality_assets.scores import leakage` imports a module, not a name.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(name for name in names if _module_file(name) is not None)


@lru_cache(maxsize=None)
def code_version(*roots: str, sql: tuple[str, ...] = ()) -> str:
    """16 hex digits over the package version, the sources reachable from `roots` and the named
    SQL files the stage reads its inputs with."""
    seen: dict[str, Path] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        path = _module_file(name)
        if name in seen or path is None:
            continue
        seen[name] = path
        pending.extend(_imported_modules(path))
        if path.name == "__init__.py" and name != PACKAGE:
            # A sub-package may find its modules at run time (the issue-type registry does).
            pending.extend(f"{name}.{child.stem}" for child in path.parent.glob("*.py") if child.stem != "__init__")
    try:
        package_version = metadata.version("quality-assets")
    except metadata.PackageNotFoundError:
        package_version = "unknown"
    digest = hashlib.sha256(package_version.encode())
    for name in sorted(seen):
        digest.update(b"\0" + name.encode() + b"\0" + seen[name].read_bytes())
    for name in sorted(sql):
        digest.update(b"\0" + name.encode() + b"\0" + load_sql(name).encode())
    return digest.hexdigest()[:16]
