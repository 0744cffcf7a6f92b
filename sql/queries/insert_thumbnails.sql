INSERT INTO thumbnails (sample_id, size, pixels)
SELECT sample_id, $size, pixels FROM _new_thumbnails
ON CONFLICT DO NOTHING;
