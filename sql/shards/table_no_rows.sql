-- No rows, the table's columns: the shard that keeps a view's columns while no key has rows.
SELECT * FROM {table} LIMIT 0
