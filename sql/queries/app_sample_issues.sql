-- Every issue row of one sample in the latest score run.
SELECT issue_type, score, rank, is_issue, suggested_label, confidence, partner_path
FROM issues
WHERE sample_id = $sample_id
ORDER BY is_issue DESC, rank;
