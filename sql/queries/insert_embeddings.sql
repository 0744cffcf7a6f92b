INSERT INTO embeddings (sample_id, model_version, vector)
SELECT sample_id, $model_version, vector FROM _new_rows
ON CONFLICT DO NOTHING;
