"""Which drops in a drops folder are complete and not yet ingested (the sensor's logic, no Dagster)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from quality_assets.data_roots import RemoteRoot, is_remote, object_fingerprint
from quality_assets.scan import DROP_MARKER


@dataclass
class DropCursor:
    """What the sensor has already requested: drop name -> marker fingerprint."""

    seen: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> "DropCursor":
        if not text:
            return cls()
        data = json.loads(text)
        return cls(seen=dict(data.get("seen", {})))

    def dump(self) -> str:
        return json.dumps({"seen": self.seen}, sort_keys=True)


@dataclass(frozen=True)
class ReadyDrop:
    name: str
    fingerprint: str  # marker mtime_ns (an object's ETag): re-touching the marker re-submits a corrected drop

    @property
    def run_key(self) -> str:
        return f"drop:{self.name}:{self.fingerprint}"


def find_new_drops(drops_dir: Path | str, cursor: DropCursor) -> list[ReadyDrop]:
    """Complete drops (marker present) not yet requested, in name order. Half-copied drops wait.

    `drops_dir` may be an object-store URL: a drop is then a key prefix holding the marker object,
    whose ETag (or modification time) is the fingerprint, so uploading the marker again re-submits.
    """
    if is_remote(str(drops_dir)):
        return _find_new_remote_drops(RemoteRoot(str(drops_dir)), cursor)
    drops_dir = Path(drops_dir)
    if not drops_dir.is_dir():
        return []
    ready = []
    for child in sorted(drops_dir.iterdir()):
        if not child.is_dir() or child.name.startswith("."):
            continue
        marker = child / DROP_MARKER
        if not marker.is_file():
            continue
        fingerprint = str(marker.stat().st_mtime_ns)
        if cursor.seen.get(child.name) == fingerprint:
            continue
        ready.append(ReadyDrop(child.name, fingerprint))
    return ready


def _find_new_remote_drops(root: RemoteRoot, cursor: DropCursor) -> list[ReadyDrop]:
    ready = []
    for name in root.folders():
        if name.startswith("."):
            continue
        marker = root.info(f"{name}/{DROP_MARKER}")
        if marker is None:
            continue
        fingerprint = object_fingerprint(marker)
        if cursor.seen.get(name) == fingerprint:
            continue
        ready.append(ReadyDrop(name, fingerprint))
    return ready
