-- Every active sample with the absolute folder its path is relative to, in a stable order.
SELECT *
FROM active_manifest
ORDER BY sample_id;
