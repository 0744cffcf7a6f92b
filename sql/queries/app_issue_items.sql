-- One page of an issue type's items (worst first) with the filters of the review app, the
-- sample's current review decision and the evidence of its best pair. A NULL filter means "any".
-- partner_id comes from issue_scores because the `issues` view only exposes the partner's path.
WITH latest_decision AS (
    SELECT sample_id, decision, new_label, issue_type AS decided_for, decided_at
    FROM review_decisions
    QUALIFY row_number() OVER (PARTITION BY sample_id ORDER BY decided_at DESC) = 1
),
best_pair AS (
    SELECT sample_id, evidence, distance FROM (
        SELECT sample_a AS sample_id, evidence, distance, rank FROM duplicate_pairs
        UNION ALL
        SELECT sample_b, evidence, distance, rank FROM duplicate_pairs
    )
    QUALIFY row_number() OVER (PARTITION BY sample_id ORDER BY rank) = 1
)
SELECT i.sample_id, i.path, i.split, i.label, m.drop_id, i.score, i.rank, i.is_issue,
       i.suggested_label, i.confidence, bp.evidence, bp.distance,
       p.sample_id AS partner_id, p.path AS partner_path, p.split AS partner_split, p.label AS partner_label,
       d.decision, d.new_label, d.decided_for, d.decided_at,
       count(*) OVER () AS n_matching
FROM issues i
JOIN manifest m USING (sample_id)
CROSS JOIN latest_score_run r
LEFT JOIN issue_scores s
       ON s.score_version = r.score_version AND s.sample_id = i.sample_id AND s.issue_type = i.issue_type
LEFT JOIN manifest p ON p.sample_id = s.partner_id
LEFT JOIN latest_decision d ON d.sample_id = i.sample_id
LEFT JOIN best_pair bp ON bp.sample_id = i.sample_id
WHERE i.issue_type = $issue_type
  AND ($label IS NULL OR i.label = $label)
  AND ($split IS NULL OR i.split = $split)
  AND ($drop_id IS NULL OR m.drop_id = $drop_id)
  AND ($score_min IS NULL OR i.score >= $score_min)
  AND ($score_max IS NULL OR i.score <= $score_max)
  AND ($flagged_only IS NULL OR NOT $flagged_only OR i.is_issue)
  AND ($decided IS NULL OR ($decided = (d.decision IS NOT NULL)))
ORDER BY i.rank, i.sample_id
LIMIT $limit OFFSET $offset;
