"""Where does the cleaning's gain go? Arms of the CNN consumer on one audit (DINO on the data, default
cleaning): raw, cleaned, fixes_only (only the relabels that fix a flip: no drops, no broken
relabels) and random_fix (as many flips fixed, drawn at random), 50 epochs, seeds 0-2.

    python benchmarks/bench_consumer_arms.py DATASET NOISE OUT     # e.g. animal_mnist 0.1 /tmp/arms
"""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_consumer as bc
from quality_assets.cleaning import CleaningPolicy
from quality_assets.consumer_cnn import CnnConfig, load_images, run_consumer_experiments
from quality_assets.scoring import ScoreConfig

name, noise, out = sys.argv[1], float(sys.argv[2]), Path(sys.argv[3])
data, truth = bc.noisy_data(name, 2500, noise, 0, out / "data")
vectors = bc.audit_vectors(data, "dino", seed=0, dino_budget_s=150)
split = bc.audit_cleaned_split(data, CleaningPolicy(), ScoreConfig({}), vectors)
split = split.set_index("sample_id").loc[data.manifest["sample_id"]].reset_index()
action = split["action"].to_numpy(dtype=object)
given = data.labels.astype(object)
cleaned = np.where(action == "drop", None, split["label"].to_numpy(dtype=object))
is_train, is_eval = data.splits == "train", data.splits == "test"
noisy = given != truth
fixed = is_train & noisy & (action == "relabel") & (cleaned == truth)
broken = is_train & ~noisy & (action == "relabel")
print(json.dumps({"noisy": int((noisy & is_train).sum()), "fixed": int(fixed.sum()), "broken": int(broken.sum()),
                  "dropped_clean": int((is_train & ~noisy & (action == "drop")).sum())}), flush=True)
fixes_only = np.where(fixed, truth, given)
r = np.random.default_rng(7)
pick = r.choice(np.flatnonzero(is_train & noisy), size=int(fixed.sum()), replace=False)
random_fix = given.copy()
random_fix[pick] = truth[pick]
pixels = load_images([str(data.image_dir / p) for p in data.paths], 32)
res = run_consumer_experiments(pixels, given, cleaned, is_train, is_eval, clean_eval=(is_eval, truth),
                               seeds=[0, 1, 2], config=CnnConfig(epochs=50),
                               extra_train={"fixes_only": fixes_only, "random_fix": random_fix})
per = res.per_seed
c = per[per["eval"] == "clean"].pivot(index="seed", columns="train", values="accuracy")
print(c.to_string()); print(c.mean().to_string())
for arm in ("cleaned", "fixes_only", "random_fix"):
    print(arm, "gain", round(float((c[arm] - c["raw"]).mean()), 4), [round(x, 3) for x in (c[arm] - c["raw"])])
per.to_csv(out / "per_seed.csv", index=False)
