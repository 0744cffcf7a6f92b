SELECT reason, count(*) AS n
FROM superseded_samples
GROUP BY reason
ORDER BY n DESC, reason;
