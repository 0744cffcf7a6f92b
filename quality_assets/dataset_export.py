"""A training-ready dataset from the latest cleaned split: an ImageFolder tree or a manifest file.

Dropped samples are left out and relabelled samples carry their corrected label. Every export
records where it came from (split, score, model and manifest versions) in `dataset_export.json`
in the output folder. The ImageFolder tree itself is `OUT/data/<split>/<label>/<file>`, apart
from the record, so the tree re-ingests as a drop with nothing rejected
(`qaudit audit OUT/data`) and `torchvision.datasets.ImageFolder(OUT/data/train)` reads it.

ImageFolder files are hard links by default (no extra disk, and a later re-scan accepts them,
where symlinks leaving the tree are refused as `path_escapes_root`); across file systems they
fall back to copies. Multi-label samples have no single class folder, so ImageFolder skips
them and says how many; the manifest formats keep them with their `|`-joined labels.

Class balancing (`balance`, ImageFolder only): the train split's smaller classes are filled up to
the target count (default: the largest train class) with augmented copies of their own samples,
made by a torchvision v2 policy (RandAugment, TrivialAugmentWide, AutoAugment or AugMix). Sources
are taken round-robin in path order; copy j of a class gets the seed (seed, label, j), so an
export is the same file for file for a seed. Copies are PNG files next to their class's samples
(`<stem>-aug<j>.png`), and `augmentations.csv` lists each with its source, policy and seeds. Only
train is balanced: balancing val, test or trusted would change what they measure.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from quality_assets.data_roots import is_remote, join, read_object
from quality_assets.store import Store, run_query

FORMATS = ("imagefolder", "csv", "parquet")
LINK_MODES = ("hardlink", "copy", "symlink")
RECORD_NAME = "dataset_export.json"
IMAGEFOLDER_DIR = "data"
AUGMENTATIONS_NAME = "augmentations.csv"
BALANCE_POLICIES = ("randaugment", "trivialaugment", "autoaugment", "augmix")
BALANCED_SPLITS = ("train",)

__all__ = ["AUGMENTATIONS_NAME", "BALANCE_POLICIES", "FORMATS", "IMAGEFOLDER_DIR", "LINK_MODES", "RECORD_NAME",
           "Balance", "DatasetExport", "NoCleanedSplit", "export_dataset"]


@dataclass(frozen=True)
class Balance:
    """Fill the train split's classes up to `target` (0: the largest class) with `policy` copies."""

    policy: str = "randaugment"
    seed: int = 0
    target: int = 0

    def __post_init__(self) -> None:
        if self.policy not in BALANCE_POLICIES:
            raise ValueError(f"unknown balance policy {self.policy!r}; choose one of {', '.join(BALANCE_POLICIES)}")
        if self.target < 0:
            raise ValueError(f"balance target must be >= 0, got {self.target}")


class NoCleanedSplit(RuntimeError):
    """The store has no cleaned split to export yet."""


@dataclass
class DatasetExport:
    out_dir: str
    format: str
    split_version: str
    score_version: str | None
    model_version: str | None
    manifest_version: str | None
    split_created_at: str
    exported_at: str
    n_samples: int
    n_relabelled: int
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> label -> n
    skipped_multi_label: int = 0
    link_mode: str | None = None
    dataset_root: str | None = None  # the ImageFolder tree (imagefolder)
    files: list[str] = field(default_factory=list)  # manifest files written (csv/parquet)
    n_augmented: int = 0
    balance: dict[str, Any] | None = None  # policy, seed, target per split, manifest file


def export_dataset(store: Store, out_dir: Path, fmt: str = "imagefolder", *, link_mode: str = "hardlink",
                   overwrite: bool = False, balance: Balance | None = None) -> DatasetExport:
    """Write the latest cleaned split as `fmt` into `out_dir`; returns what was written.
    `balance`: fill the train classes up with augmented copies (ImageFolder only)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if balance is not None and fmt != "imagefolder":
        raise ValueError("class balancing writes image files: it needs the imagefolder format")
    if link_mode not in LINK_MODES:
        raise ValueError(f"unknown link mode {link_mode!r}; choose one of {', '.join(LINK_MODES)}")
    if not store.db_path.exists():
        raise NoCleanedSplit(f"no quality database at {store.db_path}")
    with store.connect(read_only=True) as conn:
        version = run_query(conn, "app_split_version")
        if version.empty:
            raise NoCleanedSplit("no cleaned split yet: run `qaudit audit` (or materialise cleaned_split) first")
        rows = run_query(conn, "app_export_rows")
    meta = version.iloc[0]
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out_dir} exists and is not empty (pass overwrite to replace it)")
        if not (out_dir / RECORD_NAME).is_file():
            # Never wipe a folder that this module did not write.
            raise FileExistsError(f"{out_dir} is not a dataset export ({RECORD_NAME} missing); refusing to replace it")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    record = DatasetExport(
        out_dir=str(out_dir), format=fmt, split_version=str(meta["split_version"]),
        score_version=_text(meta["score_version"]), model_version=_text(meta["model_version"]),
        manifest_version=_text(meta["manifest_version"]), split_created_at=str(meta["created_at"]),
        exported_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), n_samples=0,
        n_relabelled=int((rows["action"] == "relabel").sum()) if len(rows) else 0,
    )
    multi = rows["label"].fillna("").str.contains("|", regex=False) if len(rows) else pd.Series([], dtype=bool)
    if fmt == "imagefolder":
        record.link_mode = link_mode
        record.skipped_multi_label = int(multi.sum())
        record.dataset_root = str(out_dir / IMAGEFOLDER_DIR)
        written = _write_imagefolder(rows[~multi & rows["label"].notna()], out_dir / IMAGEFOLDER_DIR, link_mode)
    else:
        written = _write_manifest(rows, out_dir, fmt)
        record.files = [written.attrs["file"]]
    record.n_samples = len(written)
    listed = written
    if balance is not None:
        copies, targets = _balance(written, out_dir / IMAGEFOLDER_DIR, balance)
        _write_augmentations(copies, out_dir / AUGMENTATIONS_NAME)
        record.n_augmented = len(copies)
        record.balance = {"policy": balance.policy, "seed": balance.seed, "target": targets,
                          "splits": list(BALANCED_SPLITS), "manifest": AUGMENTATIONS_NAME,
                          "library": "torchvision.transforms.v2"}
        listed = pd.concat([written[["split", "label"]], copies[["split", "label"]]], ignore_index=True)
    record.counts = {split: {str(k): int(v) for k, v in block["label"].value_counts().sort_index().items()}
                     for split, block in listed.groupby("split", sort=True)}
    (out_dir / RECORD_NAME).write_text(json.dumps(asdict(record), indent=2) + "\n", encoding="utf-8")
    return record


def _text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


_UNSAFE = re.compile(r"[^\w.\- ]+")


def _folder_name(label: str) -> str:
    """A label as one safe path component (labels are data: they may hold '/', '..' or NULs)."""
    name = _UNSAFE.sub("_", label).strip(" .")
    return name or "_"


def _write_imagefolder(rows: pd.DataFrame, out_dir: Path, link_mode: str) -> pd.DataFrame:
    used: set[str] = set()
    targets = []
    for row in rows.itertuples(index=False):
        source = join(row.data_root, row.path)
        name = PurePosixPath(row.path).name
        rel = f"{row.split}/{_folder_name(str(row.label))}/{name}"
        if rel in used:  # the same file name in two drops or folders of one class
            stem, suffix = os.path.splitext(name)
            rel = f"{row.split}/{_folder_name(str(row.label))}/{stem}-{row.sample_id[:10]}{suffix}"
        used.add(rel)
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        _place(source, target, link_mode)
        targets.append(rel)
    frame = rows.assign(export_path=targets)
    return frame


def _place(source: str, target: Path, link_mode: str) -> None:
    if is_remote(source):
        # An object cannot be linked to: the export gets a copy, written whole then renamed.
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(read_object(source))
        partial.replace(target)
        return
    if link_mode == "symlink":
        target.symlink_to(Path(source).resolve())
        return
    if link_mode == "hardlink":
        try:
            os.link(source, target)
            return
        except OSError:
            pass  # another file system or links not allowed: a copy is the same dataset
    shutil.copy2(source, target)


def _write_manifest(rows: pd.DataFrame, out_dir: Path, fmt: str) -> pd.DataFrame:
    frame = pd.DataFrame({
        # Absolute paths: the manifest lives apart from the images it lists.
        "path": [join(root, path) for root, path in zip(rows["data_root"], rows["path"])],
        "label": rows["label"], "split": rows["split"], "sample_id": rows["sample_id"],
        "original_label": rows["original_label"], "action": rows["action"], "reason": rows["reason"],
        "source_path": rows["path"],
    })
    name = "dataset.csv" if fmt == "csv" else "dataset.parquet"
    if fmt == "csv":
        frame.to_csv(out_dir / name, index=False)
    else:
        frame.to_parquet(out_dir / name, index=False)
    frame.attrs["file"] = name
    return frame


def _policy_transform(policy: str):
    import quality_assets._torchvision_compat  # noqa: F401  (before the first torchvision import)
    from torchvision.transforms import v2

    return {"randaugment": v2.RandAugment, "trivialaugment": v2.TrivialAugmentWide,
            "autoaugment": v2.AutoAugment, "augmix": v2.AugMix}[policy]()


def _copy_seed(seed: int, split: str, label: str, index: int) -> int:
    """A seed per copy from (seed, split, label, index): the same copy whatever else is exported."""
    digest = hashlib.sha256(f"{seed}\0{split}\0{label}\0{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def _balance(written: pd.DataFrame, root: Path, balance: Balance) -> tuple[pd.DataFrame, dict[str, int]]:
    """Augmented copies for the balanced splits' smaller classes; returns their rows and the targets."""
    import torch
    from PIL import Image

    transform = _policy_transform(balance.policy)
    rows, targets = [], {}
    for split in BALANCED_SPLITS:
        block = written[written["split"] == split]
        if block.empty:
            continue
        sizes = block["label"].astype(str).value_counts()
        target = balance.target or int(sizes.max())
        targets[split] = target
        for label, members in block.groupby(block["label"].astype(str), sort=True):
            members = members.sort_values("export_path")
            for j in range(max(0, target - len(members))):
                source = members.iloc[j % len(members)]
                copy_seed = _copy_seed(balance.seed, split, label, j)
                with Image.open(root / source["export_path"]) as im:
                    image = im.convert("RGB" if im.mode not in ("L", "RGB") else im.mode)
                # v2 transforms draw from torch's global generator; fork it so the export leaves it as it was.
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(copy_seed)
                    augmented = transform(image)
                stem = os.path.splitext(PurePosixPath(source["export_path"]).name)[0]
                rel = f"{PurePosixPath(source['export_path']).parent}/{stem}-aug{j}.png"
                if (root / rel).exists():   # a source file already named so
                    rel = f"{PurePosixPath(source['export_path']).parent}/{stem}-aug{j}-{source['sample_id'][:10]}.png"
                augmented.save(root / rel, format="PNG")
                rows.append({"export_path": rel, "source_export_path": source["export_path"],
                             "source_sample_id": source["sample_id"], "split": split, "label": label,
                             "policy": balance.policy, "seed": balance.seed, "copy_index": j,
                             "copy_seed": copy_seed})
    columns = ["export_path", "source_export_path", "source_sample_id", "split", "label", "policy", "seed",
               "copy_index", "copy_seed"]
    return pd.DataFrame(rows, columns=columns), targets


def _write_augmentations(copies: pd.DataFrame, path: Path) -> None:
    # Paths and labels come from the data's owner: quote every cell so a comma or newline stays one cell.
    copies.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)
