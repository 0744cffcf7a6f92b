INSERT INTO row_shards (table_name, shard_key, path, n_rows, created_at)
VALUES ($table_name, $shard_key, $path, $n_rows, now());
