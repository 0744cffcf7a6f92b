-- Every review decision about one sample, newest first.
SELECT issue_type, decision, new_label, note, decided_at
FROM review_decisions
WHERE sample_id = $sample_id
ORDER BY decided_at DESC;
