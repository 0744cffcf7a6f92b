-- The worst items of one issue type in the latest score run.
SELECT rank, path, split, label, round(score, 4) AS score, suggested_label, partner_path
FROM issues
WHERE issue_type = $issue_type
ORDER BY rank
LIMIT $limit;
