-- A split version that can be reused: its rows are stored and not pruned.
SELECT * FROM split_versions WHERE split_version = $split_version AND rows_pruned_at IS NULL;
