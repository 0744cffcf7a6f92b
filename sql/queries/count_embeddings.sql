SELECT count(*) AS n FROM embeddings e JOIN raw_manifest m USING (sample_id)
WHERE e.model_version = $model_version;
