-- The cleaned split joined with each sample's vector for the current model.
SELECT c.sample_id, c.split, c.label, c.original_label, c.action, e.vector
FROM cleaned_split c
JOIN embeddings e ON e.sample_id = c.sample_id
WHERE e.model_version = (SELECT model_version FROM latest_split_version)
ORDER BY c.sample_id;
