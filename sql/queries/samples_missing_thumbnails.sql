-- Active samples that have no thumbnail of the given size yet (incremental, like embeddings).
SELECT m.sample_id, m.path, m.data_root, m.file_sha256, m.bytes
FROM active_manifest m
ANTI JOIN (SELECT sample_id FROM thumbnails WHERE size = $size) t USING (sample_id)
ORDER BY m.sample_id;
