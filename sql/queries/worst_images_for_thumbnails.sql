-- The worst few images of the main issue types, with the folder to read them from and, for pair
-- types (near_duplicate, leakage), the partner image beside them.
SELECT i.issue_type, i.rank, i.path, i.label, i.suggested_label, m.data_root,
       p.path AS partner_path, p.data_root AS partner_data_root
FROM issues i
JOIN manifest m USING (sample_id)
LEFT JOIN issue_scores s
       ON s.score_version = (SELECT score_version FROM latest_score_run)
      AND s.sample_id = i.sample_id AND s.issue_type = i.issue_type
LEFT JOIN manifest p ON p.sample_id = s.partner_id
WHERE i.issue_type IN ('off_topic', 'label_error', 'near_duplicate', 'leakage') AND i.rank <= $limit
ORDER BY i.issue_type, i.rank;
