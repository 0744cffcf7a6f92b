-- Re-running the same score version replaces its rows (idempotent re-runs).
DELETE FROM issue_scores WHERE score_version = $score_version;
DELETE FROM pair_scores WHERE score_version = $score_version;
DELETE FROM duplicate_groups WHERE score_version = $score_version;
DELETE FROM class_confusion WHERE score_version = $score_version;
