INSERT INTO review_decisions (sample_id, issue_type, decision, new_label, note, decided_at)
VALUES ($sample_id, $issue_type, $decision, $new_label, $note, now());
