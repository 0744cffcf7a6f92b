-- Per issue type of the latest score run: samples scored and flagged.
SELECT issue_type, count(*) AS n_scored, count(*) FILTER (WHERE is_issue) AS n_flagged
FROM issues
GROUP BY issue_type
ORDER BY issue_type;
