"""The Dagster run configs are generated from (or mirror) the pure option dataclasses.

Dagster needs pydantic Config classes for the UI's launchpad, the pure modules keep plain
dataclasses (no Dagster import); these tests keep the two from drifting apart.
"""

from __future__ import annotations

import dataclasses

from quality_assets.cleaning import CleaningPolicy
from quality_assets.defs.gates import GateThresholds
from quality_assets.defs.scoring.assets import CleaningConfig, ScoreRunConfig
from quality_assets.issue_types import issue_types
from quality_assets.scoring import ScoreConfig


def test_cleaning_config_mirrors_the_policy():
    expected = {f.name: f.default for f in dataclasses.fields(CleaningPolicy)}
    got = {name: field.default for name, field in CleaningConfig.model_fields.items()}
    assert got == expected
    assert CleaningPolicy(**CleaningConfig().model_dump()) == CleaningPolicy()


def test_score_run_config_has_one_section_per_issue_type_with_its_options():
    assert set(ScoreRunConfig.model_fields) == {t.name for t in issue_types()}
    dumped = ScoreRunConfig().model_dump()
    for t in issue_types():
        assert dumped[t.name] == dataclasses.asdict(t.Options()), t.name
    # A default run config builds the default options.
    assert ScoreConfig(dumped).to_dict() == ScoreConfig().to_dict()


def test_a_run_config_section_reaches_its_issue_type_only():
    dumped = ScoreRunConfig(near_duplicate={"alpha": 0.02, "pixel_evidence": False}).model_dump()
    config = ScoreConfig(dumped)
    assert config.of("near_duplicate").alpha == 0.02 and config.of("near_duplicate").pixel_evidence is False
    assert config.of("off_topic").alpha == 0.1


def test_gate_thresholds_have_a_threshold_and_a_blocking_flag_per_gated_type():
    gates = GateThresholds()
    for t in issue_types():
        if t.gate is None:
            continue
        assert getattr(gates, f"max_{t.gate.rate_key}") == t.gate.threshold
        assert getattr(gates, f"{t.name}_blocking") is t.gate.blocking
    assert gates.max_cleaned_leakage_rate == 0.0
