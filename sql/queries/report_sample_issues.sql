-- Every issue row of the given samples in the latest score run (the report's "samples" section).
SELECT sample_id, path, split, label, issue_type, score, rank, is_issue
FROM issues
WHERE sample_id IN (SELECT unnest($sample_ids::VARCHAR[]))
ORDER BY sample_id, issue_type;
