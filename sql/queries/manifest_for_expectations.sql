-- The active manifest for the expectations suite; `path` is qualified by its data root, since
-- two roots may hold the same relative path.
SELECT sample_id, drop_id, data_root || '/' || path AS path, split, label, width, height,
       file_sha256, pixel_sha256, bytes
FROM active_manifest;
