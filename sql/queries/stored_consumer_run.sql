-- A consumer run whose figures can be reused, with its number of accuracy rows.
SELECT r.*, (SELECT count(*) FROM consumer_accuracies a WHERE a.consumer_version = r.consumer_version)
    AS n_accuracies
FROM consumer_runs r WHERE r.consumer_version = $consumer_version;
