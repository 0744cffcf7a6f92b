-- Rows that point at nothing, as a half-written step would leave them: one row per check, n = 0
-- when the database is sound (used by the crash-safety tests and available to operators).
SELECT 'raw_manifest without drop' AS check_name, count(*) AS n FROM raw_manifest ANTI JOIN drops USING (drop_id)
UNION ALL SELECT 'rejected_samples without drop', count(*) FROM rejected_samples ANTI JOIN drops USING (drop_id)
UNION ALL SELECT 'superseded_samples without sample', count(*) FROM superseded_samples ANTI JOIN raw_manifest USING (sample_id)
UNION ALL SELECT 'embeddings without sample', count(*) FROM embeddings ANTI JOIN raw_manifest USING (sample_id)
UNION ALL SELECT 'embeddings without model', count(*) FROM embeddings ANTI JOIN ssl_models USING (model_version)
UNION ALL SELECT 'thumbnails without sample', count(*) FROM thumbnails ANTI JOIN raw_manifest USING (sample_id)
UNION ALL SELECT 'knn_edges without graph', count(*) FROM knn_edges ANTI JOIN knn_graphs USING (graph_version)
UNION ALL SELECT 'knn_edges without sample', count(*) FROM knn_edges ANTI JOIN raw_manifest USING (sample_id)
UNION ALL SELECT 'issue_scores without score run', count(*) FROM issue_scores ANTI JOIN score_runs USING (score_version)
UNION ALL SELECT 'issue_scores without sample', count(*) FROM issue_scores ANTI JOIN raw_manifest USING (sample_id)
UNION ALL SELECT 'pair_scores without score run', count(*) FROM pair_scores ANTI JOIN score_runs USING (score_version)
UNION ALL SELECT 'duplicate_groups without score run', count(*) FROM duplicate_groups ANTI JOIN score_runs USING (score_version)
UNION ALL SELECT 'class_confusion without score run', count(*) FROM class_confusion ANTI JOIN score_runs USING (score_version)
UNION ALL SELECT 'score_runs without graph', count(*) FROM score_runs s WHERE s.graph_version IS NOT NULL
    AND s.graph_version NOT IN (SELECT graph_version FROM knn_graphs)
UNION ALL SELECT 'cleaned_splits without split version', count(*) FROM cleaned_splits ANTI JOIN split_versions USING (split_version)
UNION ALL SELECT 'cleaned_splits without sample', count(*) FROM cleaned_splits ANTI JOIN raw_manifest USING (sample_id)
UNION ALL SELECT 'split_versions without score run', count(*) FROM split_versions s WHERE s.score_version IS NOT NULL
    AND s.score_version NOT IN (SELECT score_version FROM score_runs)
UNION ALL SELECT 'review_decisions without sample', count(*) FROM review_decisions ANTI JOIN raw_manifest USING (sample_id);
