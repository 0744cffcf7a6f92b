-- Written in the transaction that writes the run's accuracies (after them): a stored run has all of its rows.
INSERT INTO consumer_runs (consumer_version, split_version, consumer, config_json, seconds, created_at)
VALUES ($consumer_version, $split_version, $consumer, $config_json, $seconds, now())
ON CONFLICT (consumer_version) DO UPDATE SET created_at = now(), split_version = excluded.split_version,
    consumer = excluded.consumer, config_json = excluded.config_json, seconds = excluded.seconds;
