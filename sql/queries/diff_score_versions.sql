-- Score versions, newest first (the order `latest_score_run` uses), for `qaudit diff`.
SELECT score_version AS version, manifest_version, created_at
FROM score_runs
ORDER BY created_at DESC, score_version;
