-- One page of candidate duplicate pairs (flagged first, then by rank) with both sides' labels,
-- drops and current review decisions. A NULL filter means "any".
WITH latest_decision AS (
    SELECT sample_id, decision, new_label
    FROM review_decisions
    QUALIFY row_number() OVER (PARTITION BY sample_id ORDER BY decided_at DESC) = 1
)
SELECT d.sample_a, d.path_a, d.split_a, d.label_a, da.decision AS decision_a, da.new_label AS new_label_a,
       d.sample_b, d.path_b, d.split_b, d.label_b, db.decision AS decision_b, db.new_label AS new_label_b,
       d.score, d.rank, d.is_issue, d.group_id, d.distance, d.evidence,
       count(*) OVER () AS n_matching
FROM duplicate_pairs d
JOIN manifest a ON a.sample_id = d.sample_a
JOIN manifest b ON b.sample_id = d.sample_b
LEFT JOIN latest_decision da ON da.sample_id = d.sample_a
LEFT JOIN latest_decision db ON db.sample_id = d.sample_b
WHERE ($label IS NULL OR d.label_a = $label OR d.label_b = $label)
  AND ($split IS NULL OR d.split_a = $split OR d.split_b = $split)
  AND ($drop_id IS NULL OR a.drop_id = $drop_id OR b.drop_id = $drop_id)
  AND ($score_min IS NULL OR d.score >= $score_min)
  AND ($score_max IS NULL OR d.score <= $score_max)
  AND ($flagged_only IS NULL OR NOT $flagged_only OR d.is_issue)
  AND ($decided IS NULL OR ($decided = (da.decision IS NOT NULL AND db.decision IS NOT NULL)))
ORDER BY d.is_issue DESC, d.rank, d.sample_a, d.sample_b
LIMIT $limit OFFSET $offset;
