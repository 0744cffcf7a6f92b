"""A real local Ray cluster for the Ray tests: one for the session (a head with no CPUs and one worker
node of two CPUs, so two actors or two Ray Train workers run side by side). One per module cost the
slow run a second cluster's start and stop (25-30 s on two cores); the tests hold no state in it."""

import pytest


@pytest.fixture(scope="session")
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
