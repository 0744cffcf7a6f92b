-- One sample of the manifest with the folder its file is read from.
SELECT sample_id, path, split, label, drop_id, data_root, width, height, mode, bytes
FROM manifest
WHERE sample_id = $sample_id;
