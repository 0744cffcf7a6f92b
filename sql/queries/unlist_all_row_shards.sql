DELETE FROM row_shards;
