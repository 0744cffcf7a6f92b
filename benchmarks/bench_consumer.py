"""Does cleaning help a model trained on the data? The audit's cleaning, then the CNN consumer.

    python benchmarks/bench_consumer.py [--datasets mnist animal_mnist] [--n 2500] [--noise 0.1]
        [--seeds 0 1 2] [--epochs 15] [--truth-arm] [--out /tmp/bench_consumer]

Per dataset: a clean sample of `n` images (pixel-identical repeats dropped), 20% of it the test
split; `noise` of all labels flipped to a uniformly drawn other class (the SelfClean protocol's
LBL, `quality_lab.protocol.inject`; nothing else injected). The audit scores the written PNG files
as the service does (every issue type, on the lab's raw-pixel embedding and the pixel view: no
model to train; or `--embedder dino`, the service's DINO trained on the data for
`--dino-budget-s` seconds) and applies the default
cleaning policy (val/test untouched). The label-error flags follow the service's default rule (a
confident other label, `--label-error-flag-rule confident`). With `--label-error-flag-rule cut`,
SelfClean's fraction cut flags instead, and its contamination guess `alpha` must exceed the share
of errors: at 0.1 and 10% flips it flags nothing (measured: 0 of 2,490 on MNIST, though the
ranking holds 73% flips in its first 300), hence `--label-error-alpha` (0.3). The CNN consumer (`quality_assets.consumer_cnn`, timm
`test_resnet` from scratch at 32 px) is then trained on the raw and on the cleaned train split,
per seed, and scored on the test split's ground-truth labels ("clean" eval), and on its given
labels (raw = cleaned eval here, because the default policy never touches the test split).
`--truth-arm` also trains on the ground-truth train labels: the gain a perfect cleaning would give,
against which the cleaning's gain is read as a share. Gains are paired per seed (the same seed
trains every arm) and printed with their standard error and the seeds they win.

Writes `<out>/<dataset>/per_seed.csv`, `summary.csv`, `audit.json`, `cleaned_split.csv` (every
sample's action, reason, given, cleaned and true label) and prints one markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from quality_assets.cleaning import CleaningPolicy, apply_policy, cleaning_frame
from quality_assets.consumer_cnn import CnnConfig, load_images, run_consumer_experiments
from quality_assets.knn import build_knn_graph
from quality_assets.scoring import ScoreConfig, compute_scores
from quality_lab.bench.methods import thumbnails_for
from quality_lab.datasets import load_dataset
from quality_lab.matrix import TEST_FRACTION, write_bench_data
from quality_lab.protocol import ProtocolRates, inject


def clean_sample(name: str, n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    images, labels = load_dataset(name)
    digests = np.asarray([hashlib.sha256(np.ascontiguousarray(im).tobytes()).digest() for im in images], dtype="S32")
    keep = np.sort(np.unique(digests, return_index=True)[1])
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    chosen = np.sort(rng.choice(keep, size=min(n, keep.size), replace=False))
    splits = np.full(chosen.size, "train", dtype=object)
    splits[rng.choice(chosen.size, size=int(round(chosen.size * TEST_FRACTION)), replace=False)] = "test"
    return [images[i] for i in chosen], np.asarray(labels)[chosen].astype(str), splits


def audit_vectors(data, embedder: str, *, seed: int, dino_budget_s: float) -> np.ndarray:
    """`pixels`: the lab's raw-pixel embedding (seconds). `dino`: the service's default DINO trained on
    the dataset's files, stopped after `dino_budget_s` seconds."""
    if embedder == "pixels":
        from quality_lab.ablation_embedders import RawPixelEmbedder

        paths = [str(data.image_dir / p) for p in data.paths]
        return RawPixelEmbedder(int(max(data.images[0].shape[:2]))).embed(paths)
    if embedder == "dino":
        from quality_lab.bench.methods import ssl_and_random_vectors

        vectors, _, _ = ssl_and_random_vectors(data, seed=seed, time_budget_s=dino_budget_s, random_init=False)
        return vectors
    raise ValueError(f"unknown embedder {embedder!r}")


def audit_cleaned_split(data, policy: CleaningPolicy, config: ScoreConfig | None = None,
                        vectors: np.ndarray | None = None) -> pd.DataFrame:
    """The service's scoring and cleaning on the written files: flags as `cleaning_flags.sql` reads
    them, duplicate groups as `cleaning_inputs.sql` does, then the policy."""
    if vectors is None:
        vectors = audit_vectors(data, "pixels", seed=0, dino_budget_s=0)
    vectors = np.ascontiguousarray(vectors, np.float32)
    ids = data.manifest["sample_id"].to_numpy(dtype=object)
    out = compute_scores(list(ids), build_knn_graph(vectors, k=16), data.manifest, config, vectors=vectors,
                         thumbnails=thumbnails_for(data))
    rows = out.issue_rows
    own = rows[rows["is_issue"] | rows["suggested_label"].notna()]
    partners = rows[rows["is_issue"] & rows["partner_id"].notna()][["partner_id", "issue_type"]].drop_duplicates()
    flags = pd.concat([
        own[["sample_id", "issue_type", "is_issue", "suggested_label", "confidence"]].assign(is_partner=False),
        pd.DataFrame({"sample_id": partners["partner_id"], "issue_type": partners["issue_type"], "is_issue": False,
                      "suggested_label": None, "confidence": np.nan, "is_partner": True}),
    ], ignore_index=True)
    pairs = out.pair_rows[out.pair_rows["is_issue"].astype(bool)]
    groups = pd.concat([pairs[["sample_a", "group_id"]].set_axis(["sample_id", "group_id"], axis=1),
                        pairs[["sample_b", "group_id"]].set_axis(["sample_id", "group_id"], axis=1)])
    group_of = groups.groupby("sample_id")["group_id"].min()
    samples = data.manifest[["sample_id", "path", "split", "label"]].copy()
    samples["duplicate_group"] = samples["sample_id"].map(group_of).fillna(-1).astype(np.int64)
    return apply_policy(cleaning_frame(samples, flags), policy)


def noisy_data(name: str, n: int, noise: float, data_seed: int, folder: Path):
    """The clean sample with `noise` of its labels flipped (protocol LBL only), written as files
    under `folder`; returns (bench data, ground-truth label per sample)."""
    images, labels, splits = clean_sample(name, n, data_seed)
    rng = np.random.default_rng([data_seed, zlib.crc32(name.encode()), 1])
    zero = {k: 0.0 for k in ("xr", "blur", "aug", "arte", "lblc", "leak")}
    injected = inject(images, labels, splits, rng, ProtocolRates(lbl=noise, **zero), foreign_pool=[])
    data = write_bench_data(name, folder, injected.images, injected.labels, injected.splits, injected.truth, rng)
    truth = data.labels.astype(object).copy()
    flipped = data.truth[data.truth["issue_type"] == "label_error"]
    truth[flipped["index"].to_numpy()] = flipped["true_label"].to_numpy()
    return data, truth


def run_dataset(name: str, args: argparse.Namespace, out: Path) -> dict:
    t0 = time.perf_counter()
    data, truth = noisy_data(name, args.n, args.noise, args.data_seed, out / name / "data")
    t_audit = time.perf_counter()
    score_config = ScoreConfig({"label_error": {"flag_rule": args.label_error_flag_rule,
                                                "alpha": args.label_error_alpha,
                                                "correct_for_label_noise": not args.raw_confidence}})
    vectors = audit_vectors(data, args.embedder, seed=args.data_seed, dino_budget_s=args.dino_budget_s)
    policy = CleaningPolicy(unconfident_label_errors=args.unconfident_label_errors)
    split = audit_cleaned_split(data, policy, score_config, vectors)
    split = split.set_index("sample_id").loc[data.manifest["sample_id"]].reset_index()
    audit_s = time.perf_counter() - t_audit
    action = split["action"].to_numpy(dtype=object)
    cleaned = np.where(action == "drop", None, split["label"].to_numpy(dtype=object))
    is_train, is_eval = data.splits == "train", data.splits == "test"
    noisy = data.labels != truth
    audit = {
        "dataset": name, "n": int(data.n), "n_train": int(is_train.sum()), "n_test": int(is_eval.sum()),
        "train_noisy": int((noisy & is_train).sum()),
        "train_dropped": int(((action == "drop") & is_train).sum()),
        "train_relabelled": int(((action == "relabel") & is_train).sum()),
        "train_noisy_fixed": int((noisy & is_train & (cleaned == truth)).sum()),
        "train_noisy_dropped": int((noisy & is_train & (action == "drop")).sum()),
        "train_clean_dropped": int((~noisy & is_train & (action == "drop")).sum()),
        "train_clean_broken": int((~noisy & is_train & (action == "relabel") & (cleaned != truth)).sum()),
        "train_label_noise_after": float((pd.notna(cleaned) & (cleaned != truth))[is_train].sum()
                                         / max(1, pd.notna(cleaned)[is_train].sum())),
        "train_flagged_label_error": int(split["reason"].astype(str).str.startswith("label_error")[is_train].sum()),
        "label_error_flag_rule": args.label_error_flag_rule, "label_error_alpha": args.label_error_alpha,
        "label_error_raw_confidence": args.raw_confidence,
        "embedder": args.embedder,
        "unconfident_label_errors": args.unconfident_label_errors, "audit_seconds": round(audit_s, 1),
    }
    print(f"[{name}] audit: {json.dumps(audit)}", flush=True)
    pixels = load_images([str(data.image_dir / p) for p in data.paths], args.image_size)
    config = CnnConfig(arch=args.arch, epochs=args.epochs)
    result = run_consumer_experiments(pixels, data.labels.astype(object), cleaned, is_train, is_eval,
                                      clean_eval=(is_eval, truth), seeds=args.seeds, config=config,
                                      extra_train={"truth": truth} if args.truth_arm else None)
    result.per_seed.insert(0, "dataset", name)
    result.summary.insert(0, "dataset", name)
    (out / name).mkdir(parents=True, exist_ok=True)
    split.assign(true_label=truth, cleaned_label=cleaned).to_csv(out / name / "cleaned_split.csv", index=False)
    result.per_seed.to_csv(out / name / "per_seed.csv", index=False)
    result.summary.to_csv(out / name / "summary.csv", index=False)
    audit |= {"consumer_seconds": result.seconds, "total_seconds": round(time.perf_counter() - t0, 1),
              "config": config.to_dict(), "image_size": int(pixels.shape[1])}
    (out / name / "audit.json").write_text(json.dumps(audit, indent=2) + "\n")
    print(result.per_seed.to_string(index=False), flush=True)
    return {"audit": audit, "summary": result.summary, "per_seed": result.per_seed}


def paired_gain(per_seed: pd.DataFrame, arm: str) -> pd.Series:
    """Clean-eval accuracy of `arm` minus raw, per seed: the same seed trains both, so the pairs share
    initialisation and batch order and their difference is steadier than either arm."""
    clean = per_seed[per_seed["eval"] == "clean"].pivot(index="seed", columns="train", values="accuracy")
    return clean[arm] - clean["raw"]


def gain_cell(gain: pd.Series) -> str:
    """Mean paired gain ± its standard error, the seeds it wins, and the per-seed values."""
    sem = float(gain.std(ddof=1) / np.sqrt(gain.size)) if gain.size > 1 else float("nan")
    return (f"{gain.mean():+.4f} ± {sem:.4f} (wins {(gain > 0).sum()}/{gain.size}; per seed "
            f"{', '.join(f'{g:+.3f}' for g in gain)})")


def markdown(results: list[dict]) -> str:
    with_truth = any("truth" in set(r["per_seed"]["train"]) for r in results)
    lines = ["| dataset | train noise raw -> cleaned | clean eval: raw train | clean eval: cleaned train | gain "
             "± s.e. (seeds won) | raw/raw | cleaned/cleaned | cleaned/raw | raw/cleaned "
             + ("| clean eval: truth train | truth gain ± s.e. | share of truth gain " if with_truth else "")
             + "| seconds |",
             "|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if with_truth else "") + "---|"]
    for r in results:
        a, s = r["audit"], r["summary"].set_index(["train", "eval"])
        gain = paired_gain(r["per_seed"], "cleaned")

        def cell(train: str, eval_: str) -> str:
            row = s.loc[(train, eval_)]
            return f"{row['mean']:.4f} ± {row['std']:.4f}"

        truth = ""
        if with_truth:
            truth_gain = paired_gain(r["per_seed"], "truth")
            share = gain.mean() / truth_gain.mean() if truth_gain.mean() > 0 else float("nan")
            truth = f"| {cell('truth', 'clean')} | {gain_cell(truth_gain)} | {share:.2f} "
        lines.append(
            f"| {a['dataset']} (n={a['n']}) | {a['train_noisy'] / a['n_train']:.3f} -> {a['train_label_noise_after']:.3f} "
            f"| {cell('raw', 'clean')} | {cell('cleaned', 'clean')} | {gain_cell(gain)} | {cell('raw', 'raw')} "
            f"| {cell('cleaned', 'cleaned')} | {cell('cleaned', 'raw')} | {cell('raw', 'cleaned')} {truth}"
            f"| {a['total_seconds']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist", "animal_mnist"])
    parser.add_argument("--n", type=int, default=2500, help="clean samples per dataset (20%% test)")
    parser.add_argument("--noise", type=float, default=0.1, help="share of labels flipped (protocol LBL)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="CNN training seeds")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--arch", default="test_resnet")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--embedder", choices=("pixels", "dino"), default="pixels",
                        help="the audit's embedding: raw pixels, or the default DINO trained on the data")
    parser.add_argument("--dino-budget-s", type=float, default=150.0, help="DINO training time (--embedder dino)")
    parser.add_argument("--unconfident-label-errors", choices=("drop", "keep"), default="drop",
                        help="the cleaning policy for flagged label errors without a confident suggestion")
    parser.add_argument("--label-error-flag-rule", choices=("confident", "cut"), default="confident",
                        help="the label-error flag: a confident other label (service default), or the fraction cut")
    parser.add_argument("--label-error-alpha", type=float, default=0.3,
                        help="contamination guess of the label-error cut, with --label-error-flag-rule cut "
                             "(service default 0.1)")
    parser.add_argument("--raw-confidence", action="store_true",
                        help="flag on the raw posterior, not on the one corrected for the label noise it implies")
    parser.add_argument("--truth-arm", action="store_true",
                        help="also train on the ground-truth train labels: the gain a perfect cleaning would give")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_consumer"))
    args = parser.parse_args(argv)
    results = [run_dataset(name, args, args.out) for name in args.datasets]
    table = markdown(results)
    (args.out / "table.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
