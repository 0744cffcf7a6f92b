-- The public views read the newest score run: a reused version becomes the newest again.
UPDATE score_runs SET created_at = now() WHERE score_version = $score_version;
