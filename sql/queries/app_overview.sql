-- The latest score run and cleaned split the app shows in its header.
SELECT r.score_version, r.model_version, r.created_at AS scored_at,
       v.split_version, v.created_at AS split_created_at, v.counts_json,
       (SELECT count(*) FROM manifest) AS n_samples
FROM latest_score_run r
LEFT JOIN latest_split_version v ON true;
