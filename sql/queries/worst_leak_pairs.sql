SELECT path AS eval_path, partner_path AS train_path, round(score, 4) AS score, rank
FROM issues
WHERE issue_type = 'leakage' AND is_issue
ORDER BY rank
LIMIT $limit;
