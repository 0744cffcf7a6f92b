"""Ray as the engine past one machine (pure Ray code; never imports Dagster).

The in-process engine stays the default. Setting QUALITY_RAY_ADDRESS (an address `ray.init`
accepts: "auto", "127.0.0.1:6379", "ray://head:10001") makes the embedding stage run on that Ray
cluster through Ray Data (`embedding.embed_on_ray`: a model actor per worker, batched), and ingest's
hashing and image properties as Ray tasks (`ingest.inspect_on_ray`), and the search of a large kNN
graph as Ray tasks over shards of its rows (`knn.build_knn_graph_on_ray`). Every worker must
see the data root and the quality home's artifacts at the same paths (a shared filesystem); the
DuckDB store is only ever written by the driver, the process running the asset.
"""
