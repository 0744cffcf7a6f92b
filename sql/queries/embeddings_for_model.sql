-- Current manifest's vectors for one model, in the manifest's stable order.
SELECT e.sample_id, e.vector
FROM embeddings e JOIN active_manifest m USING (sample_id)
WHERE e.model_version = $model_version
ORDER BY e.sample_id;
