-- One row per sample of the latest score run with the flags the cleaning policy reads.
WITH run AS (SELECT score_version FROM latest_score_run),
flags AS (
    SELECT s.sample_id,
        bool_or(s.issue_type = 'off_topic' AND s.is_issue) AS off_topic_issue,
        bool_or(s.issue_type = 'label_error' AND s.is_issue) AS label_error_issue,
        max(CASE WHEN s.issue_type = 'label_error' THEN s.suggested_label END) AS suggested_label,
        max(CASE WHEN s.issue_type = 'label_error' THEN s.confidence END) AS label_confidence
    FROM issue_scores s JOIN run USING (score_version)
    GROUP BY s.sample_id
),
groups AS (
    SELECT sample_id, min(group_id) AS duplicate_group FROM (
        SELECT sample_a AS sample_id, group_id FROM pair_scores JOIN run USING (score_version) WHERE is_issue
        UNION ALL
        SELECT sample_b, group_id FROM pair_scores JOIN run USING (score_version) WHERE is_issue
    ) GROUP BY sample_id
),
leak_partners AS (
    -- Train samples that are the partner of a leaked eval sample.
    SELECT DISTINCT s.partner_id AS sample_id
    FROM issue_scores s JOIN run USING (score_version)
    WHERE s.issue_type = 'leakage' AND s.is_issue AND s.partner_id IS NOT NULL
)
SELECT m.sample_id, m.path, m.split, m.label,
       coalesce(f.off_topic_issue, false) AS off_topic_issue,
       coalesce(g.duplicate_group, -1) AS duplicate_group,
       (lp.sample_id IS NOT NULL) AS leak_partner_of_eval,
       coalesce(f.label_error_issue, false) AS label_error_issue,
       f.suggested_label, f.label_confidence
FROM raw_manifest m
LEFT JOIN flags f USING (sample_id)
LEFT JOIN groups g USING (sample_id)
LEFT JOIN leak_partners lp USING (sample_id)
ORDER BY m.sample_id;
