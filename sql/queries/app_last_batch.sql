-- The newest batch of review decisions: everything written by one transaction (now() is the
-- transaction's start time, so a bulk action shares one decided_at).
SELECT sample_id, issue_type, decision, new_label, decided_at
FROM review_decisions
WHERE decided_at = (SELECT max(decided_at) FROM review_decisions);
