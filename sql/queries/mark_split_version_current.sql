-- The public views read the newest split version: a reused version becomes the newest again.
UPDATE split_versions SET created_at = now() WHERE split_version = $split_version;
