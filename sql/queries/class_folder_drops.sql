-- Drops read as class folders without split folders (every image in train), for the audit's summary:
-- the most recently ingested first.
SELECT drop_id, drop_dir, n_accepted
FROM drops
WHERE layout = 'classfolders'
ORDER BY last_ingested_at DESC, drop_dir;
