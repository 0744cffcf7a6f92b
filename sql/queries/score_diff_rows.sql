-- Issues that changed between two score versions: `new` = flagged in $new, not in $old (a sample
-- that $old did not score counts as not flagged there), `resolved` = the reverse. The worst $limit
-- rows per change and issue type: new issues by their rank in $new, resolved ones by their rank in $old.
WITH old AS (
    SELECT sample_id, issue_type, score, rank, is_issue FROM issue_scores WHERE score_version = $old
), new AS (
    SELECT sample_id, issue_type, score, rank, is_issue FROM issue_scores WHERE score_version = $new
), changed AS (
    SELECT coalesce(n.sample_id, o.sample_id) AS sample_id,
           coalesce(n.issue_type, o.issue_type) AS issue_type,
           CASE WHEN coalesce(n.is_issue, false) THEN 'new' ELSE 'resolved' END AS change,
           o.score AS old_score, n.score AS new_score, o.rank AS old_rank, n.rank AS new_rank,
           CASE WHEN o.sample_id IS NULL THEN 'new only' WHEN n.sample_id IS NULL THEN 'old only'
                ELSE 'both' END AS scored_in
    FROM old o
    FULL OUTER JOIN new n ON n.sample_id = o.sample_id AND n.issue_type = o.issue_type
    WHERE coalesce(n.is_issue, false) <> coalesce(o.is_issue, false)
)
SELECT c.change, c.issue_type, m.path, m.split, m.label,
       round(c.old_score, 4) AS old_score, round(c.new_score, 4) AS new_score, c.old_rank, c.new_rank,
       c.scored_in, c.sample_id
FROM changed c
LEFT JOIN raw_manifest m USING (sample_id)
QUALIFY row_number() OVER (PARTITION BY c.change, c.issue_type
                           ORDER BY CASE WHEN c.change = 'new' THEN c.new_rank ELSE c.old_rank END, m.path) <= $limit
ORDER BY c.change, c.issue_type, CASE WHEN c.change = 'new' THEN c.new_rank ELSE c.old_rank END, m.path;
