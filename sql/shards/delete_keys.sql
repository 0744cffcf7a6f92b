-- The rows of every key a temp table lists (tables layout; Parquet storage unlists the shards instead).
DELETE FROM {table} WHERE CAST({key} AS VARCHAR) IN (SELECT CAST({key} AS VARCHAR) FROM {keys});
