-- Listed shards with a key, oldest first within each table and key (compaction groups them).
SELECT table_name, shard_key, path, n_rows FROM row_shards
WHERE shard_key IS NOT NULL
ORDER BY table_name, shard_key, created_at, path;
