-- The file this connection's database lives in (keys the in-process graph cache).
SELECT path FROM duckdb_databases() WHERE database_name = current_database();
