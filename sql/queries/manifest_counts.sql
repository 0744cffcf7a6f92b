SELECT split, coalesce(label, '(none)') AS label, count(*) AS n
FROM active_manifest
GROUP BY ALL
ORDER BY split, label;
