-- A worker's shard file without the rows already stored under its key (the tables' primary keys keep the first).
SELECT f.* FROM read_parquet('{path}') f
ANTI JOIN (SELECT sample_id FROM {table} WHERE CAST({key} AS VARCHAR) = $shard_key) t USING (sample_id)
