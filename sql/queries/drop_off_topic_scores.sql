-- The latest score run's off-topic scores, for the drop checks.
SELECT s.sample_id, s.score, s.is_issue
FROM issue_scores s
JOIN latest_score_run r USING (score_version)
WHERE s.issue_type = 'off_topic'
ORDER BY s.sample_id;
