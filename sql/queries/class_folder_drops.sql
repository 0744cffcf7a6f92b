-- Drops read as class folders without split folders (every image in train), for the audit's summary.
SELECT drop_id, drop_dir, n_accepted
FROM drops
WHERE layout = 'classfolders'
ORDER BY drop_dir;
