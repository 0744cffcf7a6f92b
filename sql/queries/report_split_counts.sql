-- Ingested samples per split (all drops).
SELECT split, count(*) AS n
FROM active_manifest
GROUP BY split
ORDER BY CASE split WHEN 'train' THEN 0 WHEN 'val' THEN 1 WHEN 'test' THEN 2 ELSE 3 END, split;
