-- Removes one batch of review decisions (undo).
DELETE FROM review_decisions WHERE decided_at = $decided_at;
