INSERT INTO split_versions (split_version, score_version, model_version, manifest_version, policy_json,
                            counts_json, created_at)
VALUES ($split_version, $score_version, $model_version, $manifest_version, $policy_json, $counts_json, now())
ON CONFLICT (split_version) DO UPDATE SET created_at = now(), counts_json = excluded.counts_json,
    rows_pruned_at = NULL;
