-- A content hash of the accepted manifest: changes when any sample is added.
SELECT coalesce(md5(string_agg(sample_id, ',' ORDER BY sample_id)), 'empty') AS manifest_version,
       count(*) AS n_samples
FROM raw_manifest;
