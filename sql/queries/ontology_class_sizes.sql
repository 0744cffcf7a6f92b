-- Samples per class of the active manifest: per tag for multi-label data (a '|'-joined label set
-- counts once for each of its tags), per label otherwise. The denominators of the merge score
-- (quality_assets.scores.ontology).
SELECT tag AS label, count(*)::BIGINT AS n
FROM (SELECT unnest(string_split(label, '|')) AS tag FROM manifest WHERE label IS NOT NULL)
WHERE tag <> ''
GROUP BY tag
ORDER BY tag;
