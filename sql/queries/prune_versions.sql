-- Delete the rows of all but the $keep newest versions of each graph view (the current graph always
-- stays), of the score runs and of the cleaned splits. The version rows stay (lineage: which graph a
-- score came from), marked so that a pruned version is computed again instead of reused. The pruned
-- graphs' edges are deleted next, from _pruned_graphs, by row_shards.delete_keys (rows here or
-- shard files).
CREATE OR REPLACE TEMP TABLE _pruned_graphs AS
SELECT graph_version FROM (
    SELECT graph_version, row_number() OVER (PARTITION BY coalesce(view, 'ssl') ORDER BY created_at DESC) AS age
    FROM knn_graphs WHERE edges_kept IS DISTINCT FROM false)
WHERE age > $keep AND graph_version NOT IN (SELECT graph_version FROM current_graphs);
CREATE OR REPLACE TEMP TABLE _pruned_scores AS
SELECT score_version FROM (
    SELECT score_version, row_number() OVER (ORDER BY created_at DESC) AS age
    FROM score_runs WHERE rows_pruned_at IS NULL)
WHERE age > $keep;
CREATE OR REPLACE TEMP TABLE _pruned_splits AS
SELECT split_version FROM (
    SELECT split_version, row_number() OVER (ORDER BY created_at DESC) AS age
    FROM split_versions WHERE rows_pruned_at IS NULL)
WHERE age > $keep;
UPDATE knn_graphs SET edges_kept = false WHERE graph_version IN (SELECT graph_version FROM _pruned_graphs);
DELETE FROM issue_scores WHERE score_version IN (SELECT score_version FROM _pruned_scores);
DELETE FROM pair_scores WHERE score_version IN (SELECT score_version FROM _pruned_scores);
DELETE FROM duplicate_groups WHERE score_version IN (SELECT score_version FROM _pruned_scores);
DELETE FROM class_confusion WHERE score_version IN (SELECT score_version FROM _pruned_scores);
UPDATE score_runs SET rows_pruned_at = now() WHERE score_version IN (SELECT score_version FROM _pruned_scores);
DELETE FROM cleaned_splits WHERE split_version IN (SELECT split_version FROM _pruned_splits);
UPDATE split_versions SET rows_pruned_at = now() WHERE split_version IN (SELECT split_version FROM _pruned_splits);
-- Pixel verdicts of an older verifier are never read again.
DELETE FROM pair_verifications WHERE verifier_version <> $verifier_version;
SELECT (SELECT count(*) FROM _pruned_graphs) AS graphs, (SELECT count(*) FROM _pruned_scores) AS score_runs,
       (SELECT count(*) FROM _pruned_splits) AS splits;
