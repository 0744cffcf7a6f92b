"""Self-supervised image data-quality audits (pure modules; Dagster wiring lives in `defs/`)."""

import os

# On shared cores, torch's OpenMP threads that spin while waiting made DINO training 3.6-4.4x slower
# (docs/benchmarks/ssl.md). The setting only takes effect if it is set before torch first loads, and
# every entry point (CLI, Dagster code location, tests) imports this package first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
