-- Per issue type between two score versions: flagged in each, new issues (flagged in $new only) and
-- resolved ones (flagged in $old only).
WITH old AS (
    SELECT sample_id, issue_type, is_issue FROM issue_scores WHERE score_version = $old
), new AS (
    SELECT sample_id, issue_type, is_issue FROM issue_scores WHERE score_version = $new
), joined AS (
    SELECT coalesce(n.issue_type, o.issue_type) AS issue_type,
           coalesce(o.is_issue, false) AS old_flag, coalesce(n.is_issue, false) AS new_flag
    FROM old o
    FULL OUTER JOIN new n ON n.sample_id = o.sample_id AND n.issue_type = o.issue_type
)
SELECT issue_type,
       count(*) FILTER (WHERE new_flag AND NOT old_flag) AS new_issues,
       count(*) FILTER (WHERE old_flag AND NOT new_flag) AS resolved,
       count(*) FILTER (WHERE old_flag) AS flagged_old,
       count(*) FILTER (WHERE new_flag) AS flagged_new
FROM joined
GROUP BY issue_type
ORDER BY issue_type;
