-- The report reads the newest consumer run: a reused version becomes the newest again.
UPDATE consumer_runs SET created_at = now() WHERE consumer_version = $consumer_version;
