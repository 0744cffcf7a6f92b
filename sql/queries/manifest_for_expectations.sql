SELECT sample_id, drop_id, path, split, label, width, height, file_sha256, pixel_sha256, bytes
FROM raw_manifest;
