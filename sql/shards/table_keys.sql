-- The shard keys a table's rows have (a home converted to Parquet storage gets one shard per key).
SELECT DISTINCT CAST({key} AS VARCHAR) AS shard_key FROM {table} ORDER BY shard_key;
