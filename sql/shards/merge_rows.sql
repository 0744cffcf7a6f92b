-- The rows of several shard files of one key, for one file (qaudit prune's compaction).
SELECT * FROM read_parquet({files})
