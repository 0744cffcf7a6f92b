-- Samples that have no vector for the given model yet (incremental embedding).
SELECT m.sample_id, m.path, d.data_root
FROM raw_manifest m
JOIN drops d USING (drop_id)
ANTI JOIN (SELECT sample_id FROM embeddings WHERE model_version = $model_version) e USING (sample_id)
ORDER BY m.sample_id;
