-- Parquet row storage (quality_assets.row_shards) makes `embeddings` a view over shard files.
SELECT count(*) > 0 AS sharded FROM duckdb_views() WHERE view_name = 'embeddings' AND NOT internal;
