-- One row per sample of the manifest with its duplicate group in the latest score run; the flags
-- per issue type come from cleaning_flags (pivoted by quality_assets.cleaning).
WITH run AS (SELECT score_version FROM latest_score_run),
groups AS (
    SELECT sample_id, min(group_id) AS duplicate_group FROM (
        SELECT sample_a AS sample_id, group_id FROM pair_scores JOIN run USING (score_version) WHERE is_issue
        UNION ALL
        SELECT sample_b, group_id FROM pair_scores JOIN run USING (score_version) WHERE is_issue
    ) GROUP BY sample_id
)
SELECT m.sample_id, m.path, m.split, m.label,
       coalesce(g.duplicate_group, -1) AS duplicate_group
FROM active_manifest m
LEFT JOIN groups g USING (sample_id)
ORDER BY m.sample_id;
