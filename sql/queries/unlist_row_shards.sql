-- A key's shards leave the listing (their files go at the next `qaudit prune`).
DELETE FROM row_shards WHERE table_name = $table_name AND shard_key = $shard_key;
