-- Review decisions, newest first, with the sample's path and label.
SELECT r.decided_at, r.sample_id, m.path, m.split, m.label, r.issue_type, r.decision, r.new_label, r.note
FROM review_decisions r
LEFT JOIN manifest m USING (sample_id)
ORDER BY r.decided_at DESC, m.path
LIMIT $limit;
