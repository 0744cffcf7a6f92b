-- The public SQL contract (README "SQL interface"). Recreated on every connect.

CREATE OR REPLACE VIEW latest_score_run AS
SELECT * FROM score_runs ORDER BY created_at DESC, score_version LIMIT 1;

CREATE OR REPLACE VIEW latest_split_version AS
SELECT * FROM split_versions ORDER BY created_at DESC, split_version LIMIT 1;

-- The samples in force: superseded rows (a file whose content changed) stay in raw_manifest and
-- superseded_samples, not here.
CREATE OR REPLACE VIEW manifest AS
SELECT * FROM active_manifest;

CREATE OR REPLACE VIEW issues AS
SELECT s.sample_id, m.path, m.split, m.label, s.issue_type, s.score, s.rank, s.is_issue,
       s.suggested_label, s.confidence, p.path AS partner_path
FROM issue_scores s
JOIN latest_score_run r USING (score_version)
JOIN raw_manifest m ON m.sample_id = s.sample_id
LEFT JOIN raw_manifest p ON p.sample_id = s.partner_id;

CREATE OR REPLACE VIEW duplicate_pairs AS
SELECT a.path AS path_a, b.path AS path_b, a.split AS split_a, b.split AS split_b,
       ps.score, ps.rank, ps.is_issue, ps.group_id, ps.distance, ps.evidence,
       ps.sample_a, ps.sample_b, a.label AS label_a, b.label AS label_b
FROM pair_scores ps
JOIN latest_score_run r USING (score_version)
JOIN raw_manifest a ON a.sample_id = ps.sample_a
JOIN raw_manifest b ON b.sample_id = ps.sample_b;

CREATE OR REPLACE VIEW cleaned_split AS
SELECT c.sample_id, c.path, c.split, c.label, c.action, c.reason, c.original_label
FROM cleaned_splits c JOIN latest_split_version v USING (split_version);

CREATE OR REPLACE VIEW latest_gate_results AS
SELECT * FROM gate_results
QUALIFY row_number() OVER (PARTITION BY gate ORDER BY evaluated_at DESC) = 1;
