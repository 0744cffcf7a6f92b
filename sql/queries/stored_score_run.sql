-- A score version that can be reused (its rows are written in the transaction that writes this row,
-- and not pruned since), with its number of issue rows.
SELECT r.*, (SELECT count(*) FROM issue_scores s WHERE s.score_version = r.score_version) AS n_issue_rows
FROM score_runs r WHERE r.score_version = $score_version AND r.rows_pruned_at IS NULL;
