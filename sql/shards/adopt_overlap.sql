-- Rows of a worker's shard file already stored under its key (a retried batch); none: it is listed as written.
SELECT count(*) AS n
FROM read_parquet('{path}') f
SEMI JOIN (SELECT sample_id FROM {table} WHERE CAST({key} AS VARCHAR) = $shard_key) t USING (sample_id)
