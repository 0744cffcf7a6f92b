"""The lab: everything that measures the service and is never part of it.

Contamination generators (the demo's :mod:`~quality_lab.contamination` and the published SelfClean
protocol, :mod:`~quality_lab.protocol`), dataset loaders from packages that ship their data
(:mod:`~quality_lab.demo_data`, :mod:`~quality_lab.datasets`), ranking metrics
(:mod:`~quality_lab.evaluation`), ablation embedders, the detection and scaling benchmarks
(:mod:`~quality_lab.bench`) and the benchmark matrix (:mod:`~quality_lab.matrix`).

The service package ``quality_assets`` never imports this package; only ``qaudit demo`` and
``qaudit bench`` reach it, lazily, inside the functions that need it.
"""
