SELECT count(*) AS n FROM embeddings e JOIN active_manifest m USING (sample_id)
WHERE e.model_version = $model_version;
