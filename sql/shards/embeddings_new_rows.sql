-- A chunk's vectors not stored yet for this model (the table's primary key keeps the first).
SELECT n.sample_id, CAST($model_version AS VARCHAR) AS model_version, n.vector
FROM _new_rows n
ANTI JOIN (SELECT sample_id FROM embeddings WHERE model_version = $model_version) e USING (sample_id)
QUALIFY row_number() OVER (PARTITION BY n.sample_id) = 1
