-- Every row already in the manifest at the candidate paths under this data root (superseded ones
-- included, so restored bytes reinstate their old sample instead of colliding with it).
SELECT m.path, m.sample_id, m.file_sha256, (s.sample_id IS NOT NULL) AS superseded
FROM raw_manifest m
JOIN drops d USING (drop_id)
JOIN _candidate_paths c ON c.path = m.path
LEFT JOIN superseded_samples s USING (sample_id)
WHERE d.data_root = $data_root;
