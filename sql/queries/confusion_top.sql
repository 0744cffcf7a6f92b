SELECT given_label, suggested_label, count
FROM class_confusion
WHERE score_version = $score_version AND given_label IS DISTINCT FROM suggested_label
ORDER BY count DESC, given_label
LIMIT 30;
