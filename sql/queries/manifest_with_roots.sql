-- Every accepted sample with the absolute folder its path is relative to, in a stable order.
SELECT m.*, d.data_root
FROM raw_manifest m JOIN drops d USING (drop_id)
ORDER BY m.sample_id;
