SELECT path, split, label, width, height, mode, bytes
FROM active_manifest
ORDER BY ingested_at DESC, path
LIMIT 10;
