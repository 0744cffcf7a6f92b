-- Cleaned split versions, newest first (the order `latest_split_version` uses), for `qaudit diff`.
SELECT split_version AS version, score_version, created_at
FROM split_versions
ORDER BY created_at DESC, split_version;
