-- The sample at a path (relative to its data root); the lowest id when two drops share a path.
SELECT sample_id FROM manifest WHERE path = $path ORDER BY sample_id LIMIT 1;
