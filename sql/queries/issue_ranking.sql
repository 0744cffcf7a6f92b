-- One issue type's ranking in the latest score run, with paths for joining ground truth.
SELECT sample_id, path, split, label, score, rank, is_issue, suggested_label, partner_path
FROM issues
WHERE issue_type = $issue_type
ORDER BY rank;
