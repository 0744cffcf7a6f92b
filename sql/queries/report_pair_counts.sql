-- Candidate duplicate pairs of the latest score run: scored and flagged.
SELECT count(*) AS n_scored, count(*) FILTER (WHERE is_issue) AS n_flagged
FROM duplicate_pairs;
