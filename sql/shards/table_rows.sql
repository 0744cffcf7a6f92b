SELECT * FROM {table} WHERE CAST({key} AS VARCHAR) = $shard_key
