-- Every single label the dataset uses (multi-label rows contribute each of their labels).
SELECT DISTINCT l AS label FROM (
    SELECT unnest(coalesce(labels, [label])) AS l FROM manifest
) WHERE l IS NOT NULL AND l <> ''
ORDER BY label;
