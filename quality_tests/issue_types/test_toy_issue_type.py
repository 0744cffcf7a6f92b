"""A new issue type is its own module plus the registry: a toy type registered here (and nowhere
else) reaches the `issues` view, its run config section, the report and, since it declares a
rate, a gate of its own."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import numpy as np
import pytest

from quality_assets.defs.definitions import build_definitions
from quality_assets.defs.resources import QualityStoreResource
from quality_assets.defs.scoring.config import gate_thresholds_class
from quality_assets.issue_types import (
    Cutoff, GateSpec, IssueResult, IssueType, automatic_cut, get_issue_type, issue_types, register, unregister,
)
from quality_assets.report import write_report
from quality_tests.imagefolders import make_imagefolder

TINY_SSL = {"epochs": 1, "batch_size": 16, "time_budget_s": 20.0}


@dataclass(frozen=True)
class DarkestOptions(Cutoff):
    flag_share: float = 0.25        # the darkest quarter is flagged


class DarkestImages(IssueType):
    name = "toy_darkest"
    title = "Toy: the darkest images"
    description = "The darkest quarter of the images (a toy issue type registered by a test)."
    Options = DarkestOptions
    gate = GateSpec(rate_key="toy_darkest_rate", threshold=0.1, blocking=False, what="toy darkest rate",
                    description="Share of images the toy type flags.")

    def score(self, inputs, options, found):
        brightness = inputs.manifest["brightness_p95"].to_numpy(dtype=float)
        score = (brightness - brightness.min()) / max(np.ptp(brightness), 1e-9)
        flag = score <= np.quantile(score, options.flag_share)
        return IssueResult(score=score, is_issue=flag, summary={"toy_darkest_rate": float(flag.mean())})


@pytest.fixture
def toy_type():
    register(DarkestImages)
    yield get_issue_type("toy_darkest")
    unregister("toy_darkest")


def test_the_toy_type_is_registered_and_gone_after(toy_type):
    assert toy_type.name in {t.name for t in issue_types()}
    assert "max_toy_darkest_rate" in gate_thresholds_class().model_fields


def test_register_rejects_a_type_without_a_title():
    class Untitled(IssueType):
        name = "untitled"
        description = "no title"

        def score(self, inputs, options, found):
            return None

    with pytest.raises(TypeError, match="title"):
        register(Untitled)
    assert "untitled" not in {t.name for t in issue_types()}


def test_a_toy_issue_type_reaches_the_issues_view_the_report_and_a_gate(toy_type, tmp_path, store, dagster_instance):
    assert automatic_cut  # the cut-off helper new types use is part of the package's surface
    data = tmp_path / "data"
    make_imagefolder(data, {"train": {"a": 12, "b": 12}, "test": {"a": 4, "b": 4}})
    defs = build_definitions()
    check_names = {key.name for check in defs.asset_checks for key in check.check_keys}
    assert "toy_darkest_rate" in check_names

    result = dg.materialize(
        list(defs.assets) + list(defs.asset_checks),
        resources={"store": QualityStoreResource(home=str(store.home)),
                   "gates": gate_thresholds_class()(max_leakage_rate=1.0, max_near_duplicate_rate=1.0)},
        run_config={"ops": {"raw_manifest": {"config": {"data_root": str(data)}},
                            "ssl_model": {"config": TINY_SSL},
                            "issue_scores": {"config": {"toy_darkest": {"flag_share": 0.5}}}}},
        instance=dagster_instance, raise_on_error=False,
    )
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    # Half the images flagged (the run config reached the type) against a 0.1 threshold: the gate
    # fails, as a warning, and training is not blocked by it.
    assert not evaluations["toy_darkest_rate"].passed
    assert evaluations["toy_darkest_rate"].severity == dg.AssetCheckSeverity.WARN
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "training_probe" in materialized

    with store.connect(read_only=True) as conn:
        flagged, total = conn.execute(
            "SELECT sum(is_issue::INT), count(*) FROM issues WHERE issue_type = 'toy_darkest'").fetchone()
        gate = conn.execute("SELECT passed, value FROM latest_gate_results WHERE gate = 'toy_darkest_rate'").fetchone()
    assert total == 32 and flagged == 16
    assert gate == (False, pytest.approx(0.5))

    report = write_report(store, tmp_path / "report.html")
    html = report.read_text() if hasattr(report, "read_text") else (tmp_path / "report.html").read_text()
    assert "Toy: the darkest images" in html
