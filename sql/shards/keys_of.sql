-- The keys a temp table lists, as the shards are keyed.
SELECT DISTINCT CAST({key} AS VARCHAR) AS shard_key FROM {keys} ORDER BY shard_key;
