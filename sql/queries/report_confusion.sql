-- given -> suggested label counts of the latest score run (flagged label errors only).
SELECT c.given_label, c.suggested_label, sum(c.count)::BIGINT AS count
FROM class_confusion c
JOIN latest_score_run r USING (score_version)
WHERE c.given_label IS DISTINCT FROM c.suggested_label
GROUP BY ALL
ORDER BY count DESC, c.given_label, c.suggested_label;
