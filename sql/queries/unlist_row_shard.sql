DELETE FROM row_shards WHERE path = $path;
