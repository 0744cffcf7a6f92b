-- Leaks that survive cleaning: eval samples flagged as leaked whose train partner is still kept.
WITH split AS (SELECT * FROM cleaned_split),
leaks AS (
    SELECT i.sample_id AS eval_id, p.sample_id AS train_id, i.path AS eval_path, i.partner_path AS train_path
    FROM issues i JOIN raw_manifest p ON p.path = i.partner_path
    WHERE i.issue_type = 'leakage' AND i.is_issue
)
SELECT
    (SELECT count(*) FROM split WHERE split IN ('val', 'test') AND action <> 'drop') AS n_eval,
    count(DISTINCT l.eval_id) FILTER (WHERE e.action <> 'drop' AND t.action <> 'drop') AS n_leaked,
    (SELECT split_version FROM latest_split_version) AS split_version
FROM leaks l
JOIN split e ON e.sample_id = l.eval_id
JOIN split t ON t.sample_id = l.train_id;
