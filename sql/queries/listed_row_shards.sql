SELECT path FROM row_shards ORDER BY path;
