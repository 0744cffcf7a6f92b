-- Members of every flagged duplicate group with the representative to keep: an eval member when
-- the group has one (eval sets stay fixed), else the member least likely to be a label error,
-- ties by sample_id (the cleaning policy's rule).
WITH members AS (
    SELECT DISTINCT group_id, sample_id FROM (
        SELECT group_id, sample_a AS sample_id FROM duplicate_pairs WHERE is_issue AND group_id >= 0
        UNION ALL
        SELECT group_id, sample_b FROM duplicate_pairs WHERE is_issue AND group_id >= 0
    )
),
label_scores AS (
    SELECT sample_id, score FROM issues WHERE issue_type = 'label_error'
)
SELECT g.group_id, g.sample_id, m.path, m.split, m.label,
       row_number() OVER (PARTITION BY g.group_id
                          ORDER BY (m.split IN ('val', 'test')) DESC, coalesce(l.score, 1) DESC, g.sample_id) = 1
           AS is_representative,
       count(*) OVER (PARTITION BY g.group_id) AS group_size
FROM members g
JOIN manifest m USING (sample_id)
LEFT JOIN label_scores l USING (sample_id)
ORDER BY g.group_id, is_representative DESC, g.sample_id;
