-- Which of the given sample ids exist in the manifest.
SELECT sample_id FROM manifest WHERE sample_id IN (SELECT unnest($sample_ids::VARCHAR[]));
