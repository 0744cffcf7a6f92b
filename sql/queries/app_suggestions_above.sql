-- Label-error suggestions that differ from the label with at least $min_confidence, on samples
-- nobody has decided on yet; only flagged ones when $flagged_only.
SELECT i.sample_id, i.path, i.label, i.suggested_label, i.confidence
FROM issues i
ANTI JOIN review_decisions r ON r.sample_id = i.sample_id
WHERE i.issue_type = 'label_error' AND (i.is_issue OR NOT $flagged_only)
  AND i.suggested_label IS NOT NULL AND i.suggested_label IS DISTINCT FROM i.label
  AND i.confidence >= $min_confidence
ORDER BY i.rank;
