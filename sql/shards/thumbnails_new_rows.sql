-- A chunk's thumbnails not stored yet at this size (the table's primary key keeps the first).
SELECT n.sample_id, CAST($size AS INTEGER) AS size, n.pixels
FROM _new_rows n
ANTI JOIN (SELECT sample_id FROM thumbnails WHERE size = $size) t USING (sample_id)
QUALIFY row_number() OVER (PARTITION BY n.sample_id) = 1
