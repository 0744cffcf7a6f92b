"""The code location against a stored snapshot: asset keys, their dependencies, check keys and
their blocking flags. A renamed asset, a lost gate or a gate that stopped blocking shows up as a
diff here. After an intended change, regenerate with
`QUALITY_UPDATE_SNAPSHOT=1 python -m pytest quality_tests/defs/test_definitions_snapshot.py`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from quality_assets.defs.definitions import defs

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")


def _describe() -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = sorted(parent.to_user_string() for parent in node.parent_keys)
    checks = {}
    for check in defs.asset_checks:
        for spec in check.check_specs:
            checks[f"{spec.asset_key.to_user_string()}:{spec.name}"] = {"blocking": bool(spec.blocking)}
    jobs = sorted(job.name for job in defs.jobs)
    sensors = sorted(sensor.name for sensor in defs.sensors)
    return {"assets": assets, "checks": dict(sorted(checks.items())), "jobs": jobs, "sensors": sensors,
            "resources": sorted(defs.resources)}


def test_definitions_match_the_snapshot():
    current = _describe()
    if os.environ.get("QUALITY_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=2) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())
