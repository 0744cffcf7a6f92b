-- The cleaned split version an export or the app refers to, with what produced it.
SELECT split_version, score_version, model_version, manifest_version, policy_json, counts_json, created_at
FROM latest_split_version;
