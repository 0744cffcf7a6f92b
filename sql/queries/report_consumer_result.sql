-- The newest training consumer run, one row per seed and experiment.
WITH latest AS (SELECT * FROM consumer_runs ORDER BY created_at DESC, consumer_version LIMIT 1)
SELECT l.consumer_version, l.split_version, l.consumer, l.config_json, l.seconds, l.created_at,
       a.seed, a.train, a.eval, a.accuracy, a.n_train, a.n_eval
FROM latest l
JOIN consumer_accuracies a USING (consumer_version)
ORDER BY a.train, a.eval, a.seed;
