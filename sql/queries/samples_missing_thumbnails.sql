-- Samples that have no thumbnail of the given size yet (incremental, like embeddings).
SELECT m.sample_id, m.path, d.data_root
FROM raw_manifest m
JOIN drops d USING (drop_id)
ANTI JOIN (SELECT sample_id FROM thumbnails WHERE size = $size) t USING (sample_id)
ORDER BY m.sample_id;
