-- One shard file from a query (the caller writes to a temporary name and renames it when whole).
COPY ({rows}) TO '{path}' (FORMAT parquet);
