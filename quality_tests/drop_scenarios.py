"""A data root with three drops, for the drop checks and the version diff: `old` (two classes of noisy
copies of two prototypes), `same` (more of the same), `foreign` (smooth colour-free patterns of a
different generator, with two labels never seen before); and a root of coloured squares in two drops
(`make_colour_drops`). Vectors come from the images' own pixels via
the `precomputed` embedder, so what the checks see does not depend on a seconds-long DINO run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg
import numpy as np
from PIL import Image

from quality_assets.defs.definitions import ALL_ASSETS, ALL_CHECKS
from quality_assets.defs.gates import GateThresholds
from quality_assets.defs.resources import QualityStoreResource
from quality_tests.imagefolders import coloured_images, distinct_image

DROP_LAYOUT = {
    "old": {"train": {"a": 30, "b": 30}, "test": {"a": 6, "b": 6}},
    "same": {"train": {"a": 10, "b": 10}},
    "foreign": {"train": {"shirt": 10, "shoe": 10}},
}
COLOURS = ("red", "green", "blue")
MISLABELLED = "more/train/green/more_000.png"
# Only the scores and the checks on them: the later stages are not what these tests are about.
UP_TO_SCORES = ("raw_manifest", "ssl_model", "embeddings", "knn_graph", "issue_scores")


def _write(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)


def make_drops(data: Path, seed: int = 0) -> Path:
    """Write the three drops under `data` and the pixel vectors of every image; returns the vectors file."""
    rng = np.random.default_rng(seed)
    prototypes = {"a": rng.uniform(0, 255, (28, 28)), "b": rng.uniform(0, 255, (28, 28))}
    pattern = seed * 100_000
    for drop, splits in DROP_LAYOUT.items():
        for split, labels in splits.items():
            for label, count in labels.items():
                for i in range(count):
                    target = data / drop / split / label / f"{label}_{i:02d}.png"
                    if label in prototypes:
                        _write(target, prototypes[label] + rng.normal(0, 40, (28, 28)))
                    else:
                        _write(target, distinct_image(pattern, gray=True).astype(np.float64))
                        pattern += 1
    paths = sorted(p.relative_to(data).as_posix() for p in data.rglob("*.png"))
    matrix = np.stack([np.asarray(Image.open(data / p).convert("L"), np.float32).ravel() for p in paths])
    matrix -= matrix.mean(axis=1, keepdims=True)
    vectors = data.parent / "vectors.npy"
    np.save(vectors, matrix)
    Path(str(vectors) + ".paths.txt").write_text("\n".join(paths))
    return vectors


def make_colour_drops(data: Path) -> Path:
    """A second data root, for the fits kept between runs: drop `base` holds 40 images per colour, drop
    `more` 9 (3 red, 4 green, 1 blue and a red square filed as green: `MISLABELLED`; 7.5% of the
    base). Returns the vectors file the `precomputed` embedder reads."""
    base, base_codes = coloured_images(40, seed=3)
    more, more_codes = coloured_images(4, seed=4)
    paths, pixels = [], []
    for drop, images, codes in (("base", base, base_codes), ("more", more[:-3], more_codes[:-3])):
        for i, (image, code) in enumerate(zip(images, codes)):
            folder = COLOURS[code]
            if drop == "more" and i == 0:
                folder = "green"   # a red square, mislabelled
            path = f"{drop}/train/{folder}/{drop}_{i:03d}.png"
            (data / path).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(data / path)
            paths.append(path)
            # 4x4-pixel means as the vectors: the representation's LDA stays quick (a 3,072-d one took 45 s).
            pixels.append(image.reshape(8, 4, 8, 4, 3).mean((1, 3)).reshape(-1).astype(np.float32))
    vectors = np.stack(pixels)
    vectors -= vectors.mean(1, keepdims=True)
    out = data.parent / "vectors.npy"
    np.save(out, vectors)
    Path(str(out) + ".paths.txt").write_text("\n".join(paths))
    return out


def audit_drop(store, data: Path, vectors: Path, drop: str, instance, *, selection=UP_TO_SCORES,
               run_config_ops: dict | None = None):
    """Ingest one drop and run the graph (up to the scores by default) through Dagster; `run_config_ops`:
    more ops' run config (e.g. the scores' options)."""
    ops = {"raw_manifest": {"config": {"data_root": str(data), "drops": [drop]}}, **(run_config_ops or {})}
    if not selection or "ssl_model" in selection:
        ops["ssl_model"] = {"config": {"embedder": "precomputed", "embeddings_file": str(vectors)}}
    return dg.materialize(
        ALL_ASSETS + ALL_CHECKS,
        resources={"store": QualityStoreResource(home=str(store.home)),
                   "gates": GateThresholds(max_leakage_rate=1.0, max_near_duplicate_rate=1.0)},
        run_config={"ops": ops},
        instance=instance, raise_on_error=False,
        selection=dg.AssetSelection.assets(*selection) if selection else None,
    )


def scored_drop(store, data: Path, vectors: Path, drop: str, instance, scores_config: dict) -> tuple[dict, tuple]:
    """`audit_drop` with the scores' options, then the newest score run's summary and its first label
    error (path, suggested label)."""
    result = audit_drop(store, data, vectors, drop, instance,
                        run_config_ops={"issue_scores": {"config": scores_config}})
    assert result.success, result.get_step_failure_events()
    with store.connect(read_only=True) as conn:
        summary = json.loads(conn.execute("SELECT summary_json FROM score_runs ORDER BY created_at DESC "
                                          "LIMIT 1").fetchone()[0])
        top = conn.execute("SELECT path, suggested_label FROM issues WHERE issue_type = 'label_error' "
                           "ORDER BY rank LIMIT 1").fetchone()
    return summary, top


def check_the_mislabelled_image_leads(drops: dict) -> None:
    """The two kept fits' Dagster tests: after the drop, `MISLABELLED` is the first label error with
    `red` suggested, and the grown fit holds it as a predicted (not trained) row that it calls red."""
    from quality_assets.scores.kept_fits import key_digests

    assert drops["top"] == (MISLABELLED, "red")
    fit = drops["drop_fit"]
    sha = hashlib.sha256((drops["data"] / MISLABELLED).read_bytes()).hexdigest()
    [row] = np.flatnonzero(fit.keys == key_digests(np.array([f"{sha}\x00{MISLABELLED}"]))[0])
    assert not fit.trained[row] and fit.classes[fit.probabilities[row].argmax()] == "red"
