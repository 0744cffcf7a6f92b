-- One rejected file per reason (the first by path) with what was wrong with it, most common reason first.
SELECT reason, count(*) AS n, min(path) AS path, arg_min(detail, path) AS detail
FROM rejected_samples
GROUP BY reason
ORDER BY n DESC, reason;
