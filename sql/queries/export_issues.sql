SELECT sample_id, path, split, label, issue_type, score, rank, is_issue, suggested_label, confidence, partner_path
FROM issues ORDER BY issue_type, rank;
