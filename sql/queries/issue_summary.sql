-- Per issue type: how many samples scored, how many flagged.
SELECT issue_type, count(*) AS n_scored, count(*) FILTER (WHERE is_issue) AS n_flagged,
       round(avg(CASE WHEN is_issue THEN 1 ELSE 0 END), 4) AS flagged_rate
FROM issues
GROUP BY issue_type
ORDER BY issue_type;
