"""Benchmarks: detection quality on synthetically contaminated data, and scaling with N.

- :mod:`quality_lab.bench.detection` - ``qaudit bench``: contaminate MNIST / Animal-MNIST, score with
  our method (DINO + kNN-graph scores) and its ablations, run the peers on the same data, report AP /
  AUROC / precision and recall at k / inspection effort per issue type. Its parts:
  :mod:`~quality_lab.bench.data` (contaminated datasets on disk), :mod:`~quality_lab.bench.methods`
  (features and our rankings), :mod:`~quality_lab.bench.metrics`, :mod:`~quality_lab.bench.report`.
- :mod:`quality_lab.bench.peers` - the peer methods (cleanlab Datalab, perceptual hash,
  IsolationForest, mean kNN distance); cleanlab and imagehash are optional, imported lazily.
- :mod:`quality_lab.bench.scaling` - wall time and peak memory of kNN graph + all scores
  against N, side by side with cleanlab Datalab.

The benchmark matrix over many datasets with the published protocol is :mod:`quality_lab.matrix`.
Nothing here imports Dagster.
"""
