-- The worst few images of the main issue types, with the folder to read them from.
SELECT i.issue_type, i.rank, i.path, i.label, i.suggested_label, m.data_root
FROM issues i JOIN manifest m USING (sample_id)
WHERE i.issue_type IN ('off_topic', 'label_error', 'near_duplicate', 'leakage') AND i.rank <= $limit
ORDER BY i.issue_type, i.rank;
