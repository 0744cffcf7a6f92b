-- The latest score run's embedding vectors with what the map colours them by.
SELECT e.sample_id, e.vector, m.path, m.split, m.label,
       coalesce(o.is_issue, false) AS off_topic, o.score AS off_topic_score
FROM embeddings e
JOIN latest_score_run r ON e.model_version = r.model_version
JOIN manifest m ON m.sample_id = e.sample_id
LEFT JOIN issues o ON o.sample_id = e.sample_id AND o.issue_type = 'off_topic'
ORDER BY e.sample_id;
