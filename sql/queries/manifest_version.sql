-- A content hash of the active manifest: changes when a sample is added or superseded.
SELECT coalesce(md5(string_agg(sample_id, ',' ORDER BY sample_id)), 'empty') AS manifest_version,
       count(*) AS n_samples
FROM active_manifest;
