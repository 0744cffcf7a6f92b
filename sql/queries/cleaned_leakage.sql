-- Leaks that survive cleaning: eval samples flagged as leaked whose train partner is still kept.
WITH split AS (SELECT * FROM cleaned_split),
leaks AS (
    -- By id, not path: two data roots can hold the same relative path.
    SELECT s.sample_id AS eval_id, s.partner_id AS train_id
    FROM issue_scores s JOIN latest_score_run r USING (score_version)
    WHERE s.issue_type = 'leakage' AND s.is_issue AND s.partner_id IS NOT NULL
)
SELECT
    (SELECT count(*) FROM split WHERE split IN ('val', 'test') AND action <> 'drop') AS n_eval,
    count(DISTINCT l.eval_id) FILTER (WHERE e.action <> 'drop' AND t.action <> 'drop') AS n_leaked,
    (SELECT split_version FROM latest_split_version) AS split_version
FROM leaks l
JOIN split e ON e.sample_id = l.eval_id
JOIN split t ON t.sample_id = l.train_id;
