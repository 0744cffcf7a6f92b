-- The files a table's view reads, the column-keeping empty shard first.
SELECT path FROM row_shards WHERE table_name = $table_name ORDER BY shard_key NULLS FIRST, created_at, path;
