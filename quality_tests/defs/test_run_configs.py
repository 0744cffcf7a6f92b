"""The Dagster run configs mirror the pure option dataclasses field for field.

Dagster needs pydantic Config classes for the UI's launchpad, the pure modules keep plain
dataclasses (no Dagster import); this test keeps the two from drifting apart.
"""

from __future__ import annotations

import dataclasses

import pytest

from quality_assets.cleaning import CleaningPolicy
from quality_assets.defs.scoring.assets import CleaningConfig, ScoreRunConfig
from quality_assets.scoring import ScoreConfig


@pytest.mark.parametrize("config_class, options_class", [(ScoreRunConfig, ScoreConfig), (CleaningConfig, CleaningPolicy)])
def test_run_config_mirrors_the_options(config_class, options_class):
    expected = {f.name: f.default for f in dataclasses.fields(options_class)}
    got = {name: field.default for name, field in config_class.model_fields.items()}
    assert got == expected
    # And a default run config builds the default options.
    assert options_class(**config_class().model_dump()) == options_class()
