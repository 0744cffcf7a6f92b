SELECT reason, count(*) AS n
FROM rejected_samples
GROUP BY reason
ORDER BY n DESC, reason;
