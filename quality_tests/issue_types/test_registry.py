"""The registry loads without the scoring stack, and the gates it declares are the same fields in
Dagster's `gates` resource and on the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from quality_assets.cli import GATE_DEST, build_parser
from quality_assets.defs.scoring.config import gate_thresholds_class
from quality_assets.issue_types import CLEANED_SPLIT_GATE_FIELDS, gate_fields, iter_gated, register, unregister
from quality_tests.issue_types.test_toy_issue_type import DarkestImages

# What a unit's scoring needs and the registry must not: each of these costs 0.2-1.5 s to import.
SCORING_STACK = ("torch", "faiss", "sklearn", "scipy.stats", "cleanlab", "timm", "dagster")

_PROBE = """
import contextlib, io, json, sys
from quality_assets.cli import main
from quality_assets.issue_types import issue_types
help_text = io.StringIO()
with contextlib.redirect_stdout(help_text):
    try:
        main(["audit", "--help"])
    except SystemExit:
        pass
print(json.dumps({"types": [t.name for t in issue_types()], "help": help_text.getvalue(),
                  "loaded": [m for m in %r if m in sys.modules]}))
""" % (SCORING_STACK,)


def test_the_registry_and_the_audit_flags_load_without_the_scoring_stack():
    """`qaudit audit --help` lists every gate's flags from the registry; a unit that imports its
    scorers at the top of its module pulls torch and scikit-learn into every help call."""
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["loaded"] == []
    assert {"off_topic", "label_error", "near_duplicate", "leakage", "low_value"} <= set(found["types"])
    for t in iter_gated():
        assert f"--max-{t.gate.rate_key.replace('_', '-')}" in found["help"]
        assert f"--{t.name.replace('_', '-')}-blocking" in found["help"]


@pytest.fixture
def gated_toy_type():
    register(DarkestImages)    # gated: toy_darkest_rate, threshold 0.1, not blocking
    yield
    unregister("toy_darkest")


def test_the_gate_resource_and_the_flags_have_the_same_fields_and_defaults(gated_toy_type):
    fields = gate_fields()
    assert list(fields)[:len(CLEANED_SPLIT_GATE_FIELDS)] == list(CLEANED_SPLIT_GATE_FIELDS)
    assert fields["max_toy_darkest_rate"] == (float, 0.1) and fields["toy_darkest_blocking"] == (bool, False)
    resource = gate_thresholds_class().model_fields
    assert {name: (field.annotation, field.default) for name, field in resource.items()} == fields

    args = build_parser(["audit"]).parse_args(
        ["audit", "data", "--max-toy-darkest-rate", "0.5", "--toy-darkest-blocking"])
    given = {key[len(GATE_DEST):]: value for key, value in vars(args).items()
             if key.startswith(GATE_DEST) and value is not None}
    assert given == {"max_toy_darkest_rate": 0.5, "toy_darkest_blocking": True}
    unset = {key[len(GATE_DEST):] for key in vars(args) if key.startswith(GATE_DEST)}
    assert unset == set(fields)
