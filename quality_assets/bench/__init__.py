"""Benchmarks: detection quality on synthetically contaminated data, and scaling with N.

- :mod:`quality_assets.bench.detection` - the SelfClean synthetic protocol (``qaudit bench``):
  contaminate MNIST / Animal-MNIST, score with our method (DINO + kNN-graph scores) and its
  ablations, run the peers on the same data, report AP / AUROC / precision and recall at k /
  inspection effort per issue type.
- :mod:`quality_assets.bench.peers` - the peer methods (cleanlab Datalab, perceptual hash,
  IsolationForest, mean kNN distance); cleanlab and imagehash are optional, imported lazily.
- :mod:`quality_assets.bench.scaling` - wall time and peak memory of kNN graph + all scores
  against N, side by side with cleanlab Datalab.

Nothing here imports Dagster.
"""
