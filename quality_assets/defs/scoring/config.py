"""Dagster run config and gate thresholds generated from the issue-type registry.

Each issue type's options dataclass becomes a nested `dg.Config` under `ScoreRunConfig`, and each
declared gate becomes two fields of the `gates` resource (`max_<rate>`, `<type>_blocking`): a new
issue type reaches the launchpad and the gates without a hand-copied mirror.
"""

from __future__ import annotations

import dataclasses
import functools
import typing

import dagster as dg
import pydantic

from quality_assets.issue_types import gate_fields, issue_types


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def options_config_class(issue_type) -> type[dg.Config]:
    """A `dg.Config` with the fields and defaults of the type's options dataclass."""
    hints = typing.get_type_hints(issue_type.Options)
    fields = {f.name: (hints[f.name], f.default) for f in dataclasses.fields(issue_type.Options)}
    return pydantic.create_model(f"{_camel(issue_type.name)}Options", __base__=dg.Config, **fields)


def _registry_key() -> tuple:
    return tuple((t.name, type(t), t.gate) for t in issue_types())


def score_run_config_class() -> type[dg.Config]:
    """`ScoreRunConfig`: one nested section per registered issue type (one class per registry state,
    so repeated calls give the same class)."""
    return _score_run_config_class(_registry_key())


@functools.lru_cache(maxsize=None)
def _score_run_config_class(key: tuple) -> type[dg.Config]:
    fields = {}
    for t in issue_types():
        section = options_config_class(t)
        fields[t.name] = (section, pydantic.Field(default_factory=section, description=t.title))
    return pydantic.create_model("ScoreRunConfig", __base__=dg.Config, **fields)


class _GateThresholdsBase(dg.ConfigurableResource):
    """Rates above these fail the gate. `<type>_blocking=False` turns a gate into a warning."""


def gate_thresholds_class() -> type[dg.ConfigurableResource]:
    """The `gates` resource: `max_<rate>` and `<type>_blocking` per gated issue type, and the cleaned
    split's own threshold (`issue_types.gate_fields`, which the command line's flags read too)."""
    return _gate_thresholds_class(_registry_key())


@functools.lru_cache(maxsize=None)
def _gate_thresholds_class(key: tuple) -> type[dg.ConfigurableResource]:
    return pydantic.create_model("GateThresholds", __base__=_GateThresholdsBase, **gate_fields())
