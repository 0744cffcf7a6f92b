"""The one registry of issue types.

Built-in types live in this package, one module each, and are found by importing every module
here (`pkgutil`), so a new type is its module and its test. `register` also takes a class from
anywhere (a plugin, a test). Order: the `requires` graph first, then registration order, which is
also the report's reading order.

A unit imports its scoring modules inside its methods, not at the top: loading the registry (names,
options, gates: the run config's schema and the command line's flags) then costs about 0.7 s and
no torch, scikit-learn or scipy.stats, where importing every scorer took 2.5 s; `qaudit audit --help`
is built from it (`quality_tests/issue_types/test_registry.py` guards this).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import typing
from typing import Any, Iterator, Mapping

from quality_assets.issue_types.base import IssueType

__all__ = ["CLEANED_SPLIT_GATE_FIELDS", "gate_fields", "get_issue_type", "issue_types", "iter_gated",
           "options_from_dict", "register", "unregister"]

_REGISTRY: dict[str, IssueType] = {}
_BUILTINS_LOADED = False
_NOT_UNITS = {"base", "registry"}


def register(cls: type[IssueType]) -> type[IssueType]:
    """Class decorator: add an issue type (an instance of it) to the registry."""
    for attr in ("name", "title", "description"):
        if not isinstance(getattr(cls, attr, None), str) or not getattr(cls, attr):
            raise TypeError(f"{cls.__name__} must set a non-empty class attribute {attr!r}")
    if not dataclasses.is_dataclass(cls.Options):
        raise TypeError(f"{cls.__name__}.Options must be a dataclass")
    if cls.gallery not in ("samples", "pairs", "partner"):
        raise ValueError(f"{cls.__name__}.gallery must be samples, pairs or partner")
    existing = _REGISTRY.get(cls.name)
    if existing is not None and type(existing).__qualname__ != cls.__qualname__:
        raise ValueError(f"issue type {cls.name!r} is registered twice ({type(existing).__name__}, {cls.__name__})")
    _REGISTRY[cls.name] = cls()
    return cls


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    package = importlib.import_module("quality_assets.issue_types")
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if module.name not in _NOT_UNITS and not module.name.startswith("_"):
            importlib.import_module(f"quality_assets.issue_types.{module.name}")


def _ordered(types: list[IssueType]) -> list[IssueType]:
    by_name = {t.name: t for t in types}
    done: dict[str, IssueType] = {}

    def visit(t: IssueType, path: tuple[str, ...]) -> None:
        if t.name in done:
            return
        if t.name in path:
            raise ValueError(f"issue types require each other in a cycle: {' -> '.join(path + (t.name,))}")
        for name in t.requires:
            if name not in by_name:
                raise ValueError(f"issue type {t.name!r} requires {name!r}, which is not registered")
            visit(by_name[name], path + (t.name,))
        done[t.name] = t

    for t in types:
        visit(t, ())
    return list(done.values())


_READING_ORDER = ("off_topic", "label_error", "near_duplicate", "leakage", "low_value")


def issue_types() -> list[IssueType]:
    """Every registered issue type, dependencies before dependants, in reading order otherwise."""
    _load_builtins()
    rank = {name: i for i, name in enumerate(_READING_ORDER)}
    listed = sorted(_REGISTRY.values(), key=lambda t: (rank.get(t.name, len(rank)), t.name))
    return _ordered(listed)


def get_issue_type(name: str) -> IssueType:
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown issue type {name!r}; known: {sorted(_REGISTRY)}") from None


def iter_gated() -> Iterator[IssueType]:
    return (t for t in issue_types() if t.gate is not None)


# The cleaned split's own gate (`defs.scoring.checks.build_cleaned_leakage_check`): not an issue
# type's, but a field of the same `gates` resource.
CLEANED_SPLIT_GATE_FIELDS: dict[str, tuple[type, Any]] = {"max_cleaned_leakage_rate": (float, 0.0)}


def gate_fields() -> dict[str, tuple[type, Any]]:
    """The `gates` resource's fields, name -> (type, default): the cleaned split's own, then
    `max_<rate>` and `<type>_blocking` per gated issue type, in registry order. Dagster's resource
    (`defs.scoring.config.gate_thresholds_class`) and the command line's flags are built from it."""
    fields = dict(CLEANED_SPLIT_GATE_FIELDS)
    for t in iter_gated():
        fields[f"max_{t.gate.rate_key}"] = (float, t.gate.threshold)
        fields[f"{t.name}_blocking"] = (bool, t.gate.blocking)
    return fields


def options_from_dict(values: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """{issue type: options instance}, defaults filled in; unknown types or fields raise."""
    values = dict(values or {})
    out = {}
    for t in issue_types():
        given = dict(values.pop(t.name, None) or {})
        known = {f.name for f in dataclasses.fields(t.Options)}
        unknown = set(given) - known
        if unknown:
            raise ValueError(f"unknown option(s) for issue type {t.name!r}: {sorted(unknown)}; known: {sorted(known)}")
        _check_option_types(t, given)
        out[t.name] = t.Options(**given)
    if values:
        raise ValueError(f"options for unknown issue type(s): {sorted(values)}")
    return out


# What each scalar option type accepts; a bool is never a number here (YAML's `yes` is, in Python).
_ACCEPTED = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}


def _check_option_types(t: IssueType, given: Mapping[str, Any]) -> None:
    """A value of the wrong type raises (a truthy string such as "no" would otherwise switch a
    boolean option on)."""
    hints = typing.get_type_hints(t.Options)
    for name, value in given.items():
        kind = hints.get(name)
        accepted = _ACCEPTED.get(kind)
        if accepted is None:
            continue
        if not isinstance(value, accepted) or (isinstance(value, bool) and kind is not bool):
            raise ValueError(f"option {t.name}.{name} must be {kind.__name__}, got {value!r}")
