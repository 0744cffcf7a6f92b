-- Flagged items of one issue type that nobody has decided on yet, worst first.
SELECT i.rank, i.sample_id, i.path, i.split, i.label, round(i.score, 4) AS score, i.suggested_label
FROM issues i
ANTI JOIN review_decisions r ON r.sample_id = i.sample_id AND r.issue_type = i.issue_type
WHERE i.issue_type = $issue_type AND i.is_issue
ORDER BY i.rank
LIMIT $limit;
