-- Active samples that have no vector for the given model yet (incremental embedding).
SELECT m.sample_id, m.path, m.data_root, m.file_sha256, m.bytes
FROM active_manifest m
ANTI JOIN (SELECT sample_id FROM embeddings WHERE model_version = $model_version) e USING (sample_id)
ORDER BY m.sample_id;
