"""Ingest's per-file work (hash + decode + cheap image properties) as Ray tasks.

`inspect_on_ray` takes the same jobs as `scan._inspect_all` ((full path, max_pixels, max_bytes)
each) and returns the same outcomes in the same order, so a scan is identical whichever engine ran
it. Files are read where the task runs: every worker must see the data root at the same path.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from quality_assets.distributed.engine import connect

Outcome = tuple[bool, Any, str]


def _inspect_chunk(jobs: Sequence[tuple[str, int, int]]) -> list[Outcome]:
    from quality_assets.scan import _inspect_one

    return [_inspect_one(job) for job in jobs]


def inspect_on_ray(address: str, jobs: Sequence[tuple[str, int, int]], *, chunk_size: int = 64,
                   progress: Callable[[int, int], None] | None = None) -> list[Outcome]:
    """One task per `chunk_size` files (one CPU each); outcomes come back in `jobs` order."""
    total = len(jobs)
    if progress is not None:
        progress(0, total)
    if not total:
        return []
    ray = connect(address)
    remote = ray.remote(num_cpus=1, max_retries=2)(_inspect_chunk)
    starts = list(range(0, total, chunk_size))
    # A bounded window of tasks in flight: the driver never holds a ref per chunk of a huge drop.
    window = max(2, 4 * int(ray.cluster_resources().get("CPU", 1)))
    queue = iter(starts)
    pending: dict[Any, int] = {}
    by_start: dict[int, list[Outcome]] = {}
    done = 0
    while True:
        for start in queue:
            pending[remote.remote(list(jobs[start:start + chunk_size]))] = start
            if len(pending) >= window:
                break
        if not pending:
            break
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            outcomes = ray.get(ref)
            by_start[pending.pop(ref)] = outcomes
            done += len(outcomes)
            if progress is not None:
                progress(done, total)
    return [outcome for start in starts for outcome in by_start[start]]
