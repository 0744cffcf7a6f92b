-- Every flagged row of the latest score run, and every sample that is the partner of one:
-- (sample_id, issue_type, is_issue, suggested_label, confidence, is_partner).
WITH run AS (SELECT score_version FROM latest_score_run)
SELECT s.sample_id, s.issue_type, s.is_issue, s.suggested_label, s.confidence, false AS is_partner
FROM issue_scores s JOIN run USING (score_version)
WHERE s.is_issue OR s.suggested_label IS NOT NULL
UNION ALL
SELECT DISTINCT s.partner_id, s.issue_type, false, NULL, NULL, true
FROM issue_scores s JOIN run USING (score_version)
WHERE s.is_issue AND s.partner_id IS NOT NULL;
