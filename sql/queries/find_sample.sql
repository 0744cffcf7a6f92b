-- A sample by id or by path (relative to its data root).
SELECT sample_id, path, split, label FROM active_manifest WHERE sample_id = $key OR path = $key;
