"""A real local Ray cluster for the Ray tests: one per test module (a head with no CPUs and one
worker node of two CPUs, so two actors or two Ray Train workers run side by side)."""

import pytest


@pytest.fixture(scope="module")
def ray_cluster():
    pytest.importorskip("ray")
    import ray

    from quality_assets.distributed.local_cluster import local_ray_cluster

    # Two CPUs on one worker node: two model actors, so batches come back from both out of order.
    with local_ray_cluster(n_workers=1, cpus_per_worker=2) as cluster:
        try:
            yield cluster
        finally:
            ray.shutdown()
