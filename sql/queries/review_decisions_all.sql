SELECT sample_id, issue_type, decision, new_label, note, decided_at FROM review_decisions ORDER BY decided_at;
