-- Flagged label errors of the latest score run for the given -> suggested pairs the ontology
-- insights show: at most $per_pair per pair, most likely errors first (lowest score).
SELECT sample_id, path, split, data_root, given_label, suggested_label, score
FROM (
    SELECT s.sample_id, m.path, m.split, m.data_root, m.label AS given_label, s.suggested_label, s.score,
           row_number() OVER (PARTITION BY m.label, s.suggested_label ORDER BY s.score, s.sample_id) AS k
    FROM issue_scores s
    JOIN latest_score_run r USING (score_version)
    JOIN manifest m USING (sample_id)
    WHERE s.issue_type = 'label_error' AND s.is_issue AND s.suggested_label IS NOT NULL
)
WHERE k <= $per_pair
ORDER BY given_label, suggested_label, score, sample_id;
