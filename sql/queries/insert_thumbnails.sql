INSERT INTO thumbnails (sample_id, size, pixels)
SELECT sample_id, $size, pixels FROM _new_rows
ON CONFLICT DO NOTHING;
